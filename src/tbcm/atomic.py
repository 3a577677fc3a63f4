"""Nothing half-written is ever trusted: every output is written to a temporary name next to its
final place and renamed into place only once complete (a rename is atomic on one filesystem)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary file path next to `path`; it replaces `path` only if the block finishes.
    The temporary name keeps the suffix, so writers that pick a format by suffix still work."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(out: str | Path):
    """Yield a temporary folder that replaces `out` only if the block finishes.

    Made with mkdir, not tempfile.mkdtemp: mkdtemp's folders are private (0700) and the renamed output would
    stay so, unreadable by the others of a group sharing a cluster's file system; mkdir applies the umask, as
    for every other file the pipeline writes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str))


def write_tables(out: str | Path | None, report: dict, text: str) -> None:
    """A benchmark's results as OUT.json (the numbers) and OUT.md (its tables); nothing when `out` is None."""
    if out:
        write_json(f"{out}.json", report)
        write_text(f"{out}.md", text)
