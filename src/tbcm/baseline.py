"""The forward-sampling ("diffusion space") sCM baseline (paper §4.2 "Preliminary"; sCM, Sana-Sprint).

Pairs come from data instead of the teacher's trajectory: x0 is a clean (VAE-encoded) latent in
TrigFlow scale, t is drawn log-normal in sigma = sigma_d tan t (the Logit-Normal proposal with
P_mean 0.2, P_std 1.6), x_t = cos t x0 + sin t z with z ~ N(0, sigma_d^2 I), and dx_t/dt is the
teacher's CFG velocity at (x_t, t). The pairs then go through the very same `loss.scm_loss` as
TBCM's, so the two methods differ only in where (x_t, t) comes from.
"""

from __future__ import annotations

import torch

from . import trigflow
from .trigflow import SIGMA_DATA


def lognormal_times(
    batch: int,
    generator: torch.Generator | None = None,
    p_mean: float = 0.2,
    p_std: float = 1.6,
    sigma_d: float = SIGMA_DATA,
) -> torch.Tensor:
    """t = arctan(exp(P_mean + P_std n) / sigma_d), n ~ N(0, 1); float64 [batch] on the CPU."""
    n = torch.randn(batch, generator=generator, dtype=torch.float64)
    return torch.atan(torch.exp(p_mean + p_std * n) / sigma_d)


def forward_pairs(
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    p_mean: float = 0.2,
    p_std: float = 1.6,
    sigma_d: float = SIGMA_DATA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, t) noised from clean TrigFlow-scale latents x0 [B, ...]."""
    if x0.ndim < 2 or x0.shape[0] == 0:
        raise ValueError(f"x0 must be a non-empty batch [B, ...], got shape {tuple(x0.shape)}")
    t = lognormal_times(x0.shape[0], generator, p_mean, p_std, sigma_d)
    # Keep t off pi/2 exactly, where the pair carries no signal (cos t = 0) and 1/tan t = 0.
    t = t.clamp(max=trigflow.HALF_PI - 1e-6).to(device=x0.device, dtype=x0.dtype)
    z = torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(x0) * sigma_d
    return trigflow.add_noise(x0, z, t), t
