"""Scoring one model on an MJHQ-layout set: generate per step count, then FID and CLIP score, overall
and per category, with whichever evaluators the caller hands in (Inception-v3 + OpenAI CLIP on
MJHQ-30k, the judge on the embedded world: world/evaluate.py).

The metrics of a model are one JSON object: "real" (the real images of the evaluated prompts: FID the
floor set by the subset's size, 0 when every image of the set is evaluated; CLIP score the real images'
own, read from the cache beside the FID reference, eval/reference.py, named in the row's
"clip_reference") and one "<k>_step" row per step count. Every row carries what it is a function of,
so rows of different runs can be compared (`dvc metrics diff`):

    {"fid", "clip_score", "n", "per_category": {cat: {"fid", "clip_score", "n"}},
     "seed", "resolution", "feature_extractor", "clip_model", "reference",
     ["clip_reference"] (real) or ["steps", "guidance", "precision"] (generated), ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .clip_score import ClipScorer, clip_scores, mean_by_category
from .fid import FeatureExtractor, fid, fid_by_category, file_features
from .generate import fill_folder, list_folder, load_generator, open_folder
from .grids import image_grid
from .mjhq import global_index, image_paths, load_images, load_meta, subset
from .processes import Group
from .reference import Reference, real_clip_scores, reference_features

GRID_SIZE = 24


@dataclass
class EvalSettings:
    steps: Sequence[int]
    guidance: float = 4.5
    seed: int = 0
    precision: str = "fp32"  # the generating networks' (sample.precision, eval/generate.py)
    n: int | None = None
    per_category: int | None = None
    resolution: int | None = 512
    batch_size: int = 64
    decode_workers: int = 0  # DataLoader processes reading images back for the metrics (fid.file_features)
    text_max_length: int = 24
    text_instruction: tuple[str, ...] | None = None  # models.sana.prompt_encoding
    progress: bool = True
    device: str | None = None
    # False: the FID reference and the real CLIP scores must already be cached in ref_dir (the pipeline's
    # fid_reference stage wrote them); a missing file stops before any generation instead of being computed there
    compute_reference: bool = True
    extra: dict = field(default_factory=dict)  # recorded in every row (e.g. the model's label)


def score_images(paths: Sequence[Path], feats: np.ndarray, clip: np.ndarray, ids: list[str], cats: list[str],
                 ref: Reference, extra: Callable[[Sequence[Path], list[str]], dict] | None = None) -> dict:
    """FID against the reference and CLIP score (the per-image scores `clip`), overall and for every
    category present."""
    per_fid = fid_by_category(feats, cats, ref.values, ref.categories)
    per_clip = mean_by_category(clip, cats)
    counts = {c: int(sum(1 for x in cats if x == c)) for c in per_clip}
    row = {"fid": fid(feats, ref.values), "clip_score": float(clip.mean()), "n": len(paths),
           "per_category": {c: {"fid": per_fid[c], "clip_score": per_clip[c], "n": counts[c]} for c in sorted(per_clip)}}
    if extra is not None:
        row.update(extra(paths, ids))
    return row


def evaluate_model(model_dir: str | Path, data_root: str | Path, samples_root: str | Path, ref_dir: str | Path,
                   extractor: FeatureExtractor, scorer: ClipScorer, settings: EvalSettings,
                   grid_dir: str | Path | None = None, label: str = "",
                   extra: Callable[[Sequence[Path], list[str]], dict] | None = None,
                   group: Group = Group()) -> dict | None:
    """Metrics of the model in `model_dir` (a SanaPipeline or SanaSprintPipeline folder) on the set at
    `data_root`; its images go to `samples_root/<k>_step/` (resumable), grids to `grid_dir`.

    With a `group` of several processes (eval/processes.py), every process generates and scores its share
    of the images, and the main one, with every row gathered, computes the metrics and returns them; the
    others return None."""
    s = settings
    device = s.device or ("cuda" if torch.cuda.is_available() else "cpu")
    meta = load_meta(data_root)
    ids = subset(meta, s.per_category, s.seed, s.n)
    prompts = [meta[i]["prompt"] for i in ids]
    cats = [meta[i]["category"] for i in ids]
    real_paths = image_paths(data_root, meta, ids)  # a missing real image stops before any generation
    if group.main:  # the references too: a missing cached file stops before any generation
        ref = reference_features(data_root, extractor, s.resolution, ref_dir, s.batch_size, device, s.progress,
                                 compute=s.compute_reference, workers=s.decode_workers)
        real_clip = real_clip_scores(data_root, scorer, ref_dir, s.batch_size, s.progress,
                                     compute=s.compute_reference, workers=s.decode_workers)
    gen = load_generator(model_dir, s.text_max_length, device, s.text_instruction, s.precision)
    folders = {steps: Path(samples_root) / f"{steps}_step" for steps in s.steps}
    # every step count's images first, then the scores: each process goes on to score as soon as it is done
    if group.main:
        for steps, folder in folders.items():
            open_folder(gen, folder, steps, s.guidance, s.seed, s.batch_size, replace_stale=True)
    group.barrier()
    made = {steps: fill_folder(gen, meta, ids, global_index(meta), folder, steps, s.guidance, s.seed, s.batch_size,
                               s.progress and group.main, group)
            for steps, folder in folders.items()}
    if group.size > 1:
        print(f"{label.rstrip('_')} process {group.rank + 1}/{group.size}: generated ".lstrip()
              + ", ".join(f"{m['generated']} at {steps} step(s)" for steps, m in made.items()), flush=True)
    generated = {steps: group.total(m["generated"]) for steps, m in made.items()}  # waits for every process
    del gen  # the model's memory, before the feature extractor and CLIP run
    bs = s.batch_size
    if s.decode_workers and group.main:
        print(f"{label.rstrip('_') or 'model'}: reading the images back with {s.decode_workers} decode worker(s) per process",
              flush=True)

    # Scoring: every process computes the features and CLIP scores of its dealt batches, the main one gets
    # them all in order (Group.gathered) and computes the metrics.
    def clip_of(paths):
        return group.gathered(len(ids), bs, lambda ks: clip_scores(
            scorer, [paths[k] for k in ks], [prompts[k] for k in ks], bs, s.decode_workers))

    def features_of(paths, description):
        return group.gathered(len(ids), bs, lambda ks: file_features(
            [paths[k] for k in ks], extractor, s.resolution, bs, device, s.progress and group.main,
            description=description + (f", process 1/{group.size}" if group.size > 1 else ""),
            workers=s.decode_workers))

    scores = {}
    for steps, m in made.items():
        paths = m["paths"]
        scores[steps] = (paths, features_of(paths, f"{label}{steps} step(s)"), clip_of(paths))
    if not group.main:
        return None
    common = {"seed": s.seed, "resolution": s.resolution, "feature_extractor": extractor.name,
              "clip_model": scorer.name, "reference": ref.path.name, **s.extra}
    out = {"real": {**score_images(real_paths, ref.rows(ids), real_clip.rows(ids), ids, cats, ref, extra), **common,
                    "clip_reference": real_clip.path.name}}
    for steps, folder in folders.items():
        list_folder(folder, meta, ids)
        print(f"{label}{steps} step(s): {generated[steps]} generated, {len(ids) - generated[steps]} already there"
              + (f" ({group.size} processes)" if group.size > 1 else ""))
        paths, feats, clip = scores[steps]
        row = score_images(paths, feats, clip, ids, cats, ref, extra)
        out[f"{steps}_step"] = {**row, "steps": int(steps), "guidance": float(s.guidance), "precision": s.precision,
                                **common}
        if grid_dir is not None:
            k = min(GRID_SIZE, len(ids))
            images = load_images(folder, meta, ids[:k], ext="png")
            image_grid(images, Path(grid_dir) / f"{label}{steps}step.png", ncol=8, captions=prompts[:k],
                       title=f"{label}{steps} step(s), CFG {s.guidance}")
    return out
