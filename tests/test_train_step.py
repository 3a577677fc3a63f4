"""Guards of the training step: NaN/Inf skipped and counted, empty batches and bad shapes refused."""

import math

import pytest
import torch

from tbcm.train_step import MethodConfig, SkipCounter, optimize_pairs, scm_step, tbcm_step
from tbcm.weighting import AdaptiveWeight

from toys import TinyDenoiser

SD = 0.5


def _setup():
    student, teacher = TinyDenoiser((2,), seed=1), TinyDenoiser((2,), seed=2)
    w = AdaptiveWeight().double()
    params = list(student.parameters()) + list(w.parameters())
    return student, teacher, w, params, torch.optim.Adam(params, 1e-3)


def test_tbcm_and_scm_steps_train():
    student, teacher, w, params, opt = _setup()
    before = [p.detach().clone() for p in student.parameters()]
    cfg = MethodConfig(route_steps=8, guidance_scales=(1.0,), brightness_threshold=0)
    g = torch.Generator().manual_seed(0)
    res = tbcm_step(student, w, opt, params, teacher, {}, None, (2,), 10, cfg, g, dtype=torch.float64, batch=4)
    assert res.skipped is None and res.n_pairs == 28 and math.isfinite(res.loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    res = scm_step(student, w, opt, params, teacher, SD * torch.randn(5, 2, dtype=torch.float64), {}, None, 11, cfg, g)
    assert res.skipped is None and res.n_pairs == 5


def test_nonfinite_loss_is_skipped_and_counted_not_trained_on():
    student, teacher, w, params, opt = _setup()
    before = [p.detach().clone() for p in params]
    x = SD * torch.randn(4, 2, dtype=torch.float64)
    dxdt = torch.randn(4, 2, dtype=torch.float64)
    dxdt[1, 0] = float("nan")
    counter = SkipCounter()
    res = optimize_pairs(student, w, opt, params, x, torch.full((4,), 0.7, dtype=torch.float64), dxdt, {}, 0, MethodConfig())
    counter.update(res)
    assert res.skipped == "nonfinite_loss" and counter.counts == {"nonfinite_loss": 1}
    assert all(torch.equal(a, b) for a, b in zip(before, params))


def test_nonfinite_gradient_is_skipped_and_counted():
    student, teacher, w, params, opt = _setup()
    before = [p.detach().clone() for p in params]

    def inf_backward(loss):
        loss.backward()
        next(student.parameters()).grad[0, 0] = float("inf")

    x = SD * torch.randn(4, 2, dtype=torch.float64)
    res = optimize_pairs(student, w, opt, params, x, torch.full((4,), 0.7, dtype=torch.float64), torch.randn_like(x), {}, 0,
                         MethodConfig(), backward=inf_backward)
    assert res.skipped == "nonfinite_grad"
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    assert all(p.grad is None for p in params)


def test_all_filtered_step_is_skipped():
    student, teacher, w, params, opt = _setup()
    cfg = MethodConfig(route_steps=4, guidance_scales=(1.0,), brightness_threshold=1e9)  # everything is "black"
    res = tbcm_step(student, w, opt, params, teacher, {}, None, (2,), 0, cfg, torch.Generator().manual_seed(0),
                    black_latent=torch.zeros(2), dtype=torch.float64, batch=3)
    assert res.skipped == "all_filtered" and res.n_dropped == 3


def test_empty_and_mismatched_batches_raise():
    student, teacher, w, params, opt = _setup()
    cfg = MethodConfig(route_steps=4)
    with pytest.raises(ValueError, match="empty prompt batch"):
        tbcm_step(student, w, opt, params, teacher, {}, None, (2,), 0, cfg, torch.Generator())
    with pytest.raises(ValueError, match="x0 has 3 rows but the condition has 2"):
        scm_step(student, w, opt, params, teacher, torch.zeros(3, 2, dtype=torch.float64),
                 {"label": torch.zeros(2, dtype=torch.long)}, None, 0, cfg, torch.Generator())
    with pytest.raises(ValueError, match="empty batch"):
        optimize_pairs(student, w, opt, params, torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, dtype=torch.float64),
                       torch.zeros(0, 2, dtype=torch.float64), {}, 0, cfg)


def test_gradients_are_freed_after_the_step():
    """A taken step leaves no gradient behind: the next step's rollout or VAE encode runs without them."""
    student, teacher, w, params, opt = _setup()
    before = [p.detach().clone() for p in params]
    x = SD * torch.randn(4, 2, dtype=torch.float64)
    res = optimize_pairs(student, w, opt, params, x, torch.full((4,), 0.7, dtype=torch.float64), torch.randn_like(x), {}, 0,
                         MethodConfig())
    assert res.skipped is None and math.isfinite(res.grad_norm) and res.grad_norm > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, params))  # the step was taken
    assert all(p.grad is None for p in params)
