"""MJHQ-30k's on-disk layout, shared by the real benchmark and the embedded world.

    <root>/meta_data.json            {id: {"category": str, "prompt": str}}
    <root>/imgs/<category>/<id>.jpg
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def load_meta(root: str | Path) -> dict[str, dict]:
    """The id -> {category, prompt} map; a missing file or an empty/ill-formed map stops here."""
    path = Path(root) / "meta_data.json"
    if not path.is_file():
        raise ValueError(f"no MJHQ-30k meta_data.json at {path}")
    meta = json.loads(path.read_text())
    if not isinstance(meta, dict) or not meta:
        raise ValueError(f"{path} holds no prompts")
    for k, v in meta.items():
        if not isinstance(v, dict) or "category" not in v or "prompt" not in v:
            raise ValueError(f"{path}: entry {k!r} lacks 'category' or 'prompt'")
        if not str(v["prompt"]).strip():
            raise ValueError(f"{path}: entry {k!r} has an empty prompt")
    return meta


def subset(meta: dict[str, dict], per_category: int | None = None, seed: int = 0) -> list[str]:
    """All ids (sorted), or `per_category` ids per category chosen deterministically by `seed`."""
    ids = sorted(meta)
    if per_category is None:
        return ids
    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}")
    by_cat: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        by_cat[meta[i]["category"]].append(i)
    rng = random.Random(seed)
    out = []
    for cat in sorted(by_cat):
        pool = by_cat[cat]
        out += sorted(rng.sample(pool, min(per_category, len(pool))))
    return out


def image_path(root: str | Path, meta: dict[str, dict], id_: str) -> Path:
    return Path(root) / "imgs" / meta[id_]["category"] / f"{id_}.jpg"


def load_images(root: str | Path, meta: dict[str, dict], ids: list[str], resolution: int | None = None) -> torch.Tensor:
    """uint8 [N, H, W, 3]; resized (bicubic) to `resolution` if given."""
    arrs = []
    for i in ids:
        p = image_path(root, meta, i)
        if not p.is_file():
            raise ValueError(f"image for id {i!r} missing: {p}")
        im = Image.open(p).convert("RGB")
        if resolution is not None and im.size != (resolution, resolution):
            im = im.resize((resolution, resolution), Image.BICUBIC)
        arrs.append(np.asarray(im))
    return torch.from_numpy(np.stack(arrs))
