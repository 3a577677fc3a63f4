"""params.yaml: loading and validation against workflow/schemas/params.schema.yaml (the schema
Snakemake's `validate` uses too), so a bad key or type stops every entry point before any work."""

from __future__ import annotations

from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"


def validate(params: dict, schema_path: Path = SCHEMA) -> dict:
    """Raise ValueError naming the offending key path and the rule it breaks."""
    import jsonschema

    schema = yaml.safe_load(schema_path.read_text())
    # the schema's own $schema version, as Snakemake's validate uses it
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            where = ".".join(str(p) for p in e.absolute_path) or "<top level>"
            lines.append(f"params: {where}: {e.message}")
        raise ValueError("invalid configuration\n" + "\n".join(lines))
    return params


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"params file not found: {path}")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ValueError(f"{path} is not a mapping of sections")
    return validate(params)


def differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested configurations (one side may lack the key)."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        key, x, y = f"{prefix}{k}", a.get(k, _MISSING), b.get(k, _MISSING)
        if isinstance(x, dict) and isinstance(y, dict):
            out += differing_keys(x, y, key + ".")
        elif x != y:
            out.append(key)
    return out


_MISSING = object()
