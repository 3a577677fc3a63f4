"""The embedded default: a small self-made text-to-image world."""
