"""Eq. 5-9 against closed forms, in float64."""

import math

import torch

from tbcm import trigflow
from tbcm.analytic import GaussianMixtureVelocity, gaussian_ode_solution, gaussian_posterior_mean
from tbcm.denoiser import FlowMatchingAdapter

SD = 0.5
torch.manual_seed(0)


def test_time_map_round_trip():
    t = torch.linspace(0, math.pi / 2, 1001, dtype=torch.float64)
    assert torch.allclose(trigflow.trig_time(trigflow.fm_time(t)), t, atol=1e-10, rtol=0)
    tf = torch.linspace(0, 1, 1001, dtype=torch.float64)
    assert torch.allclose(trigflow.fm_time(trigflow.trig_time(tf)), tf, atol=1e-10, rtol=0)
    assert trigflow.trig_time(torch.tensor(1.0, dtype=torch.float64)) == math.pi / 2


def test_data_and_output_maps_round_trip():
    x = torch.randn(7, 3, 4, 4, dtype=torch.float64)
    t = torch.rand(7, dtype=torch.float64) * math.pi / 2
    tf = trigflow.fm_time(t)
    x_fm = trigflow.trig_to_fm_input(x, t)
    assert torch.allclose(trigflow.fm_to_trig_input(x_fm, tf), x, atol=1e-10, rtol=0)
    v = torch.randn_like(x)
    F = trigflow.velocity_to_trig(v, x_fm, tf)
    assert torch.allclose(trigflow.trig_to_velocity(F, x_fm, tf), v, atol=1e-10, rtol=0)


def test_fm_noising_is_trigflow_noising():
    """x_FM = (1 - t_FM) x0/sigma_d + t_FM eps is Eq. 6 applied to x_t = cos t x0 + sin t sigma_d eps."""
    x0, eps = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    t = torch.rand(5, dtype=torch.float64) * math.pi / 2
    tf = trigflow.fm_time(t)[:, None]
    x_t = trigflow.add_noise(x0, SD * eps, t)
    assert torch.allclose(trigflow.trig_to_fm_input(x_t / SD, t), (1 - tf) * x0 / SD + tf * eps, atol=1e-12)


def test_wrapped_exact_velocity_is_the_trigflow_velocity():
    """For Gaussian data the wrapped FM velocity gives dx/dt = sigma_d F of the closed-form PF-ODE
    trajectory, and the one-step denoise equals the closed-form posterior mean."""
    mu, s = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.3
    F = FlowMatchingAdapter(GaussianMixtureVelocity(mu[None], torch.tensor(s, dtype=torch.float64)))
    x_start = SD * torch.randn(64, 2, dtype=torch.float64)
    t = torch.rand(64, dtype=torch.float64) * (math.pi / 2 - 1e-3) + 1e-3
    x_t = gaussian_ode_solution(x_start, t, mu, s, SD)
    dxdt = SD * F(x_t / SD, t, {})
    # d/dt of the closed-form trajectory, exactly, by forward-mode AD
    _, exact = torch.func.jvp(lambda tt: gaussian_ode_solution(x_start, tt, mu, s, SD), (t,), (torch.ones_like(t),))
    assert (dxdt - exact).abs().max() < 1e-10
    x0_hat = trigflow.denoise(x_t, t, dxdt)
    assert torch.allclose(x0_hat, gaussian_posterior_mean(x_t, t, mu, s, SD), atol=1e-10, rtol=0)


def test_one_step_denoise_recovers_x0_on_point_mass_trajectories():
    """Gaussian data of zero variance (the x0-conditional flow): its trajectories are exactly
    x_t = cos t x0 + sin t z, the exact step (Eq. 9) follows them, and the one-step denoise at
    every point recovers x0."""
    x0 = torch.tensor([[0.7, -1.1, 0.2]], dtype=torch.float64)
    F = FlowMatchingAdapter(GaussianMixtureVelocity(x0 / SD, torch.tensor(0.0, dtype=torch.float64)))
    z = SD * torch.randn(16, 3, dtype=torch.float64)
    times = torch.linspace(math.pi / 2, 0, 9, dtype=torch.float64)
    x = z
    for t, s in zip(times[:-1], times[1:]):
        tb = t.expand(16)
        dxdt = SD * F(x / SD, tb, {})
        assert torch.allclose(trigflow.denoise(x, tb, dxdt), x0.expand(16, 3), atol=1e-6, rtol=0)
        x = trigflow.ode_step(x, tb, s.expand(16), dxdt)
        assert torch.allclose(x, trigflow.add_noise(x0.expand(16, 3), z, s.expand(16)), atol=1e-10)
    assert torch.allclose(x, x0.expand(16, 3), atol=1e-10)


def test_exact_step_converges_to_the_closed_form_ode_endpoint():
    mu, s = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.3
    F = FlowMatchingAdapter(GaussianMixtureVelocity(mu[None], torch.tensor(s, dtype=torch.float64)))
    x_start = SD * torch.randn(32, 2, dtype=torch.float64)
    target = gaussian_ode_solution(x_start, torch.zeros(32, dtype=torch.float64), mu, s, SD)
    errs = []
    for n in (8, 64, 512):
        times = torch.linspace(math.pi / 2, 0, n + 1, dtype=torch.float64)
        x = x_start
        for t, t_next in zip(times[:-1], times[1:]):
            x = trigflow.ode_step(x, t.expand(32), t_next.expand(32), SD * F(x / SD, t.expand(32), {}))
        errs.append(float((x - target).abs().max()))
    # Eq. 9 is a first-order (DDIM) step for non-degenerate data: 8x the steps, ~8x less error.
    assert errs[0] / errs[1] > 5 and errs[1] / errs[2] > 5 and errs[2] < 3e-3, errs


def test_equivalent_noise_of_forward_process_is_the_noise():
    """Eq. 8 with the true x0 returns the noise that made x_t (the 'constant in forward diffusion' of Fig. 3)."""
    x0, z = torch.randn(4, 3, dtype=torch.float64), SD * torch.randn(4, 3, dtype=torch.float64)
    t = torch.rand(4, dtype=torch.float64) + 0.1
    assert torch.allclose(trigflow.equivalent_noise(trigflow.add_noise(x0, z, t), t, x0), z, atol=1e-12)
