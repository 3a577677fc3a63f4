"""The embedded world's teacher: a small `diffusers.SanaTransformer2DModel` trained by flow matching
on the world's VAE latents, with caption dropout so classifier-free guidance works.

Flow matching as Sana trains it: x = (1 - tau) a + tau eps with a the VAE-scaled latent, eps ~ N(0, I),
tau ~ logit-normal (sigmoid of N(0, 1), SD3's choice), target v = eps - a; captions are replaced by
the empty prompt with probability `caption_dropout`. Prompt embeddings are precomputed once per
unique caption (the grammar has far fewer captions than images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from diffusers import SanaTransformer2DModel

from ..models.sana import PROMPT_EMBEDS, PROMPT_MASK, SanaVelocity
from .budget import StepBudget


@dataclass
class TeacherConfig:
    lr: float = 1e-3
    warmup_steps: int = 200
    batch_size: int = 64
    caption_dropout: float = 0.1
    steps: int = 1500
    logit_mean: float = 0.0  # tau ~ sigmoid(N(logit_mean, 1)); > 0 favours noisier tau (session 5: 0.5 was worse)
    seed: int = 0


def train_teacher(
    transformer: SanaTransformer2DModel,
    latents: torch.Tensor,
    caption_index: torch.Tensor,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    null_embeds: torch.Tensor,
    null_mask: torch.Tensor,
    cfg: TeacherConfig,
    progress: bool = True,
    after_step: Callable[[int, SanaTransformer2DModel], None] | None = None,
) -> dict:
    """Train in place on `latents` [N, C, h, w] (VAE-scaled) whose captions are rows
    `caption_index` [N] of the unique-caption embeddings `embeds` [U, L, D] / `mask` [U, L].
    `after_step(step, transformer)` is called after every optimiser step (e.g. to score the teacher on
    the way; it must leave the transformer in train mode)."""
    if len(latents) == 0 or len(latents) != len(caption_index):
        raise ValueError(f"teacher needs one caption index per latent (> 0), got {len(latents)} and {len(caption_index)}")
    if not torch.isfinite(latents).all():
        raise ValueError("teacher training latents contain NaN or Inf")
    velocity = SanaVelocity(transformer)
    opt = torch.optim.AdamW(transformer.parameters(), lr=cfg.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    transformer.train()
    budget, ema_loss = StepBudget("teacher", cfg.steps, progress), None
    while budget.running():
        budget.set_lr(opt, cfg.lr, warmup_steps=cfg.warmup_steps, floor=0.1)
        idx = torch.randint(len(latents), (cfg.batch_size,), generator=g)
        a = latents[idx]
        eps = torch.randn(a.shape, generator=g)
        tau = torch.sigmoid(torch.randn(cfg.batch_size, generator=g) + cfg.logit_mean)
        x = (1 - tau[:, None, None, None]) * a + tau[:, None, None, None] * eps
        cap = caption_index[idx]
        drop = torch.rand(cfg.batch_size, generator=g) < cfg.caption_dropout
        e = torch.where(drop[:, None, None], null_embeds.expand(cfg.batch_size, -1, -1), embeds[cap])
        m = torch.where(drop[:, None], null_mask.expand(cfg.batch_size, -1), mask[cap])
        pred = velocity(x, tau, {PROMPT_EMBEDS: e, PROMPT_MASK: m})
        loss = (pred - (eps - a)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        opt.step()
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        budget.tick(ema_loss)
        if after_step is not None:
            after_step(budget.step, transformer)
    transformer.eval()
    return {"steps": budget.step, "seconds": budget.elapsed, "loss_ema": ema_loss}
