"""Few-step sampling: the multistep consistency sampler (paper App. E) and the teacher's ODE sampler.

Consistency sampler (CM's multistep scheme, diffusers' SCMScheduler): at each time s,
x0 = cos s x_s - sin s sigma_d F(x_s / sigma_d, s), then re-noise to the next time t:
x_t = cos t x0 + sin t z, z ~ N(0, sigma_d^2 I). Times: 1 step [pi/2, 0]; 2 steps [pi/2, 1.3, 0]
(Sana-Sprint's intermediate time); N steps linspace(pi/2, 0, N + 1) unless given.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import trigflow
from .denoiser import Condition, Denoiser
from .rollout import rollout
from .routes import reference_route
from .trigflow import HALF_PI, SIGMA_DATA

TWO_STEP_MIDDLE = 1.3


def consistency_times(steps: int, custom: Sequence[float] | None = None) -> torch.Tensor:
    """The sampler's times, float64, from pi/2 down to 0 (steps + 1 values)."""
    if custom is not None:
        times = torch.tensor([float(v) for v in custom], dtype=torch.float64)
        if len(times) != steps + 1 or times[0] != HALF_PI or times[-1] != 0 or not torch.all(times[1:] < times[:-1]):
            raise ValueError(f"custom times must be {steps + 1} values decreasing from pi/2 to 0, got {list(custom)}")
        return times
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        return torch.tensor([HALF_PI, 0.0], dtype=torch.float64)
    if steps == 2:
        return torch.tensor([HALF_PI, TWO_STEP_MIDDLE, 0.0], dtype=torch.float64)
    return torch.linspace(HALF_PI, 0.0, steps + 1, dtype=torch.float64)


@torch.no_grad()
def consistency_sample(
    student: Denoiser,
    cond: Condition,
    noise: torch.Tensor,
    times: torch.Tensor,
    generator: torch.Generator | None = None,
    sigma_d: float = SIGMA_DATA,
) -> torch.Tensor:
    """x0 from `noise` (already scaled by sigma_d) through the consistency sampler at `times`."""
    x = noise
    b = x.shape[0]
    x0 = x
    for s, t in zip(times[:-1].tolist(), times[1:].tolist()):
        s_b = torch.full((b,), s, dtype=x.dtype, device=x.device)
        x0 = trigflow.denoise(x, s_b, sigma_d * student(x / sigma_d, s_b, cond))
        if t > 0:
            z = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x) * sigma_d
            x = trigflow.add_noise(x0, z, torch.full((b,), t, dtype=x.dtype, device=x.device))
    return x0


@torch.no_grad()
def teacher_sample(
    teacher: Denoiser,
    cond: Condition,
    uncond: Condition | None,
    noise: torch.Tensor,
    guidance: float | torch.Tensor,
    steps: int,
    shift: float = 2.5,
    sigma_d: float = SIGMA_DATA,
) -> torch.Tensor:
    """The teacher's deterministic `steps`-step sample with CFG along the Reference Route (Eq. 9 steps)."""
    b = noise.shape[0]
    routes = reference_route(steps, shift).expand(b, steps) if steps > 1 else torch.full((b, 1), HALF_PI, dtype=torch.float64)
    g = torch.as_tensor(guidance, dtype=torch.float64).expand(b).clone()
    return rollout(teacher, cond, uncond, routes, noise, g, sigma_d, keep_pairs=False).x0
