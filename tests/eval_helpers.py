"""Shared by the evaluation tests: a network-blocking fixture, a tiny open_clip model in a local file and a
small set in MJHQ-30k's layout."""

import json
import socket
import urllib.request
from pathlib import Path

import pytest
import torch


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


TINY_CLIP = "tbcm-tiny-test"


def tiny_open_clip(tmp_path: Path) -> Path:
    """Register a tiny open_clip architecture from a local config and save its random weights to
    tmp_path/weights/tiny.pt (the same route as OpenAI's ViT-L/14 file: name + local file)."""
    import open_clip

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "configs")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP)
    (tmp_path / "weights").mkdir(exist_ok=True)
    torch.save(model.state_dict(), tmp_path / "weights" / "tiny.pt")
    # beside the weights too, where another process (a workflow stage) finds the architecture
    (tmp_path / "weights" / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    return tmp_path / "weights" / "tiny.pt"


def mjhq_layout_set(eval_dir: Path, out: Path, categories: int = 2, per_category: int = 4) -> list[str]:
    """A small set in MJHQ-30k's layout (meta_data.json, imgs/<category>/<id>.jpg) at `out`, copied from the
    first `categories` categories of a world's eval folder, up to `per_category` images each; returns its ids."""
    import shutil

    from tbcm.eval.mjhq import load_meta, subset

    meta = load_meta(eval_dir)
    cats = sorted({m["category"] for m in meta.values()})[:categories]
    ids = subset({i: m for i, m in meta.items() if m["category"] in cats}, per_category=per_category)
    for i in ids:
        dst = out / "imgs" / meta[i]["category"] / f"{i}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(eval_dir / "imgs" / meta[i]["category"] / f"{i}.jpg", dst)
    (out / "meta_data.json").write_text(json.dumps({i: meta[i] for i in ids}))
    return ids
