"""Trajectory sampling schemes (§4.2): the published route, quantiles, monotonicity."""

import math

import pytest
import torch

from tbcm import routes
from tbcm.routes import logit_normal_quantile, reference_route, sample_routes

# method-notes §2: Reference Route for N = 16, shift 2.5, in trig time.
PUBLISHED = [1.5708, 1.5423, 1.5095, 1.4714, 1.4268, 1.3741, 1.3112, 1.2356, 1.1440, 1.0331,
             0.8997, 0.7425, 0.5642, 0.3734, 0.1832, 0.0063]


def test_reference_route_matches_published():
    r = reference_route(16, 2.5)
    assert torch.allclose(r, torch.tensor(PUBLISHED, dtype=torch.float64), atol=1e-3, rtol=0)


def test_flow_euler_sigmas_match_diffusers_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    for n, shift in ((16, 2.5), (8, 3.0), (30, 1.0)):
        sch = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
        sch.set_timesteps(n)
        ours = routes.flow_euler_sigmas(n, shift)
        assert torch.allclose(ours, sch.sigmas[:-1].double(), atol=1e-6), (n, shift)


@pytest.mark.parametrize("scheme", routes.SCHEMES)
@pytest.mark.parametrize("n", [2, 5, 16, 40])
def test_every_scheme_strictly_decreasing_from_half_pi(scheme, n):
    g = torch.Generator().manual_seed(n)
    r = sample_routes(scheme, 64, n, g, shift=3.0)
    assert r.shape == (64, n)
    assert torch.all(r[:, 0] == math.pi / 2)
    assert torch.all(r[:, 1:] < r[:, :-1])
    assert torch.all(r > 0) and torch.all(r <= math.pi / 2)


def test_reference_route_draws_one_per_interval():
    ref = reference_route(16, 2.5)
    r = sample_routes("reference", 2000, 16, torch.Generator().manual_seed(0))
    assert torch.all(r[:, 1:] > ref[1:]) and torch.all(r[:, 1:] < ref[:-1])
    # uniform within its interval: the mean sits at the midpoint
    mid = (ref[1:] + ref[:-1]) / 2
    assert torch.allclose(r[:, 1:].mean(0), mid, atol=0.01 * (ref[:-1] - ref[1:]).max().item() * 3)


def test_logit_normal_quantiles_match_lognormal_formula():
    g = torch.Generator().manual_seed(0)
    draws = sample_routes("logit_normal", 4000, 11, g)[:, 1:].flatten()
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
    emp = torch.quantile(draws, q)
    assert torch.allclose(emp, logit_normal_quantile(q), atol=0.01), (emp, logit_normal_quantile(q))
    # the formula itself: median is arctan(exp(P_mean) / sigma_d)
    assert abs(float(logit_normal_quantile(torch.tensor(0.5))) - math.atan(math.exp(0.2) / 0.5)) < 1e-12


def test_random_scheme_is_uniform():
    draws = sample_routes("random", 4000, 9, torch.Generator().manual_seed(1))[:, 1:].flatten()
    q = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(torch.quantile(draws, q), q * math.pi / 2, atol=0.02)


def test_routes_are_reproducible_and_bad_input_is_named():
    a = sample_routes("logit_normal", 3, 8, torch.Generator().manual_seed(5))
    b = sample_routes("logit_normal", 3, 8, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown route scheme 'euler'"):
        sample_routes("euler", 1, 8)
    with pytest.raises(ValueError, match="n >= 2"):
        sample_routes("random", 1, 1)
