"""Teacher rollout (paper §4.1, Eq. 9, Alg. 1): trajectory-sampled training pairs from pure noise.

For each prompt: x = sigma_d * randn at t_0 = pi/2; at every route time t_i the teacher gives
dx/dt = sigma_d * F_T(x / sigma_d, t_i) under classifier-free guidance; the exact TrigFlow step
(Eq. 9) moves x to t_{i+1}, and the last step lands on t = 0. The pairs (x_{t_i}, t_i, dx/dt) for
i >= 1 are the student's training data: N - 1 per prompt, no image and no VAE involved. The final
x0 only feeds the brightness filter (§4.3).

The prompt's condition is encoded once by the caller; `train_step` repeats it for the N - 1 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import trigflow
from .denoiser import Condition, Denoiser, concat_conditions, expand_condition


def guided_velocity(
    teacher: Denoiser,
    x: torch.Tensor,
    t: torch.Tensor,
    cond: Condition,
    uncond: Condition | None,
    guidance: torch.Tensor,
    sigma_d: float,
) -> torch.Tensor:
    """dx/dt = sigma_d * [F(x, t, 0) + w (F(x, t, y) - F(x, t, 0))], classic two-pass CFG in one batch.

    With every w == 1 (or no unconditional condition) the guided velocity is the conditional one and
    the unconditional pass is skipped.
    """
    x_in = x / sigma_d
    if uncond is None or bool(torch.all(guidance == 1)):
        return sigma_d * teacher(x_in, t, cond)
    b = x.shape[0]
    both = concat_conditions(expand_condition(uncond, b), cond)
    F_u, F_c = teacher(torch.cat([x_in, x_in]), torch.cat([t, t]), both).chunk(2)
    w = trigflow.expand_time(guidance, F_c)
    return sigma_d * (F_u + w * (F_c - F_u))


@dataclass
class Trajectory:
    """One rollout of B prompts along routes [B, N]. Pair tensors are [B, N - 1, ...]."""

    x_t: torch.Tensor
    t: torch.Tensor
    dxdt: torch.Tensor
    x0: torch.Tensor
    guidance: torch.Tensor

    @property
    def pairs_per_prompt(self) -> int:
        return self.t.shape[1]


@torch.no_grad()
def rollout(
    teacher: Denoiser,
    cond: Condition,
    uncond: Condition | None,
    routes: torch.Tensor,
    noise: torch.Tensor,
    guidance: torch.Tensor,
    sigma_d: float = trigflow.SIGMA_DATA,
    keep_pairs: bool = True,
) -> Trajectory:
    """Run the teacher from `noise` (already scaled by sigma_d) along per-prompt `routes` [B, N].

    Returns the N - 1 pairs after the pure-noise point and the final x0. With keep_pairs=False it is
    a plain N-step teacher sampler (the pairs are left empty).
    """
    if noise.ndim < 2:
        raise ValueError(f"noise must be [B, ...], got shape {tuple(noise.shape)}")
    b, n = routes.shape
    if noise.shape[0] != b or guidance.shape != (b,):
        raise ValueError(
            f"routes {tuple(routes.shape)}, noise {tuple(noise.shape)} and guidance "
            f"{tuple(guidance.shape)} must share the batch size B (routes [B, N], guidance [B])"
        )
    routes = routes.to(device=noise.device, dtype=noise.dtype)
    guidance = guidance.to(device=noise.device, dtype=noise.dtype)
    x = noise
    xs, vs = [], []
    for i in range(n):
        t_i = routes[:, i]
        dxdt = guided_velocity(teacher, x, t_i, cond, uncond, guidance, sigma_d)
        if keep_pairs and i > 0:
            xs.append(x)
            vs.append(dxdt)
        t_next = routes[:, i + 1] if i + 1 < n else torch.zeros_like(t_i)
        x = trigflow.ode_step(x, t_i, t_next, dxdt)
    if keep_pairs:
        x_t, dxdt_all, t = torch.stack(xs, 1), torch.stack(vs, 1), routes[:, 1:]
    else:
        x_t = dxdt_all = noise.new_empty((b, 0, *noise.shape[1:]))
        t = routes.new_empty((b, 0))
    return Trajectory(x_t=x_t, t=t, dxdt=dxdt_all, x0=x, guidance=guidance)


def draw_guidance(batch: int, scales, generator: torch.Generator | None = None) -> torch.Tensor:
    """One CFG scale per prompt, drawn uniformly from `scales` (TBCM: {4, 4.5, 5}), kept for its trajectory."""
    scales = torch.as_tensor(list(scales), dtype=torch.float64)
    if scales.numel() == 0:
        raise ValueError("guidance scale set is empty")
    idx = torch.randint(len(scales), (batch,), generator=generator)
    return scales[idx]

