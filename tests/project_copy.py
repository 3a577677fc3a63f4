"""Copying the project's workflow files into a scratch folder, for tests that run Snakemake or DVC."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "params.yaml", "workflow", "profiles")


def copy_project(dst: Path, names=WORKFLOW_FILES) -> Path:
    """Copy `names` (files or folders, relative to the repository root) into `dst`; returns `dst`."""
    for name in names:
        src, out = ROOT / name, Path(dst) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, out)
    return Path(dst)
