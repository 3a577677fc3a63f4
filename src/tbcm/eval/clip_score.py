"""CLIP score, 100 * cos(image embedding, prompt embedding), with open_clip.

One function for both evaluators: OpenAI CLIP ViT-L/14 on MJHQ-30k (the model Sana's toolkit
uses), and the embedded world's judge (an open_clip CLIP with the world's own tokenizer and image
normalisation, world/evaluate.py). Prompts longer than the text tower's context are truncated by the
tokenizer (open_clip's keeps <start>, the first tokens and <end>). Negative cosines are kept, not
clipped at 0, so a mean over a set is not biased upwards.
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


@dataclass
class ClipScorer:
    """preprocess: one PIL RGB image -> the image tower's input tensor; encode_images: a stacked batch of
    those -> L2-normalised [N, D]; encode_texts: prompts -> L2-normalised [N, D]. Preprocessing is its own
    step so that DataLoader workers can do it (decoding and resizing a 1024 px image costs more of a CPU
    than the tower costs a GPU: benchmarks/image_io.py). name: what the metrics record; tag: a short
    file-name-safe id that changes with the architecture and weights, naming the cached CLIP scores of the
    real images (eval/reference.py); None: scores that cannot be cached, so clip_scores works and
    evaluate_model, which reads the real images' scores from the cache, does not."""

    name: str
    preprocess: Callable[[Image.Image], torch.Tensor]
    encode_images: Callable[[torch.Tensor], torch.Tensor]
    encode_texts: Callable[[list[str]], torch.Tensor]
    tag: str | None = None


def _as_pil(x) -> Image.Image:
    if isinstance(x, Image.Image):
        return x.convert("RGB")
    if isinstance(x, (str, Path)):
        with Image.open(x) as im:
            return im.convert("RGB")
    return Image.fromarray(np.asarray(x, dtype=np.uint8))


class _Preprocessed(torch.utils.data.Dataset):
    """Image i (a file, PIL image or uint8 HWC array) as the image tower's input."""

    def __init__(self, images: Sequence, preprocess: Callable[[Image.Image], torch.Tensor]):
        self.images, self.preprocess = images, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(_as_pil(self.images[i]))


@torch.no_grad()
def clip_scores(scorer: ClipScorer, images: Sequence, prompts: Sequence[str], batch_size: int = 64,
                workers: int = 0, progress: bool = False, description: str = "CLIP score") -> np.ndarray:
    """Per-pair CLIP score [N]; `images` are files, PIL images or uint8 HWC arrays. workers: DataLoader
    processes decoding and preprocessing the images (evaluate.decode_workers; 0: this process;
    eval/loader.py); the scores are the same for any count. progress: a bar over the batches."""
    if len(images) != len(prompts):
        raise ValueError(f"CLIP score needs one prompt per image, got {len(images)} images and {len(prompts)} prompts")
    if len(images) == 0:
        raise ValueError("CLIP score of an empty set")
    batches = tqdm(ordered_batches(_Preprocessed(images, scorer.preprocess), batch_size, workers), desc=description,
                   total=-(-len(images) // batch_size), disable=not progress)
    out = []
    for i, x in zip(range(0, len(images), batch_size), batches):
        img = scorer.encode_images(x).float()
        txt = scorer.encode_texts(list(prompts[i : i + batch_size])).float().to(img.device)
        out.append((100 * (img * txt).sum(-1)).cpu())
    scores = torch.cat(out).numpy().astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(f"{scorer.name}: non-finite CLIP scores")
    return scores


def mean_by_category(values: np.ndarray, cats: Sequence[str]) -> dict[str, float]:
    cats = np.asarray(cats)
    return {c: float(values[cats == c].mean()) for c in sorted(set(cats.tolist()))}


def open_clip_scorer(model: str, weights: str | Path, device: str | torch.device = "cpu") -> ClipScorer:
    """An open_clip model built from its architecture name and a local weights file (never a download).

    OpenAI's ViT-L/14 weights need the architecture `ViT-L-14-quickgelu`: OpenAI trained with
    QuickGELU, and open_clip's plain `ViT-L-14` would run them with the wrong activation. An architecture
    open_clip does not ship is read from `<model>.json` (open_clip's model-config format) beside the weights.
    """
    import open_clip

    from .weights import sha256

    weights = Path(weights)
    if not weights.is_file():
        raise ValueError(f"CLIP weights file not found: {weights}")
    digest = sha256(weights)
    config = weights.parent / f"{model}.json"
    if config.is_file():
        open_clip.add_model_config(config)
    net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=str(weights), device=device)
    net.eval()
    tokenizer = open_clip.get_tokenizer(model)

    def encode_images(x: torch.Tensor) -> torch.Tensor:
        return net.encode_image(x.to(device), normalize=True)

    def encode_texts(prompts: list[str]) -> torch.Tensor:
        return net.encode_text(tokenizer(prompts).to(device), normalize=True)

    # the architecture is in the tag as well as the weights: the same file under ViT-L-14 scores differently
    return ClipScorer(f"open_clip {model} ({weights.name})", preprocess, encode_images, encode_texts,
                      tag=f"clip-{model}-{digest[:8]}")
