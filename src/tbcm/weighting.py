"""The learned adaptive weight w_phi(t) of the sCM loss (Alg. 1; sCM, Lu & Song 2024, §4.2).

The loss is e^{-w(t)} * L(t) + w(t), minimised jointly over w, whose optimum is w(t) = log L(t):
it rescales every time's loss to about 1, which balances the gradient across t.
Sana-Sprint puts the Linear on its transformer's time embedding; here w has its own fixed Fourier
embedding of t (as EDM2's learned loss weighting does), so the method stays backbone-agnostic and
w's parameters are separate from the student's.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class AdaptiveWeight(nn.Module):
    """w_phi(t) = Linear(Fourier(t)), zero-initialised so training starts from w = 0."""

    def __init__(self, channels: int = 128, bandwidth: float = 1.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", 2 * math.pi * bandwidth * torch.randn(channels, generator=g))
        self.register_buffer("phases", 2 * math.pi * torch.rand(channels, generator=g))
        self.linear = nn.Linear(channels, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) for t of shape [B]; returns [B]."""
        t = t.to(self.freqs.dtype)
        feats = math.sqrt(2) * torch.cos(t[:, None] * self.freqs + self.phases)
        return self.linear(feats.to(self.linear.weight.dtype)).squeeze(-1)
