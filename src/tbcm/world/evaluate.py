"""Scoring a teacher or student of the embedded world through the same evaluation as MJHQ-30k
(eval/evaluate.py): the judge plays CLIP (its towers in `ClipScorer`) and, by default, Inception
(its image tower as clean-fid's custom feature extractor); zero-shot accuracy of each of the
caption's five attributes (shape, colour, background, size, position) is added to every real and
generated row (the VAE-reconstruction row has shape and colour only): shape and colour are issue
3's bars, the other three say what a generator gets wrong (docs/world-budget.md, session 6: a
teacher's position accuracy near chance pointed at its text encoder). `fid_features="inception"`
scores FID with the real Inception-v3 features instead (eval/weights.py finds the file offline)."""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..eval.clip_score import ClipScorer
from ..eval.evaluate import EvalSettings, evaluate_model
from ..eval.fid import FeatureExtractor, inception_extractor, keep_size
from ..eval.mjhq import load_images, load_meta, read_images, subset
from ..eval.weights import find_inception, sha256
from ..eval.stderr import clustered_standard_error
from .autoencoder import from_model_space, reconstruct
from .build import attribute_accuracy, attribute_correct, judge_token_ids, load_judge
from .shapes import ATTRIBUTE_VALUES
from .judge import image_features, text_features


def judge_extractor(judge, cfg, judge_dir: Path) -> FeatureExtractor:
    """The judge's image tower (L2-normalised embeddings) as clean-fid's `custom_feat_extractor`; it
    resizes by itself (judge.preprocess), so clean-fid hands it the images unresized. clean-fid moves
    each batch to the evaluation's device (the GPU where there is one); the batch goes back to the
    judge's own device (the CPU, where load_judge puts it)."""
    digest = sha256(Path(judge_dir) / "judge.pt")
    device = next(judge.parameters()).device
    return FeatureExtractor(f"world judge image tower, judge.pt sha256 {digest[:12]}", f"judge-{digest[:8]}",
                            lambda x: image_features(judge, x.to(device), cfg.image_size), keep_size)


def _hwc(image) -> torch.Tensor:
    return torch.from_numpy(np.array(image))  # uint8 [H, W, 3]: the judge resizes by itself


def judge_scorer(judge, tok, cfg, judge_dir: Path) -> ClipScorer:
    """The judge's two towers as CLIP; its tag, like judge_extractor's, changes with judge.pt."""
    digest = sha256(Path(judge_dir) / "judge.pt")

    def encode_images(x: torch.Tensor) -> torch.Tensor:
        return image_features(judge, x, cfg.image_size)

    def encode_texts(prompts) -> torch.Tensor:
        return text_features(judge, judge_token_ids(tok, list(prompts), cfg.context_length))

    return ClipScorer(f"world judge, judge.pt sha256 {digest[:12]}", _hwc, encode_images, encode_texts,
                      tag=f"judge-{digest[:8]}")


@torch.no_grad()
def reconstruction_accuracy(vae, judge, tok, jcfg, images: torch.Tensor, attrs: list[dict], batch_size: int = 256) -> dict:
    """The judge's shape and colour accuracy on real images passed through the VAE (encode, decode):
    what the latent space keeps of the real images (docs/world-budget.md, session 5: a plain-loss VAE
    kept 78% of the shapes). Not a strict cap on a generator: a decoder trained on noisy latents
    (session 7) can render a sample's exaggerated latents more legibly than the encoder's own."""
    acc = attribute_accuracy(judge, tok, from_model_space(reconstruct(vae, images, batch_size)), attrs, jcfg)
    return {"shape_accuracy": acc["shape"], "color_accuracy": acc["color"], "n": len(attrs)}


def evaluate_folder(folder: Path, data: Path, judge_dir: Path, steps_list, guidance: float, n_eval: int | None,
                    seed: int, grid_dir: Path | None = None, label: str = "", *, samples_dir: Path | None = None,
                    ref_dir: Path | None = None, resolution: int | None = 512, fid_features: str = "judge",
                    weights_dir: str | Path = "weights", per_category: int | None = None, batch_size: int = 64,
                    progress: bool = True, compute_reference: bool = True, reconstructions: bool = False,
                    decode_workers: int = 0, precision: str = "fp32") -> dict:
    """Metrics of a world teacher/student folder on the held-out split `data/eval`.

    Without `samples_dir` / `ref_dir` the images and the reference live in a temporary folder for this
    call only (no resume, no cache). `compute_reference=False`: the reference must be cached in
    `ref_dir` already (the pipeline's fid_reference stage). `reconstructions`: add a
    "vae_reconstructions" row, the judge's accuracy on the evaluated real images through the folder's
    VAE (`reconstruction_accuracy`)."""
    if fid_features not in ("judge", "inception"):
        raise ValueError(f"evaluate.fid_features must be 'judge' or 'inception', got {fid_features!r}")
    if not compute_reference and ref_dir is None:
        raise ValueError("a reference that must be cached needs its folder (ref_dir)")
    inception = find_inception(weights_dir) if fid_features == "inception" else None  # before any work
    root = Path(data) / "eval"
    meta = load_meta(root)  # stops on a malformed set before any work
    attrs = json.loads((root / "attributes.json").read_text())
    judge, tok, jcfg = load_judge(Path(judge_dir))
    extractor = inception_extractor(inception) if inception else judge_extractor(judge, jcfg, judge_dir)

    def accuracy(paths: Sequence[Path], ids: list[str]) -> dict:
        right = attribute_correct(judge, tok, read_images(list(paths)), [attrs[i] for i in ids], jcfg,
                                  keys=tuple(ATTRIBUTE_VALUES))
        tuples = [tuple(sorted(attrs[i].items())) for i in ids]  # prompts differing only in wording
        out = {f"{key}_accuracy": float(c.float().mean()) for key, c in right.items()}
        out["attribute_tuples"] = len(set(tuples))
        if out["attribute_tuples"] > 1:
            out.update({f"{key}_accuracy_se": clustered_standard_error(c, tuples) for key, c in right.items()})
        return out

    settings = EvalSettings(steps=list(steps_list), guidance=guidance, seed=seed, precision=precision, n=n_eval,
                            per_category=per_category,
                            resolution=resolution, batch_size=batch_size, decode_workers=decode_workers,
                            progress=progress, compute_reference=compute_reference)
    with ExitStack() as stack:
        scratch = lambda: Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tbcm-eval-")))
        out = evaluate_model(folder, root, samples_dir or scratch(), ref_dir or scratch(), extractor,
                             judge_scorer(judge, tok, jcfg, judge_dir), settings, grid_dir, label, extra=accuracy)
    if reconstructions:
        from diffusers import AutoencoderDC

        ids = subset(meta, per_category, seed, n_eval)  # the ids evaluate_model scored
        vae = AutoencoderDC.from_pretrained(Path(folder) / "vae").eval()
        out["vae_reconstructions"] = reconstruction_accuracy(vae, judge, tok, jcfg, load_images(root, meta, ids),
                                                             [attrs[i] for i in ids])
    return out
