"""Shared by the evaluation tests: a network-blocking fixture and a tiny open_clip model in a local file."""

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
    return tmp_path / "weights" / "tiny.pt"
