"""The sCM/TBCM loss: JVP vs finite differences, the tangent's fixed point, normalisation, weighting."""

import math

import pytest
import torch

from tbcm import trigflow
from tbcm.analytic import ring_mixture
from tbcm.denoiser import FlowMatchingAdapter
from tbcm.loss import check_pairs, consistency_tangent, directional_derivative, normalize_tangent, ode_tangents, scm_loss
from tbcm.weighting import AdaptiveWeight

from toys import TinyDenoiser

SD = 0.5


def _pairs(shape=(3, 4, 4), b=6, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = SD * torch.randn(b, *shape, generator=g, dtype=dtype)
    t = torch.rand(b, generator=g, dtype=dtype) * 1.4 + 0.1
    dxdt = SD * torch.randn(b, *shape, generator=g, dtype=dtype)
    return x, t, dxdt


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_jvp_term_matches_central_finite_difference(dtype):
    """The JVP (in the run's dtype) against a float64 central difference of the same network."""
    net = TinyDenoiser((3, 4, 4), dtype=dtype)
    net64 = TinyDenoiser((3, 4, 4), dtype=torch.float64)
    net64.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    x, t, dxdt = _pairs(dtype=torch.float64)
    primals, tangents = ode_tangents(x, t, dxdt, SD)
    with torch.no_grad():
        cast = lambda vs: tuple(v.to(dtype) for v in vs)
        _, jvp = directional_derivative(lambda a, b: net(a, b, {}), cast(primals), cast(tangents), "jvp")
        _, fd = directional_derivative(lambda a, b: net64(a, b, {}), primals, tangents, "finite_difference", fd_eps=1e-5)
    rel = (jvp.double() - fd).norm() / fd.norm()
    assert rel < 1e-4, float(rel)


def test_jvp_through_attention_uses_a_backend_with_forward_ad():
    """torch.func.jvp fails on fused SDPA kernels; directional_derivative must still work."""
    attn = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()

    def fn(x, t):
        h = x * torch.cos(t)[:, None, None]
        return attn(h, h, h, need_weights=False)[0]

    x = torch.randn(2, 5, 8, dtype=torch.float64)
    t = torch.rand(2, dtype=torch.float64)
    v = (torch.randn_like(x), torch.randn_like(t))
    with torch.no_grad():
        _, jvp = directional_derivative(fn, (x, t), v, "jvp")
        _, fd = directional_derivative(fn, (x, t), v, "finite_difference", fd_eps=1e-6)
    assert (jvp - fd).norm() / jvp.norm() < 1e-6


def test_exact_consistency_function_has_zero_tangent():
    """For the exact teacher of a Gaussian mixture, F* built from its ODE endpoint f*(x, t) makes
    g (Eq. 4 with r = 1) vanish up to the ODE solver's error, while the teacher's own F does not."""
    teacher = FlowMatchingAdapter(ring_mixture(8, 1.6, 0.25))

    def f_star(x, t, n=300):
        for k in range(n):
            x = trigflow.ode_step(x, t * (1 - k / n), t * (1 - (k + 1) / n), SD * teacher(x / SD, t * (1 - k / n), {}))
        return x

    def F_star(xs, t):
        x = xs * SD
        return (torch.cos(t)[:, None] * x - f_star(x, t)) / (SD * torch.sin(t)[:, None])

    g0 = torch.Generator().manual_seed(0)
    x = SD * torch.randn(8, 2, generator=g0, dtype=torch.float64)
    t = torch.rand(8, generator=g0, dtype=torch.float64) * 1.3 + 0.2
    dxdt = SD * teacher(x / SD, t, {})
    primals, tangents = ode_tangents(x, t, dxdt, SD)
    norms = {}
    for name, fn in (("teacher", lambda a, b: teacher(a, b, {})), ("exact", F_star)):
        F, dF = directional_derivative(fn, primals, tangents)
        norms[name] = consistency_tangent(F, dF, x, t, dxdt, 1.0, SD).norm(dim=1)
    assert norms["exact"].max() < 5e-3, norms
    assert norms["teacher"].median() > 20 * norms["exact"].max(), norms


def test_tangent_formula_against_alg1():
    F, dF = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    x, t, dxdt = _pairs((3,), b=4)
    r = 0.6
    g = consistency_tangent(F, dF, x, t, dxdt, r, SD)
    c, s = torch.cos(t)[:, None], torch.sin(t)[:, None]
    assert torch.allclose(g, -c**2 * (SD * F - dxdt) - r * (c * s * x + SD * dF))


def test_tangent_normalisation_is_per_sample():
    g = torch.randn(5, 3, 4, 4, dtype=torch.float64) * torch.arange(1, 6, dtype=torch.float64)[:, None, None, None]
    n = normalize_tangent(g, 0.1)
    norms = g.flatten(1).norm(dim=1)
    assert torch.allclose(n.flatten(1).norm(dim=1), norms / (norms + 0.1))


def test_loss_gradient_is_the_weighted_tangent():
    """At theta = theta^-, d loss / d F = -(2 / (P D)) e^{-w} / (sigma_d tan t) g_hat, the sCM update."""
    x, t, dxdt = _pairs((2,), b=5)
    F_fixed = torch.randn(5, 2, dtype=torch.float64)
    param = torch.nn.Parameter(F_fixed.clone())
    student = lambda xs, tt, c: param + 0 * xs
    w = AdaptiveWeight().double()
    with torch.no_grad():
        w.linear.bias.fill_(0.3)
    out = scm_loss(student, w, x, t, dxdt, {}, 0.8, sigma_d=SD)
    out.loss.backward()
    g = normalize_tangent(consistency_tangent(F_fixed, torch.zeros_like(F_fixed), x, t, dxdt, 0.8, SD))
    expected = -(2 / (5 * 2)) * math.exp(-0.3) / (SD * torch.tan(t))[:, None] * g
    assert torch.allclose(param.grad, expected, atol=1e-12)


def test_pair_weight_renormalises_over_kept_pairs():
    net = TinyDenoiser((2,))
    w = AdaptiveWeight().double()
    x, t, dxdt = _pairs((2,), b=6)
    full = scm_loss(net, w, x, t, dxdt, {}, 1.0, sigma_d=SD)
    keep = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.float64)
    masked = scm_loss(net, w, x, t, dxdt, {}, 1.0, sigma_d=SD, pair_weight=keep)
    idx = keep.bool()
    sub = scm_loss(net, w, x[idx], t[idx], dxdt[idx], {}, 1.0, sigma_d=SD)
    assert torch.allclose(masked.loss, sub.loss, atol=1e-12)
    assert not torch.allclose(masked.loss, full.loss)


def test_bad_pairs_raise_value_error_naming_the_problem():
    x, t, dxdt = _pairs((2,), b=3)
    with pytest.raises(ValueError, match="empty batch"):
        check_pairs(x[:0], t[:0], dxdt[:0])
    with pytest.raises(ValueError, match=r"t must have shape \[3\]"):
        check_pairs(x, t[:2], dxdt)
    with pytest.raises(ValueError, match="dx/dt must have x_t's shape"):
        check_pairs(x, t, dxdt[:, :1])
    with pytest.raises(ValueError, match="share one dtype"):
        check_pairs(x, t.float(), dxdt)
    with pytest.raises(ValueError, match="floating-point"):
        check_pairs(x, t, dxdt.long())


def test_compiled_tangent_compiles_the_library_function_not_a_later_wrapper(monkeypatch):
    """compiled_directional_derivative equals the eager one, and compiles the function itself even when a
    caller has since wrapped the module attribute (the step-cost benchmark times it that way)."""
    import tbcm.loss as loss_module

    seen = []
    eager = loss_module.directional_derivative

    def wrapper(*args, **kw):
        seen.append(1)
        return eager(*args, **kw)

    monkeypatch.setattr(loss_module, "directional_derivative", wrapper)
    monkeypatch.setattr(loss_module, "_compiled", {})
    w = torch.randn(3, 3, dtype=torch.float64)
    fn = lambda x, t: torch.tanh(x @ w) * torch.cos(t)[:, None]  # noqa: E731
    primals = (torch.randn(4, 3, dtype=torch.float64), torch.rand(4, dtype=torch.float64))
    tangents = (torch.randn(4, 3, dtype=torch.float64), torch.rand(4, dtype=torch.float64))
    with torch.no_grad():
        out, tangent = loss_module.compiled_directional_derivative(fn, primals, tangents, "jvp")
        ref_out, ref = eager(fn, primals, tangents, "jvp")
    assert seen == []
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(tangent, ref)
