"""Trajectory sampling schemes (paper §4.2, §5.2, Fig. 7): the times a teacher rollout visits.

A route is a strictly decreasing sequence of N TrigFlow times with t_0 = pi/2 (pure noise) and
t_{N-1} > 0; the rollout integrates from each t_i to t_{i+1} and from t_{N-1} to 0.

- Random: N - 1 uniform draws in (0, pi/2), sorted.
- Logit-Normal (sCM / Sana-Sprint's proposal; really log-normal in sigma = sigma_d tan t):
  t = arctan(exp(P_mean + P_std n) / sigma_d), n ~ N(0, 1), N - 1 draws sorted.
- Reference Route: the N sigmas of a shifted Flow-Euler schedule mapped to trig time by the
  inverse of Eq. 5, then partitioned sampling: tau_0 = pi/2, tau_i ~ U(route[i], route[i-1]).

Routes are drawn per prompt: `sample_routes` returns [B, N]. Random and Logit-Normal prepend pi/2 to
N - 1 draws instead of the public description's "draw N, force the largest to pi/2", which throws
the largest draw away and so biases the rest downwards.
"""

from __future__ import annotations

import math

import torch

from .trigflow import HALF_PI, SIGMA_DATA, trig_time

SCHEMES = ("reference", "logit_normal", "random")


def flow_euler_sigmas(n: int, shift: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The N inference sigmas of diffusers' FlowMatchEulerDiscreteScheduler (static shift), float64.

    Written out rather than imported so the method modules do not depend on diffusers; a test
    checks it against the scheduler. The recipe shifts sigma_min once at construction and then
    every sigma of the linspace again, so the smallest sigma is shifted twice, as in diffusers.
    """
    if n < 1:
        raise ValueError(f"route length must be >= 1, got {n}")

    def shifted(s):
        return shift * s / (1 + (shift - 1) * s)

    sigma_max = 1.0
    sigma_min = shifted(1.0 / num_train_timesteps)
    ts = torch.linspace(sigma_max * num_train_timesteps, sigma_min * num_train_timesteps, n, dtype=torch.float64)
    return shifted(ts / num_train_timesteps)


def reference_route(n: int, shift: float = 2.5) -> torch.Tensor:
    """The deterministic Reference Route in trig time: t = arctan(sigma / (1 - sigma)), t_0 = pi/2."""
    return trig_time(flow_euler_sigmas(n, shift))


def _check_route(t: torch.Tensor) -> None:
    if not torch.all(t[..., 0] == HALF_PI):
        raise AssertionError("route does not start at pi/2")
    if t.shape[-1] > 1 and not torch.all(t[..., 1:] < t[..., :-1]):
        raise AssertionError("route is not strictly decreasing")
    if not torch.all(t[..., -1] > 0):
        raise AssertionError("route reaches t = 0")


def _sorted_draws_with_start(draws: torch.Tensor) -> torch.Tensor:
    draws = torch.sort(draws, dim=-1, descending=True).values
    start = torch.full((*draws.shape[:-1], 1), HALF_PI, dtype=draws.dtype, device=draws.device)
    return torch.cat([start, draws], dim=-1)


def sample_routes(
    scheme: str,
    batch: int,
    n: int,
    generator: torch.Generator | None = None,
    *,
    shift: float = 2.5,
    p_mean: float = 0.2,
    p_std: float = 1.6,
    sigma_d: float = SIGMA_DATA,
    t_min: float = 1e-4,
) -> torch.Tensor:
    """Draw `batch` routes of `n` times each, shape [batch, n], float64, on the CPU.

    Draws below t_min (where 1/tan t explodes) or ties (probability zero, possible in floating
    point) are redrawn, so every route is strictly decreasing in [t_min, pi/2].
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown route scheme '{scheme}'; expected one of {SCHEMES}")
    if n < 2:
        raise ValueError(f"a route needs n >= 2 points (pure noise plus at least one pair), got {n}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    kw = dict(dtype=torch.float64, generator=generator)
    if scheme == "reference":
        ref = reference_route(n, shift)
        lo, hi = ref[1:], ref[:-1]
        u = torch.rand(batch, n - 1, **kw)
        # Keep the draws strictly inside their interval: a draw exactly on the shared
        # boundary would tie with the neighbouring interval's draw.
        u = u.clamp(1e-12, 1 - 1e-12)
        inner = lo + u * (hi - lo)
        routes = torch.cat([torch.full((batch, 1), HALF_PI, dtype=torch.float64), inner], dim=1)
        _check_route(routes)
        return routes
    routes = torch.empty(batch, n, dtype=torch.float64)
    for b in range(batch):
        for _ in range(1000):
            if scheme == "random":
                draws = torch.rand(n - 1, **kw) * HALF_PI
            else:
                sigma = torch.exp(p_mean + p_std * torch.randn(n - 1, **kw))
                draws = torch.atan(sigma / sigma_d)
            route = _sorted_draws_with_start(draws)
            if route[-1] >= t_min and torch.all(route[1:] < route[:-1]):
                routes[b] = route
                break
        else:  # pragma: no cover - needs ~1000 consecutive failures
            raise RuntimeError(f"could not draw a strictly decreasing {scheme} route of length {n}")
    _check_route(routes)
    return routes


def logit_normal_quantile(q: torch.Tensor, p_mean: float = 0.2, p_std: float = 1.6, sigma_d: float = SIGMA_DATA):
    """The q-quantile of the Logit-Normal scheme's t: arctan(exp(P_mean + P_std Phi^-1(q)) / sigma_d)."""
    z = math.sqrt(2) * torch.erfinv(2 * torch.as_tensor(q, dtype=torch.float64) - 1)
    return torch.atan(torch.exp(p_mean + p_std * z) / sigma_d)
