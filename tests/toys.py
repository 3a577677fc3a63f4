"""Small denoisers shared by the tests."""

import torch
from torch import nn


class TinyDenoiser(nn.Module):
    """F(x, t, cond) for x of shape [B, C, H, W] or [B, d]: an MLP on (x, Fourier(t), cond['label'])."""

    def __init__(self, shape=(2,), hidden=32, n_labels=0, seed=0, dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.shape = tuple(shape)
        d = int(torch.tensor(shape).prod())
        self.register_buffer("freqs", torch.randn(8, generator=g, dtype=dtype) * 2)
        self.embed = nn.Embedding(n_labels, 4) if n_labels else None
        self.net = nn.Sequential(nn.Linear(d + 16 + (4 if n_labels else 0), hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, d))
        self.to(dtype)

    def forward(self, x, t, cond):
        e = t[:, None].to(x.dtype) * self.freqs
        feats = [x.flatten(1), torch.cos(e), torch.sin(e)]
        if self.embed is not None:
            feats.append(self.embed(cond["label"]).to(x.dtype))
        return self.net(torch.cat(feats, 1)).reshape(x.shape)
