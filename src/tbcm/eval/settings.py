"""The `evaluate:` section of params.yaml with the schema's defaults filled in (the schema is the one
place the defaults are written; Snakemake's `validate` fills the same ones)."""

from __future__ import annotations

import yaml

from ..config import SCHEMA


def evaluate_params(params: dict) -> dict:
    schema = yaml.safe_load(SCHEMA.read_text())
    props = schema["properties"]["evaluate"]["properties"]
    defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    return {**defaults, **params["evaluate"]}
