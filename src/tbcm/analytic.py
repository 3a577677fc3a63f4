"""Closed-form flow-matching velocities for Gaussian and Gaussian-mixture data.

These are exact teachers: with FM data a ~ sum_k pi_k N(mu_k, s_k^2 I) and
x = (1 - tau) a + tau eps, eps ~ N(0, I), component k gives x ~ N((1 - tau) mu_k, v_k I) with
v_k = (1 - tau)^2 s_k^2 + tau^2, and
    E[a | x, k] = mu_k + (1 - tau) s_k^2 / v_k (x - (1 - tau) mu_k)
    E[eps | x, k] = tau / v_k (x - (1 - tau) mu_k)
so v(x, tau) = E[eps - a | x] = sum_k p(k | x) (E[eps | x, k] - E[a | x, k]).
Used by the tests (known answers for Eq. 5-9 and for a whole distillation) and by the 2-D example.
FM data a is x0 / sigma_d in TrigFlow units (see trigflow.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianMixtureVelocity(nn.Module):
    """v(x_FM, t_FM, cond) of an isotropic Gaussian mixture in d dimensions (cond is ignored)."""

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor | None = None):
        super().__init__()
        means = torch.as_tensor(means, dtype=torch.float64)
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float64).expand(k).clone()
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.register_buffer("means", means)
        self.register_buffer("stds", stds)
        self.register_buffer("log_weights", torch.log(weights / weights.sum()))

    def posterior(self, x: torch.Tensor, t_fm: torch.Tensor):
        tau = t_fm.reshape(-1, 1, 1).to(x.dtype)  # [B, 1, 1]
        mu = self.means.to(x.dtype)[None]  # [1, K, d]
        var = (1 - tau) ** 2 * self.stds.to(x.dtype)[None, :, None] ** 2 + tau**2  # [B, K, 1]
        diff = x.flatten(1)[:, None, :] - (1 - tau) * mu  # [B, K, d]
        d = diff.shape[-1]
        logp = self.log_weights.to(x.dtype)[None] - 0.5 * d * torch.log(var[..., 0]) - 0.5 * (diff**2).sum(-1) / var[..., 0]
        return tau, mu, var, diff, torch.softmax(logp, dim=1)

    def forward(self, x: torch.Tensor, t_fm: torch.Tensor, cond=None) -> torch.Tensor:
        tau, mu, var, diff, post = self.posterior(x, t_fm)
        s2 = self.stds.to(x.dtype)[None, :, None] ** 2
        e_a = mu + (1 - tau) * s2 / var * diff
        e_eps = tau / var * diff
        v = (post[..., None] * (e_eps - e_a)).sum(1)
        return v.reshape(x.shape)

    def log_prob(self, a: torch.Tensor) -> torch.Tensor:
        """log density of FM-space points a [n, d] under the mixture."""
        a = a.double()
        d = a.shape[1]
        var = self.stds**2  # [K]
        sq = ((a[:, None, :] - self.means[None]) ** 2).sum(-1)  # [n, K]
        logp = self.log_weights[None] - 0.5 * d * torch.log(2 * math.pi * var)[None] - 0.5 * sq / var[None]
        return torch.logsumexp(logp, dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n FM-space data samples, float64 [n, d]."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * eps


def gaussian_posterior_mean(x_t: torch.Tensor, t: torch.Tensor, mu: torch.Tensor, s: float, sigma_d: float) -> torch.Tensor:
    """E[x0 | x_t] in TrigFlow for x0 ~ N(sigma_d mu, (sigma_d s)^2 I) (FM data N(mu, s^2 I))."""
    te = t.reshape(-1, *([1] * (x_t.ndim - 1)))
    c, sn = torch.cos(te), torch.sin(te)
    m0, v0 = sigma_d * mu, (sigma_d * s) ** 2
    return m0 + c * v0 / (c**2 * v0 + sn**2 * sigma_d**2) * (x_t - c * m0)


def gaussian_ode_solution(x_start: torch.Tensor, t: torch.Tensor, mu: torch.Tensor, s: float, sigma_d: float) -> torch.Tensor:
    """The PF-ODE trajectory from x_{pi/2} = x_start for Gaussian data, at time t:
    x_t = cos t m0 + sqrt(cos^2 t v0 + sin^2 t sigma_d^2) * x_start / sigma_d."""
    te = t.reshape(-1, *([1] * (x_start.ndim - 1)))
    c, sn = torch.cos(te), torch.sin(te)
    m0, v0 = sigma_d * mu, (sigma_d * s) ** 2
    return c * m0 + torch.sqrt(c**2 * v0 + sn**2 * sigma_d**2) * x_start / sigma_d


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance 2E|a-b| - E|a-a'| - E|b-b'| between two sample sets [n, d] (>= 0)."""
    a, b = a.double(), b.double()
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def ring_mixture(k: int = 8, radius: float = 1.6, std: float = 0.25) -> GaussianMixtureVelocity:
    """k equal Gaussians on a circle in FM units (unit-ish variance, as VAE-scaled latents)."""
    ang = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    means = radius * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    return GaussianMixtureVelocity(means, torch.tensor(std, dtype=torch.float64))
