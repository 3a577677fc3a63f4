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

import math

import torch

OPTIMIZERS = ("adamw", "came")


def matrix_shape(shape: torch.Size) -> tuple[int, ...]:
    """The matrix a weight applies, [out, in * k * k]; a vector stays a vector."""
    if len(shape) < 2:
        return tuple(shape)
    return shape[0], shape.numel() // shape[0]


def _inverse_sqrt_outer(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """1 / sqrt(row col^T / mean(row)) for a stack of [G, n] rows and [G, k] columns: the factored
    second-moment estimate's inverse square root, [G, n, k]."""
    return (row / row.mean(-1, keepdim=True)).rsqrt().unsqueeze(-1) * col.rsqrt().unsqueeze(-2)


#: elements per stacked chunk of same-shape weights: 2^25 float32 numbers are 128 MiB per stacked tensor
CHUNK_ELEMENTS = 2 ** 25


class CAME(torch.optim.Optimizer):
    """CAME with every weight matrix factored (see the module docstring); state in the gradient's dtype, float32 for
    half-precision gradients.

    The update runs on stacks of same-shaped weights (Sana's 28 blocks share each shape), at most
    `chunk_elements` numbers per stack, rather than tensor by tensor: at Sana 0.6B a per-tensor loop makes
    19,968 operator calls per step, the stacks 3,042 (AdamW with foreach kernels: 1,339), each a kernel
    launch on a GPU. The state stays one tensor per parameter (as any torch optimiser's, so checkpoints
    are ordinary)."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999, 0.9999), eps=(1e-30, 1e-16),
                 clip_threshold: float = 1.0, weight_decay: float = 0.0, chunk_elements: int = CHUNK_ELEMENTS):
        if not lr > 0:
            raise ValueError(f"CAME lr must be > 0, got {lr}")
        if len(betas) != 3 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"CAME betas must be three numbers in [0, 1), got {betas}")
        self.chunk_elements = chunk_elements
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=tuple(eps), clip_threshold=clip_threshold,
                                      weight_decay=weight_decay))

    def _init_state(self, p: torch.nn.Parameter, shape: tuple, dtype: torch.dtype) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros(shape, dtype=dtype, device=p.device)
            if len(shape) == 2:
                for name, n in (("row", shape[0]), ("col", shape[1])):
                    state[f"exp_avg_sq_{name}"] = torch.zeros(n, dtype=dtype, device=p.device)
                    state[f"exp_avg_res_{name}"] = torch.zeros(n, dtype=dtype, device=p.device)
            else:
                state["exp_avg_sq"] = torch.zeros(shape, dtype=dtype, device=p.device)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            stacks: dict[tuple, list] = {}
            for p in group["params"]:
                if p.grad is None or p.numel() == 0:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("CAME does not support sparse gradients")
                dtype = torch.float32 if p.grad.dtype in (torch.float16, torch.bfloat16) else p.grad.dtype
                stacks.setdefault((matrix_shape(p.shape), dtype, p.dtype, p.device), []).append(p)
            for (shape, dtype, _, _), params in stacks.items():
                per_chunk = max(1, self.chunk_elements // math.prod(shape))
                for i in range(0, len(params), per_chunk):
                    self._update(params[i:i + per_chunk], shape, dtype, group)
        return loss

    def _update(self, params: list, shape: tuple, dtype: torch.dtype, group: dict) -> None:
        """One CAME step of G same-shaped weights at once (stacked [G, n, k] or [G, n])."""
        b1, b2, b3 = group["betas"]
        e1, e2 = group["eps"]
        states = [self._init_state(p, shape, dtype) for p in params]
        for st in states:
            st["step"] += 1
        factored = len(shape) == 2
        stack = lambda key: torch.stack([st[key] for st in states])  # noqa: E731
        g = torch.stack([p.grad.reshape(shape) for p in params]).to(dtype)
        sq = g.square().add_(e1)
        if factored:
            row, col = stack("exp_avg_sq_row"), stack("exp_avg_sq_col")
            row.mul_(b2).add_(sq.mean(-1), alpha=1 - b2)
            col.mul_(b2).add_(sq.mean(-2), alpha=1 - b2)
            u = g * _inverse_sqrt_outer(row, col)
        else:
            v = stack("exp_avg_sq")
            v.mul_(b2).add_(sq, alpha=1 - b2)
            u = g * v.rsqrt()
        del sq
        rms = u.reshape(len(params), -1).norm(dim=1) / math.prod(shape) ** 0.5  # RMS(u) per weight
        u.div_((rms / group["clip_threshold"]).clamp_(min=1.0).view(-1, *[1] * len(shape)))
        m = stack("exp_avg")
        m.mul_(b1).add_(u, alpha=1 - b1)
        if factored:  # confidence: shrink the step where u keeps disagreeing with m
            res = u.sub_(m).square_().add_(e2)
            R, C = stack("exp_avg_res_row"), stack("exp_avg_res_col")
            R.mul_(b3).add_(res.mean(-1), alpha=1 - b3)
            C.mul_(b3).add_(res.mean(-2), alpha=1 - b3)
            update = m * _inverse_sqrt_outer(R, C)
            written = {"exp_avg_sq_row": row, "exp_avg_sq_col": col, "exp_avg_res_row": R, "exp_avg_res_col": C}
        else:
            update = m
            written = {"exp_avg_sq": v}
        written["exp_avg"] = m
        for key, stacked in written.items():
            torch._foreach_copy_([st[key] for st in states], list(stacked.unbind(0)))
        if group["weight_decay"]:
            torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
        # the update in its own precision, added into each weight whatever its layout (channels-last included)
        torch._foreach_add_(params, [u.view(p.shape) for u, p in zip(update.unbind(0), params)], alpha=-group["lr"])

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, but the state keeps its saved dtype: torch casts it to each weight's dtype, which for
        half-precision weights would turn CAME's float32 moments to bf16 on resume."""
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        for index, saved in state_dict["state"].items():
            state = self.state[params[index]]
            for key, value in saved.items():
                if isinstance(value, torch.Tensor):
                    state[key] = value.to(params[index].device, copy=True)


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
