"""tbcm.atomic: outputs appear whole or not at all, with the permissions any other new file or folder gets."""

from __future__ import annotations

import os

import pytest

from tbcm.atomic import atomic_dir, atomic_path, write_text


def test_a_folder_replaces_its_target_only_when_complete(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "weights.bin").write_bytes(b"new")
    assert (out / "weights.bin").read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("killed")
    assert (out / "weights.bin").read_bytes() == b"new"  # the old output stays, the temporary is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_outputs_take_the_umask_like_any_new_file_not_a_private_mode(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "x").write_text("x")
        write_text(tmp_path / "file.txt", "x")
        (tmp_path / "plain").mkdir()
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777
    assert mode(tmp_path / "folder") == mode(tmp_path / "plain") == 0o755  # mkdtemp would give 0o700
    assert mode(tmp_path / "file.txt") == mode(tmp_path / "plain.txt") == 0o644


def test_a_file_replaces_its_target_only_when_complete(tmp_path):
    path = tmp_path / "m.json"
    write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
