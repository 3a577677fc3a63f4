"""The student's optimiser: AdamW, or CAME as the official TBCM configuration trains with (method-notes §5).

CAME (Luo et al., ACL 2023, "CAME: Confidence-guided Adaptive Memory Efficient Optimization", Alg. 1)
keeps Adam's first moment m but only row and column means of the second moment v and of the
"instability" (u - m)^2 of each weight matrix: for an [n, k] weight, n + k numbers each instead of n k.
Per step, with g the gradient of a weight viewed as a matrix:

    r <- b2 r + (1 - b2) rowmean(g^2 + e1),   c <- b2 c + (1 - b2) colmean(g^2 + e1)
    u  = g / sqrt(r c^T / mean(r)),            u <- u / max(1, RMS(u) / d)
    m <- b1 m + (1 - b1) u
    R <- b3 R + (1 - b3) rowmean((u - m)^2 + e2),   C likewise
    w <- w - lr m / sqrt(R C^T / mean(R))

A vector (bias, norm scale) keeps a full second moment and steps by m alone, as in the reference code.

Written here rather than taken from `came-pytorch` (the reference implementation, which the tests
compare against): it factors a tensor over its last two dimensions, and Sana's Mix-FFN weights are
1x1 convolutions [out, in, 1, 1], whose last two dimensions are 1 x 1. Its "factored" state for
them is four full-size tensors: at Sana-Sprint 0.6B 6.4 GiB of optimiser state against AdamW's 4.4
(measured on the meta device). Here every weight of two or more dimensions is factored as the
[out, in * k * k] matrix it applies (a linear layer is itself, a 1x1 convolution [out, in]), which
gives about half of AdamW's state (`state_bytes`).
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("adamw", "came")


def matrix_shape(shape: torch.Size) -> tuple[int, ...]:
    """The matrix a weight applies, [out, in * k * k]; a vector stays a vector."""
    if len(shape) < 2:
        return tuple(shape)
    return shape[0], shape.numel() // shape[0]


def _inverse_sqrt_outer(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """1 / sqrt(row col^T / mean(row)): the factored second-moment estimate's inverse square root."""
    return (row / row.mean()).rsqrt().unsqueeze(1) * col.rsqrt().unsqueeze(0)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.norm() / x.numel() ** 0.5


class CAME(torch.optim.Optimizer):
    """CAME with every weight matrix factored (see the module docstring); state in the gradient's dtype, float32 for
    half-precision gradients."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999, 0.9999), eps=(1e-30, 1e-16),
                 clip_threshold: float = 1.0, weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"CAME lr must be > 0, got {lr}")
        if len(betas) != 3 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"CAME betas must be three numbers in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=tuple(eps), clip_threshold=clip_threshold,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, b3 = group["betas"]
            e1, e2 = group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("CAME does not support sparse gradients")
                shape = matrix_shape(p.shape)
                factored = len(shape) == 2
                g = p.grad.reshape(shape)
                if g.dtype in (torch.float16, torch.bfloat16):
                    g = g.float()
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(g)
                    if factored:
                        for name, n in (("row", shape[0]), ("col", shape[1])):
                            state[f"exp_avg_sq_{name}"] = g.new_zeros(n)
                            state[f"exp_avg_res_{name}"] = g.new_zeros(n)
                    else:
                        state["exp_avg_sq"] = torch.zeros_like(g)
                state["step"] += 1
                sq = g.square().add_(e1)
                if factored:
                    row, col = state["exp_avg_sq_row"], state["exp_avg_sq_col"]
                    row.mul_(b2).add_(sq.mean(1), alpha=1 - b2)
                    col.mul_(b2).add_(sq.mean(0), alpha=1 - b2)
                    u = g * _inverse_sqrt_outer(row, col)
                else:
                    v = state["exp_avg_sq"]
                    v.mul_(b2).add_(sq, alpha=1 - b2)
                    u = g * v.rsqrt()
                u.div_((_rms(u) / group["clip_threshold"]).clamp_(min=1.0))
                m = state["exp_avg"]
                m.mul_(b1).add_(u, alpha=1 - b1)
                if factored:  # confidence: shrink the step where u keeps disagreeing with m
                    res = (u - m).square_().add_(e2)
                    R, C = state["exp_avg_res_row"], state["exp_avg_res_col"]
                    R.mul_(b3).add_(res.mean(1), alpha=1 - b3)
                    C.mul_(b3).add_(res.mean(0), alpha=1 - b3)
                    update = m * _inverse_sqrt_outer(R, C)
                else:
                    update = m
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.reshape(p.shape).to(p.dtype), alpha=-group["lr"])
        return loss


def make_optimizer(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    """The student's optimiser over param groups (each with its own lr), no weight decay."""
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=0.0)
    if name == "came":
        return CAME(groups, lr=groups[0]["lr"])
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimiser's tensor state (moments, factors, step counters)."""
    return sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))
