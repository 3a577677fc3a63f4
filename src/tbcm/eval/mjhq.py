"""MJHQ-30k's on-disk layout, shared by the real benchmark, the embedded world and generated sets.

    <root>/meta_data.json            {id: {"category": str, "prompt": str}}
    <root>/imgs/<category>/<id>.jpg  (generated sets: <id>.png, lossless)

This is the layout of playgroundai/MJHQ-30K once `mjhq30k_imgs.zip` is unpacked next to its
`meta_data.json`; the embedded world writes the same (`world/shapes.py`).
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
        if not str(v["category"]).strip() or "/" in str(v["category"]):
            raise ValueError(f"{path}: entry {k!r} has an unusable category {v['category']!r}")
    return meta


def subset(meta: dict[str, dict], per_category: int | None = None, seed: int = 0, n: int | None = None) -> list[str]:
    """The ids to evaluate, sorted: all of them, or `per_category` ids of every category drawn with
    `seed` (a category with fewer keeps all of its ids); then, if `n` is given, the first `n`.

    Sorted ids make the choice independent of the JSON's key order, so a subset is a function of
    (meta, per_category, seed, n) alone.
    """
    ids = sorted(meta)
    if per_category is not None:
        if per_category < 1:
            raise ValueError(f"per_category must be >= 1, got {per_category}")
        rng = random.Random(seed)
        chosen = []
        for cat, pool in sorted(by_category(ids, meta).items()):
            chosen += rng.sample(pool, min(per_category, len(pool)))
        ids = sorted(chosen)
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        ids = ids[:n]
    return ids


def by_category(ids: list[str], meta: dict[str, dict]) -> dict[str, list[str]]:
    """category -> its ids, in the order given."""
    out: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        out[meta[i]["category"]].append(i)
    return dict(out)


def global_index(meta: dict[str, dict]) -> dict[str, int]:
    """id -> its position among all sorted ids: the per-prompt seed offset, the same whatever subset."""
    return {k: i for i, k in enumerate(sorted(meta))}


def image_path(root: str | Path, meta: dict[str, dict], id_: str, ext: str = "jpg") -> Path:
    return Path(root) / "imgs" / meta[id_]["category"] / f"{id_}.{ext}"


def image_paths(root: str | Path, meta: dict[str, dict], ids: list[str], ext: str = "jpg") -> list[Path]:
    """Paths of `ids`; a missing image stops here, naming the first few."""
    paths = [image_path(root, meta, i, ext) for i in ids]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} image(s) missing under {root}, e.g. {missing[:3]}")
    return paths


def load_images(root: str | Path, meta: dict[str, dict], ids: list[str], resolution: int | None = None,
                ext: str = "jpg") -> torch.Tensor:
    """uint8 [N, H, W, 3]; resized (bicubic) to `resolution` if given."""
    return read_images(image_paths(root, meta, ids, ext), resolution)


def read_images(paths: list[Path], resolution: int | None = None) -> torch.Tensor:
    """uint8 [N, H, W, 3] of these image files, RGB; resized (bicubic) to `resolution` if given."""
    arrs = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        if resolution is not None and im.size != (resolution, resolution):
            im = im.resize((resolution, resolution), Image.BICUBIC)
        arrs.append(np.asarray(im))
    return torch.from_numpy(np.stack(arrs))
