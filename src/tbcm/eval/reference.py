"""The FID reference: features of every real image of a set, computed once and cached as a file.

The file name is a function of what the features depend on, so a cached file is never stale and can
be versioned as a DVC artifact:

    <ref_dir>/<set>-<meta sha256[:8]>_<extractor tag>_<resolution>px.npz

(the extractor tag carries a hash of its weights, e.g. `inception-7ff4a85c` or `judge-1a2b3c4d`).
It holds all images of the set, not only an evaluated subset, so that every subset and every model
is scored against the same statistics; FID per category uses the rows of that category.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from .fid import FeatureExtractor, file_features
from .mjhq import image_paths, load_meta


@dataclass
class Reference:
    ids: list[str]
    categories: list[str]
    feats: np.ndarray  # float32 [N, D]
    path: Path

    def rows(self, ids: list[str]) -> np.ndarray:
        index = {k: i for i, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in index]
        if missing:
            raise ValueError(f"{self.path}: no reference features for ids {missing[:3]}")
        return self.feats[[index[k] for k in ids]]


def reference_path(ref_dir: str | Path, data_root: str | Path, extractor: FeatureExtractor,
                   resolution: int | None) -> Path:
    data_root = Path(data_root)
    meta_sha = hashlib.sha256((data_root / "meta_data.json").read_bytes()).hexdigest()[:8]
    res = f"{resolution}px" if resolution is not None else "native"
    return Path(ref_dir) / f"{data_root.resolve().name}-{meta_sha}_{extractor.tag}_{res}.npz"


def reference_features(data_root: str | Path, extractor: FeatureExtractor, resolution: int | None,
                       ref_dir: str | Path, batch_size: int = 64, device: str | torch.device = "cpu",
                       progress: bool = True, compute: bool = True, workers: int = 0) -> Reference:
    """Load the cached reference of this (set, extractor, resolution), or compute and cache it.

    `compute=False`: only load; a missing file stops (the pipeline's evaluation stages read the file
    its fid_reference stage wrote and must never add one to that stage's output folder). workers:
    DataLoader processes decoding the images (fid.file_features)."""
    meta = load_meta(data_root)
    ids = sorted(meta)
    cats = [meta[i]["category"] for i in ids]
    path = reference_path(ref_dir, data_root, extractor, resolution)
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            stored_ids, feats = z["ids"].tolist(), z["feats"]
        if stored_ids != ids or len(feats) != len(ids):
            raise ValueError(f"{path} does not hold the images of {data_root} (ids differ); delete it to recompute")
        print(f"FID reference: {path} ({len(ids)} images, cached)")
        return Reference(ids, cats, feats, path)
    if not compute:
        found = sorted(p.name for p in Path(ref_dir).glob("*.npz")) if Path(ref_dir).is_dir() else []
        raise ValueError(f"no cached FID reference {path.name} in {ref_dir} (found: {', '.join(found) or 'none'}); "
                         f"compute it first with tbcm eval-reference and the same evaluate settings")
    feats = file_features(image_paths(data_root, meta, ids), extractor, resolution, batch_size, device, progress,
                          description=f"reference {Path(data_root).name}", workers=workers)
    info = {"set": str(Path(data_root).resolve()), "extractor": extractor.name, "resolution": resolution,
            "n": len(ids)}
    with atomic_path(path) as tmp:
        np.savez(tmp, ids=np.array(ids), categories=np.array(cats), feats=feats, info=np.array(json.dumps(info)))
    print(f"FID reference: {path} ({len(ids)} images, computed)")
    return Reference(ids, cats, feats, path)
