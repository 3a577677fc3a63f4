"""What the evaluation needs of the real images, computed once per set and cached as files: the FID
reference (features of every real image) and the real images' CLIP scores against their own prompts
(the "real" row's CLIP score, which a generator's is read beside).

A file's name is a function of the set's meta file, the network's weights (and CLIP's architecture name) and
the resolution, so a file is not read for another set, network or resolution, and can be versioned as a
DVC artifact. The name does not cover the image files' bytes, the judge's tokenizer and config, or an
open_clip architecture's JSON beside the weights: a folder reused by hand after changing only those
serves the old numbers (the pipeline's stage starts from an empty folder whenever its inputs, the set
and the judge folder, change):

    <ref_dir>/<set>-<meta sha256[:8]>_<extractor tag>_<resolution>px.npz   FID features [N, D]
    <ref_dir>/<set>-<meta sha256[:8]>_<CLIP tag>_clip.npz                  CLIP scores [N]

(a tag carries a hash of the weights, e.g. `inception-7ff4a85c`, `clip-ViT-L-14-quickgelu-1a2b3c4d` or
`judge-1a2b3c4d`; the prompts are in the meta file; CLIP scores do not depend on evaluate.resolution,
the CLIP tower brings every image to its own size). A file holds all images of the set, not only an
evaluated subset, so that every subset and every model is scored against the same numbers; a category's
FID uses the rows of that category. Both are computed in the pipeline's fid_reference stage, so the
evaluation stages read no real image (for a small evaluate.n the whole set's CLIP scores cost the stage
more than the two evaluations save at first: docs/evaluation.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..atomic import atomic_path
from .clip_score import ClipScorer, clip_scores
from .fid import FeatureExtractor, file_features
from .mjhq import image_paths, load_meta


@dataclass
class Reference:
    """One cached value per real image of a set: FID features (float32 [N, D]) or CLIP scores (float64 [N])."""

    ids: list[str]
    categories: list[str]
    values: np.ndarray
    path: Path

    def rows(self, ids: list[str]) -> np.ndarray:
        index = {k: i for i, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in index]
        if missing:
            raise ValueError(f"{self.path}: no reference values for ids {missing[:3]}")
        return self.values[[index[k] for k in ids]]


def _set_name(data_root: Path) -> str:
    meta_sha = hashlib.sha256((data_root / "meta_data.json").read_bytes()).hexdigest()[:8]
    return f"{data_root.resolve().name}-{meta_sha}"


def reference_path(ref_dir: str | Path, data_root: str | Path, extractor: FeatureExtractor,
                   resolution: int | None) -> Path:
    res = f"{resolution}px" if resolution is not None else "native"
    return Path(ref_dir) / f"{_set_name(Path(data_root))}_{extractor.tag}_{res}.npz"


def real_clip_path(ref_dir: str | Path, data_root: str | Path, scorer: ClipScorer) -> Path:
    if scorer.tag is None:
        raise ValueError(f"CLIP scorer {scorer.name!r} has no tag: its scores cannot be cached")
    return Path(ref_dir) / f"{_set_name(Path(data_root))}_{scorer.tag}_clip.npz"


def _cached(path: Path, what: str, data_root: str | Path, ref_dir: str | Path, compute: bool,
            make: Callable[[list[Path], list[str]], np.ndarray], info: dict) -> Reference:
    """The values in `path` (one per image of the set, checked against the set's ids), or, if there is no
    such file and `compute`, make(image paths, their prompts), in the set's id order, written there
    atomically. `compute=False`: a missing file stops (the pipeline's evaluation stages read the files its
    fid_reference stage wrote and must never add one to that stage's output folder)."""
    meta = load_meta(data_root)
    ids = sorted(meta)
    cats = [meta[i]["category"] for i in ids]
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            # "feats": a FID reference written before the CLIP scores were cached beside it (same features)
            key = next((k for k in ("values", "feats") if k in z.files), None)
            if key is None or "ids" not in z.files:
                raise ValueError(f"{path} is not a cache this code wrote (no ids and values); delete it to recompute")
            stored_ids, values = z["ids"].tolist(), z[key]
        if stored_ids != ids or len(values) != len(ids):
            raise ValueError(f"{path} does not hold the images of {data_root} (ids differ); delete it to recompute")
        print(f"{what}: {path} ({len(ids)} images, cached)")
        return Reference(ids, cats, values, path)
    if not compute:
        found = sorted(p.name for p in Path(ref_dir).glob("*.npz")) if Path(ref_dir).is_dir() else []
        raise ValueError(f"no cached {what} {path.name} in {ref_dir} (found: {', '.join(found) or 'none'}); "
                         f"compute it first with tbcm eval-reference and the same evaluate settings")
    values = make(image_paths(data_root, meta, ids), [meta[i]["prompt"] for i in ids])
    info = {"set": str(Path(data_root).resolve()), "n": len(ids), **info}
    with atomic_path(path) as tmp:
        np.savez(tmp, ids=np.array(ids), categories=np.array(cats), values=values, info=np.array(json.dumps(info)))
    print(f"{what}: {path} ({len(ids)} images, computed)")
    return Reference(ids, cats, values, path)


def reference_features(data_root: str | Path, extractor: FeatureExtractor, resolution: int | None,
                       ref_dir: str | Path, batch_size: int = 64, device: str | torch.device = "cpu",
                       progress: bool = True, compute: bool = True, workers: int = 0) -> Reference:
    """The FID features of every image of the set (this extractor, at this resolution): cached, or computed
    and cached (`compute`). workers: DataLoader processes decoding the images (fid.file_features)."""
    def make(paths: list[Path], prompts: list[str]) -> np.ndarray:
        return file_features(paths, extractor, resolution, batch_size, device, progress,
                             description=f"reference {Path(data_root).name}", workers=workers)

    return _cached(reference_path(ref_dir, data_root, extractor, resolution), "FID reference", data_root, ref_dir,
                   compute, make, {"extractor": extractor.name, "resolution": resolution})


def real_clip_scores(data_root: str | Path, scorer: ClipScorer, ref_dir: str | Path, batch_size: int = 64,
                     progress: bool = True, compute: bool = True, workers: int = 0) -> Reference:
    """The CLIP score of every image of the set against its own prompt: cached, or computed and cached
    (`compute`). workers: DataLoader processes decoding the images (clip_score.clip_scores)."""
    def make(paths: list[Path], prompts: list[str]) -> np.ndarray:
        return clip_scores(scorer, paths, prompts, batch_size, workers, progress,
                           description=f"CLIP scores {Path(data_root).name}")

    return _cached(real_clip_path(ref_dir, data_root, scorer), "real CLIP scores", data_root, ref_dir, compute,
                   make, {"clip_model": scorer.name})
