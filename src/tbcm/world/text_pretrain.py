"""Teaching the world's text encoder its language before it is frozen.

Sana conditions on a *pretrained* Gemma-2 and freezes it: the encoder already reads "large orange star
on white" as an orange star on a white background. A tiny Gemma2 with random weights (text.py) does
not: its hidden states keep each word but hardly which role it plays (the shape's colour or the
background's, "top" of "top left"), and a teacher trained over it drew the asked-for shape in a third
of held-out prompts after 2500 steps. Over the same encoder taught the caption grammar first (this
module), the same teacher drew 76% (74% on the pipeline's 500 evaluation prompts; docs/world-budget.md,
session 6).

The lesson is the world's stand-in for language pretraining: five linear heads read a caption's five
attributes (shape, colour, background, size, position) from the hidden state of its last token and
from the mean over its tokens, the two places a cross-attention can most easily read a whole caption
from. Only the train split's captions are used; the held-out split's attribute tuples are disjoint
from them, so the heads' accuracy on held-out captions measures what the encoder generalises. The
heads are thrown away and the encoder is frozen again before any prompt is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..models.sana import tokenize_prompts
from . import shapes
from .budget import StepBudget

ATTRIBUTES = shapes.ATTRIBUTE_VALUES  # the five attributes and their classes (the heads' logit layout)
_CLASSES = [len(values) for values in ATTRIBUTES.values()]


@dataclass
class TextPretrainConfig:
    steps: int = 400
    lr: float = 3e-3
    batch_size: int = 256
    seed: int = 0


def attribute_labels(captions: Sequence[str]) -> torch.Tensor:
    """[N, 5] class indices of each caption's attributes (ATTRIBUTES order); a caption the grammar
    cannot produce stops here, naming it."""
    rows = []
    for text in captions:
        a = shapes.parse_caption(text)
        if a is None:
            raise ValueError(f"text pretraining: {text!r} is not a caption of the world's grammar")
        rows.append([values.index(getattr(a, key)) for key, values in ATTRIBUTES.items()])
    return torch.tensor(rows, dtype=torch.long)


def _pooled(encoder, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(last-token state, mean state) [B, D] each, over the unmasked tokens."""
    h = encoder(ids, attention_mask=mask)[0]
    last = h[torch.arange(len(ids)), mask.sum(1) - 1]
    mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return last, mean


def _heads_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    chunks = logits.split(_CLASSES, dim=1)
    return sum(F.cross_entropy(c, labels[:, j]) for j, c in enumerate(chunks))


def pretrain_text_encoder(encoder, tokenizer, captions: Sequence[str], cfg: TextPretrainConfig, max_length: int,
                          progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """Teach `encoder` (a transformers Gemma2Model) to read `captions`, in place; returns (the attribute
    heads, a log). The encoder is left frozen in eval mode."""
    if len(captions) == 0:
        raise ValueError("text pretraining needs at least one caption")
    labels = attribute_labels(captions)
    ids, mask = tokenize_prompts(tokenizer, captions, max_length)  # as the pipeline will: it learns on what it sees
    width, n_classes = encoder.config.hidden_size, sum(_CLASSES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        heads = torch.nn.ModuleDict({"last": torch.nn.Linear(width, n_classes), "mean": torch.nn.Linear(width, n_classes)})
    encoder.requires_grad_(True).train()
    params = list(encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    budget, ema_loss = StepBudget("text encoder", cfg.steps, progress), None
    while budget.running():
        budget.set_lr(opt, cfg.lr, warmup_steps=min(50, cfg.steps), floor=0.1)
        idx = torch.randint(len(captions), (cfg.batch_size,), generator=g)
        last, mean = _pooled(encoder, ids[idx], mask[idx])
        loss = _heads_loss(heads["last"](last), labels[idx]) + _heads_loss(heads["mean"](mean), labels[idx])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"text pretraining loss is {loss.item()} at step {budget.step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_loss = loss.item() if ema_loss is None else 0.95 * ema_loss + 0.05 * loss.item()
        budget.tick(ema_loss)
    encoder.eval().requires_grad_(False)
    return heads.eval().requires_grad_(False), {"steps": budget.step, "seconds": budget.elapsed, "loss_ema": ema_loss}


@torch.no_grad()
def caption_attribute_accuracy(encoder, tokenizer, heads, captions: Sequence[str], max_length: int) -> dict[str, float]:
    """Per attribute, how often the last-token head reads `captions` right (e.g. held-out captions)."""
    labels = attribute_labels(captions)
    ids, mask = tokenize_prompts(tokenizer, captions, max_length)
    last, _ = _pooled(encoder, ids, mask)
    chunks = heads["last"](last).split(_CLASSES, dim=1)
    return {key: float((c.argmax(1) == labels[:, j]).float().mean()) for j, (key, c) in enumerate(zip(ATTRIBUTES, chunks))}
