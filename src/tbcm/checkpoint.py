"""Training checkpoints that a resumed run can trust: atomic, complete, and tied to what they were trained on.

Layout: <root>/<fingerprint>/step-<NNNNNNNN>.pt, one file per checkpoint, written to a temporary name
and renamed into place (tbcm.atomic), so a file that exists is whole. The fingerprint hashes
everything a resumed run must share with the interrupted one: the training configuration (all of
it but the step count and the checkpoint/log cadence), the teacher's transformer, text encoder and
tokenizer files, the prompt list, the black latent and the number of processes. "latest" looks only
in its own fingerprint's folder, so a changed parameter, teacher or prompt set starts afresh instead
of resuming a student trained on something else; raising `steps` continues the last checkpoint.

What a checkpoint holds is the caller's (distill.py): a dict of state dicts, RNG states and logs,
saved with torch.save and loaded with weights_only=True (plain tensors, numbers, strings, lists).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Iterable

import torch

from .atomic import atomic_path, write_json

STEP_FILE = re.compile(r"^step-(\d+)\.pt$")
#: configuration fields that may change between an interrupted run and its resumption (`parallel`:
#: replicated and sharded runs write the same checkpoint layout and train the same maths; `compile`: the same
#: maths compiled; `rollout_ahead`: the same pairs from larger teacher batches; `offload_frozen`: where the
#: frozen models wait between rollouts)
RESUMABLE_CHANGES = ("steps", "log_every", "checkpoint_every", "checkpoint_keep", "parallel", "compile",
                     "rollout_ahead", "offload_frozen")
#: configuration fields added after checkpoints existed, with the value every earlier run had: hashed only
#: when they differ from it, so a checkpoint written before the field existed still resumes
ADDED_LATER = {"optimizer": "adamw"}


def _sha256_files(folder: Path, subfolders: Iterable[str]) -> str:
    h = hashlib.sha256()
    for sub in subfolders:
        for f in sorted(p for p in (folder / sub).rglob("*") if p.is_file()):
            h.update(str(f.relative_to(folder)).encode())
            with f.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(config: dict, teacher_dir: str | Path, prompts: list[str], black_latent: torch.Tensor | None,
                num_processes: int) -> dict:
    """The components (each a hash or value) and their combined id, `fingerprint["id"]`."""
    training = {k: v for k, v in config.items()
                if k not in RESUMABLE_CHANGES and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    parts = {
        "config": _sha256_text(json.dumps(training, sort_keys=True, default=str)),
        "teacher": _sha256_files(Path(teacher_dir), ("transformer", "text_encoder", "tokenizer")),
        "prompts": _sha256_text("\n".join(prompts)),
        "black_latent": "none" if black_latent is None else hashlib.sha256(
            black_latent.detach().cpu().contiguous().float().numpy().tobytes()).hexdigest(),
        "num_processes": int(num_processes),
    }
    parts["id"] = _sha256_text(json.dumps(parts, sort_keys=True))[:16]
    parts["training_config"] = training
    return parts


def step_files(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_FILE.match(p.name))]
    return sorted(found)


class Checkpoints:
    """Checkpoints of one fingerprint under `root`."""

    def __init__(self, root: str | Path, fp: dict):
        self.root, self.fp = Path(root), fp
        self.folder = self.root / fp["id"]

    def path(self, step: int) -> Path:
        return self.folder / f"step-{step:08d}.pt"

    def latest(self) -> Path | None:
        files = step_files(self.folder)
        return files[-1][1] if files else None

    def others(self) -> list[Path]:
        """Checkpoint folders under root that belong to other fingerprints."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.folder and step_files(p))

    def save(self, step: int, state: dict, keep: int) -> Path:
        """Write step `step` atomically, then delete all but the newest `keep` of this fingerprint."""
        if not (self.folder / "fingerprint.json").is_file():
            write_json(self.folder / "fingerprint.json", self.fp)
        path = self.path(step)
        with atomic_path(path) as tmp:
            torch.save({**state, "fingerprint": self.fp}, tmp)
        for _, old in step_files(self.folder)[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def resolve(self, resume: str | Path | None) -> Path | None:
        """None: start afresh. "latest": this fingerprint's newest checkpoint, None if there is none.
        A path: that checkpoint file, or the newest one in that folder; missing stops with its name."""
        if resume is None:
            return None
        if str(resume) == "latest":
            return self.latest()
        p = Path(resume)
        if p.is_dir():
            files = step_files(p)
            if not files:
                raise ValueError(f"--resume {p}: no step-*.pt checkpoint in that folder")
            return files[-1][1]
        if not p.is_file():
            raise ValueError(f"--resume {p}: no such checkpoint file")
        return p

    def load(self, path: Path) -> dict:
        """Load a checkpoint and refuse it, naming what differs, if it was trained on something else."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a file that is not a checkpoint of ours
            raise ValueError(f"cannot read checkpoint {path}: {e}") from e
        theirs = state.get("fingerprint", {})
        if theirs.get("id") != self.fp["id"]:
            diffs = [k for k in ("teacher", "prompts", "black_latent", "num_processes") if theirs.get(k) != self.fp[k]]
            a, b = _flat(theirs.get("training_config", {})), _flat(self.fp["training_config"])
            diffs += [f"distill.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            raise ValueError(f"checkpoint {path} was trained with a different {', '.join(diffs) or 'setup'}; "
                             "resume it with the same configuration, teacher, prompts and process count, or start afresh")
        return state


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, default=str)
    return out


def rng_state() -> dict:
    """This process's global RNG states (Python's `random`, torch's CPU and CUDA generators)."""
    return {
        "python": _jsonable(random.getstate()),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(_tupled(state["python"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def python_rng_state(rng: random.Random) -> list:
    return _jsonable(rng.getstate())


def set_python_rng_state(rng: random.Random, saved) -> None:
    rng.setstate(_tupled(saved))


def _jsonable(python_state):
    """random.getstate() as nested lists (what weights_only loading accepts); `_tupled` undoes it."""
    version, internal, gauss = python_state
    return [version, list(internal), gauss]


def _tupled(saved) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)
