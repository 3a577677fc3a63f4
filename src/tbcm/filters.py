"""Brightness filter (paper §4.3, App. D): drop trajectories whose final x0 is close to black.

Per prompt: mse = mean((x0 / sigma_d - z_b)^2) with z_b the VAE latent of an all-black image
(scaled by the VAE's scaling factor, the space x0 / sigma_d lives in). If mse < threshold the
prompt is dropped with probability 1 - mse / threshold: the darker, the likelier.

What a dropped prompt does to the loss (our decision): its N - 1 pairs get weight 0 and the loss is
the mean over the kept pairs only. The public code multiplies the dropped pairs' loss by 0 but
still divides by the full batch, so every dropped prompt silently lowers the effective learning
rate of that step; renormalising keeps the step size independent of how many prompts were dropped.
If every prompt of a step is dropped the step is skipped and counted (`train_step.StepResult`).
"""

from __future__ import annotations

import torch

from .trigflow import SIGMA_DATA


def black_distance(x0: torch.Tensor, black_latent: torch.Tensor, sigma_d: float = SIGMA_DATA) -> torch.Tensor:
    """mean((x0 / sigma_d - z_b)^2) per sample, shape [B]."""
    black = black_latent.to(device=x0.device, dtype=x0.dtype)
    if black.ndim == x0.ndim:
        if black.shape[0] != 1:
            raise ValueError(f"black latent must be [1, ...] or unbatched, got {tuple(black.shape)}")
        black = black[0]
    if black.shape != x0.shape[1:]:
        raise ValueError(f"black latent shape {tuple(black.shape)} does not match a latent {tuple(x0.shape[1:])}")
    return ((x0 / sigma_d - black) ** 2).flatten(1).mean(1)


def brightness_keep(
    x0: torch.Tensor,
    black_latent: torch.Tensor,
    threshold: float = 1.0,
    sigma_d: float = SIGMA_DATA,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which prompts to keep (bool [B]) and their distance to black (float [B]).

    A threshold <= 0 disables the filter. `uniform` [B] are the U(0, 1) draws to use instead of
    drawing from `generator` (a distributed step draws the whole batch's and hands each process its slice).
    """
    mse = black_distance(x0, black_latent, sigma_d)
    if threshold <= 0:
        return torch.ones_like(mse, dtype=torch.bool), mse
    p_drop = (1 - mse / threshold).clamp(0, 1)
    if uniform is None:
        uniform = torch.rand(mse.shape, generator=generator, dtype=torch.float64)
    elif uniform.shape != mse.shape:
        raise ValueError(f"uniform draws must have shape {tuple(mse.shape)}, got {tuple(uniform.shape)}")
    u = uniform.to(device=mse.device, dtype=torch.float64)
    return u >= p_drop.double(), mse
