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


def sana_configuration(dst: Path) -> Path:
    """A `source: sana` configuration in the project copy at `dst`, with stand-ins for what a user brings
    (the teacher folder, the MJHQ-30k folder, a prompt file): enough for Snakemake to plan the chain,
    not to run it. Returns the configuration file, relative to `dst`."""
    import yaml

    dst = Path(dst)
    for folder in ("sana_teacher/vae", "mjhq"):  # a SanaPipeline folder holds its DC-AE in vae/
        (dst / folder).mkdir(parents=True, exist_ok=True)
    (dst / "sana_prompts.txt").write_text("a red star\n")
    params = yaml.safe_load((dst / "workflow" / "smoke.yaml").read_text())
    params.update(source="sana", sana={"teacher": "sana_teacher", "mjhq": "mjhq"})
    params["prompts"]["file"] = "sana_prompts.txt"
    (dst / "sana.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return Path("sana.yaml")
