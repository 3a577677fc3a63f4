"""Adapters: everything backbone-specific lives here."""
