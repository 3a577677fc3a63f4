"""Scoring a teacher or student of the embedded world with its judge: zero-shot shape and colour
accuracy against the prompt's attributes, CLIP score, and FID in the judge's image-feature space
against the held-out real images (clean-fid's Frechet distance on those features)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..eval.generate import generate, load_generator
from ..eval.grids import image_grid
from .build import attribute_accuracy, judge_token_ids, load_judge, load_split
from .judge import clip_scores, image_features


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    from cleanfid.fid import fid_from_feats

    return float(fid_from_feats(a.double().numpy(), b.double().numpy()))


def score_images(images, prompts, attrs, judge, tok, jcfg, real_feats) -> dict:
    acc = attribute_accuracy(judge, tok, images, attrs, jcfg)
    clip = clip_scores(judge, images, judge_token_ids(tok, prompts, jcfg.context_length), jcfg.image_size)
    feats = image_features(judge, images, jcfg.image_size)
    return {"shape_accuracy": acc["shape"], "color_accuracy": acc["color"], "clip_score": float(clip.mean()),
            "fid": frechet_distance(feats, real_feats), "n": len(images)}


def evaluate_folder(folder: Path, data: Path, judge_dir: Path, steps_list, guidance: float, n_eval: int, seed: int,
                    grid_dir: Path | None = None, label: str = "") -> dict:
    judge, tok, jcfg = load_judge(judge_dir)
    real, prompts, ids, attrs = load_split(data / "eval")
    real_feats = image_features(judge, real, jcfg.image_size)
    n = min(n_eval, len(prompts))
    gen = load_generator(folder)
    out = {"real": score_images(real[:n], prompts[:n], attrs[:n], judge, tok, jcfg, real_feats)}
    for steps in steps_list:
        imgs = generate(gen, prompts[:n], list(range(n)), steps, guidance, seed)
        out[f"{steps}_step"] = score_images(imgs, prompts[:n], attrs[:n], judge, tok, jcfg, real_feats)
        if grid_dir is not None:
            grid_dir.mkdir(parents=True, exist_ok=True)
            image_grid(imgs[:24], grid_dir / f"{label}{steps}step.png", ncol=8, captions=prompts[:24],
                       title=f"{label}{steps} step(s), CFG {guidance}")
    return out
