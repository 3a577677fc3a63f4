"""The sCM / TBCM consistency loss (paper Eq. 2-4 and Alg. 1; sCM, Lu & Song 2024, Eq. 8-9).

Given pairs (x_t, t, dx_t/dt) - from the teacher's trajectory (TBCM) or from noised data (sCM) -
and the student F_theta:

1. Directional derivative of the frozen student theta^- (stop-grad of the current weights) along
   the ODE, by forward-mode AD:
       (F^-, dF^-) = jvp(F_theta^-, (x_t / sigma_d, t), (cos t sin t dx_t/dt / sigma_d, cos t sin t))
   so dF^- = cos t sin t * dF^-/dt.
2. The tangent g = cos t * df/dt of the consistency function f = cos t x_t - sin t sigma_d F (Eq. 4),
   with the unstable term scaled by r (§4.3):
       g = -cos^2 t (sigma_d F^- - dx_t/dt) - r (cos t sin t x_t + sigma_d dF^-)
3. Tangent normalisation g <- g / (||g||_2 + c), per sample over all its elements (c = 0.1).
4. With the learned weight w_phi(t) and sCM's prior weight 1 / (sigma_d tan t):
       loss = mean_pairs[ e^{-w(t)} / (sigma_d tan t) * mean_D (F_theta - F^- - g)^2 + w(t) ]
   whose gradient in theta at theta = theta^- is -(2/D) e^{-w} / (sigma_d tan t) * dF/dtheta^T g.
   (Alg. 1 writes e^{w}/D ... - w, the same objective with w negated, and omits the prior weight
   that sCM, Sana-Sprint and the TBCM code all apply.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .denoiser import Condition, Denoiser
from .regional_jvp import Regions, compile_blocks, regional_jvp
from .skip_zero_tangents import skipping_jvp
from .trigflow import SIGMA_DATA, expand_time
from .zero_tangents import drop_zero_products

TANGENT_METHODS = ("jvp", "finite_difference")


def ode_tangents(x_t: torch.Tensor, t: torch.Tensor, dxdt: torch.Tensor, sigma_d: float = SIGMA_DATA):
    """Primals (x_t / sigma_d, t) and tangents (cos t sin t dx/dt / sigma_d, cos t sin t) of step 1."""
    cs = torch.cos(t) * torch.sin(t)
    return (x_t / sigma_d, t), (expand_time(cs, dxdt) * dxdt / sigma_d, cs)


def directional_derivative(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    primals: tuple[torch.Tensor, torch.Tensor],
    tangents: tuple[torch.Tensor, torch.Tensor],
    method: str = "jvp",
    fd_eps: float = 1e-3,
    skip_zeros: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fn(primals), d/de fn(primals + e * tangents) at e = 0).

    "jvp": exact, forward-mode AD; PyTorch's fused attention kernels have no forward-mode rule, so
    scaled_dot_product_attention is pinned to its math backend inside. Without gradient (the loss's case) and
    with `skip_zeros`, linear layers and convolutions skip the products of their weights' zero tangents, on
    dual tensors (`tbcm.skip_zero_tangents.skipping_jvp`: the same tangent, a quarter fewer matrix products);
    otherwise torch.func.jvp with PyTorch's rules.
    "finite_difference": central difference (two extra forwards, O(eps^2) error); the primal output
    is a third forward so both methods return the same F^-.
    """
    if method == "jvp":
        with sdpa_kernel(SDPBackend.MATH):
            if skip_zeros and not torch.is_grad_enabled():
                return skipping_jvp(fn, primals, tangents)
            return torch.func.jvp(fn, primals, tangents)
    if method == "finite_difference":
        (x, t), (vx, vt) = primals, tangents
        out = fn(x, t)
        plus = fn(x + fd_eps * vx, t + fd_eps * vt)
        minus = fn(x - fd_eps * vx, t - fd_eps * vt)
        return out, (plus - minus) / (2 * fd_eps)
    raise ValueError(f"unknown tangent method '{method}'; expected one of {TANGENT_METHODS}")


# The function itself, bound now: looked up at the first compiled call instead, the module attribute may be
# a caller's wrapper by then (a benchmark's timer), which would be traced and guarded instead.
_eager_directional_derivative = directional_derivative
_compiled = {}


def compiled_directional_derivative(fn, primals, tangents, method: str = "jvp", fd_eps: float = 1e-3,
                                    regions: Regions | None = None):
    """`directional_derivative` under torch.compile: the tangent formulas fused into the forward's kernels
    (eager forward-mode AD launches each op's formula separately, 3.4x a forward on an H100 at Sana-Sprint
    0.6B; docs/step-cost.md), without the products of zero tangents (`tbcm.zero_tangents`). Compiled once per
    process and input shapes; the caller's closure (the frozen student, its condition) is guarded, not
    recompiled per step. On torch 2.11 biased convolutions need `models.compiled_jvp.split_conv_bias` first.

    With `regions` (the model's repeated blocks, `tbcm.regional_jvp`) the JVP compiles one block and chains
    it through all of them instead of compiling the whole call, whose compile time grows faster than the
    depth (28 Sana blocks: 160 s against 38 s block by block on the CPU, docs/compile-time/cpu.md); the
    finite difference then calls the model with its blocks compiled in place.
    """
    if regions is not None:
        if method == "jvp":
            with sdpa_kernel(SDPBackend.MATH):
                return regional_jvp(fn, regions, primals, tangents)
        compile_blocks(regions.blocks)  # the finite difference's three forwards, block by block
        return _eager_directional_derivative(fn, primals, tangents, method, fd_eps)
    if "fn" not in _compiled:
        _compiled["fn"] = torch.compile(_eager_directional_derivative, options=drop_zero_products())
    # skip_zeros=False: Dynamo would not call the eager rules' Functions; the graph pass drops the zero products
    return _compiled["fn"](fn, primals, tangents, method, fd_eps, skip_zeros=False)


def consistency_tangent(
    F_minus: torch.Tensor,
    dF_minus: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    dxdt: torch.Tensor,
    r: float,
    sigma_d: float = SIGMA_DATA,
) -> torch.Tensor:
    """g = -cos^2 t (sigma_d F^- - dx/dt) - r (cos t sin t x_t + sigma_d dF^-), Alg. 1 / Eq. 4."""
    c, s = torch.cos(expand_time(t, x_t)), torch.sin(expand_time(t, x_t))
    return -c * c * (sigma_d * F_minus - dxdt) - r * (c * s * x_t + sigma_d * dF_minus)


def normalize_tangent(g: torch.Tensor, c: float = 0.1) -> torch.Tensor:
    """g / (||g||_2 + c), the norm taken per sample over all its elements (sCM §4.2)."""
    norm = torch.linalg.vector_norm(g.flatten(1), dim=1)
    return g / expand_time(norm + c, g)


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, differentiable in the student and w_phi
    per_pair: torch.Tensor  # [P] detached: e^{-w} L + w
    mse: torch.Tensor  # [P] detached: mean_D (F - F^- - g)^2, without weights
    logvar: torch.Tensor  # [P] detached: w_phi(t)
    tangent_norm: torch.Tensor  # [P] detached: ||g|| before normalisation


def check_pairs(x_t: torch.Tensor, t: torch.Tensor, dxdt: torch.Tensor) -> None:
    """Raise ValueError naming what was expected when a pair batch is malformed or empty."""
    if x_t.ndim < 2:
        raise ValueError(f"x_t must be [P, ...] with P pairs, got shape {tuple(x_t.shape)}")
    if x_t.shape[0] == 0:
        raise ValueError("empty batch: expected at least one (x_t, t, dx/dt) pair")
    if t.shape != (x_t.shape[0],):
        raise ValueError(f"t must have shape [{x_t.shape[0]}] to match x_t {tuple(x_t.shape)}, got {tuple(t.shape)}")
    if dxdt.shape != x_t.shape:
        raise ValueError(f"dx/dt must have x_t's shape {tuple(x_t.shape)}, got {tuple(dxdt.shape)}")
    for name, v in (("x_t", x_t), ("t", t), ("dx/dt", dxdt)):
        if not v.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {v.dtype}")
    if not (x_t.dtype == dxdt.dtype == t.dtype):
        raise ValueError(f"x_t, t and dx/dt must share one dtype, got {x_t.dtype}, {t.dtype}, {dxdt.dtype}")


def scm_loss(
    student: Denoiser,
    weight_fn: Callable[[torch.Tensor], torch.Tensor],
    x_t: torch.Tensor,
    t: torch.Tensor,
    dxdt: torch.Tensor,
    cond: Condition,
    r: float,
    *,
    sigma_d: float = SIGMA_DATA,
    tangent_c: float = 0.1,
    pair_weight: torch.Tensor | None = None,
    tangent_method: str = "jvp",
    frozen: Denoiser | None = None,
    compile_tangent: bool = False,
) -> LossOutput:
    """The loss of Alg. 1 on a batch of P pairs; `pair_weight` [P] (0 or 1) drops filtered pairs.

    The loss is the weighted mean over pairs, so dropped pairs neither contribute nor dilute
    (see filters.py). `frozen` is theta^-; by default the student itself under no_grad.
    `compile_tangent`: step 1's tangent by `compiled_directional_derivative`, block by block when `frozen`
    names its repeated blocks (a `jvp_regions` attribute, e.g. models.sana.SanaTrigFlowStudent).
    """
    check_pairs(x_t, t, dxdt)
    frozen = student if frozen is None else frozen
    primals, tangents = ode_tangents(x_t, t, dxdt, sigma_d)
    with torch.no_grad():
        fn = lambda x, tt: frozen(x, tt, cond)  # noqa: E731
        if compile_tangent:
            F_minus, dF_minus = compiled_directional_derivative(fn, primals, tangents, tangent_method,
                                                                regions=getattr(frozen, "jvp_regions", None))
        else:
            F_minus, dF_minus = directional_derivative(fn, primals, tangents, tangent_method)
        g_raw = consistency_tangent(F_minus, dF_minus, x_t, t, dxdt, r, sigma_d).float()
        g_norm = torch.linalg.vector_norm(g_raw.flatten(1), dim=1)
        g = normalize_tangent(g_raw, tangent_c)
    F = student(x_t / sigma_d, t, cond)
    mse = ((F.float() - F_minus.float() - g) ** 2).flatten(1).mean(1)
    logvar = weight_fn(t).float()
    prior = 1.0 / (sigma_d * torch.tan(t.float()))
    per_pair = prior * torch.exp(-logvar) * mse + logvar
    if pair_weight is None:
        loss = per_pair.mean()
    else:
        if pair_weight.shape != per_pair.shape:
            raise ValueError(f"pair_weight must have shape {tuple(per_pair.shape)}, got {tuple(pair_weight.shape)}")
        w = pair_weight.to(per_pair)
        loss = (w * per_pair).sum() / w.sum().clamp_min(1.0)
    return LossOutput(loss, per_pair.detach(), mse.detach(), logvar.detach(), g_norm.detach())
