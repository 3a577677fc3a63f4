"""TrigFlow: the time and data maps between TrigFlow and flow matching, the exact ODE step,
the one-step denoiser and the equivalent noise (paper §3, Eq. 5-9).

Convention (Sana-Sprint's, which TBCM inherits):
    x_t = cos(t) * x0 + sin(t) * z,   z ~ N(0, sigma_d^2 I),   t in [0, pi/2]
    dx_t/dt = sigma_d * F(x_t / sigma_d, t, y)
The flow-matching (FM) model sees x_FM = (1 - t_FM) * (x0 / sigma_d) + t_FM * eps with eps ~ N(0, I)
and predicts v = eps - x0 / sigma_d. So a TrigFlow x0 is sigma_d times an FM (VAE-scaled) latent.

Every function here is elementwise in t, which is broadcast from shape [B] over the sample dims.
"""

from __future__ import annotations

import math

import torch

SIGMA_DATA = 0.5
HALF_PI = math.pi / 2


def expand_time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample time [B] (or a scalar) to broadcast against x [B, ...]."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"time must be a scalar or have shape [{x.shape[0]}], got {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def fm_time(t_trig: torch.Tensor) -> torch.Tensor:
    """Eq. 5: t_FM = sin t / (sin t + cos t), mapping [0, pi/2] onto [0, 1]."""
    s, c = torch.sin(t_trig), torch.cos(t_trig)
    return s / (s + c)


def trig_time(t_fm: torch.Tensor) -> torch.Tensor:
    """Inverse of Eq. 5: t = arctan(t_FM / (1 - t_FM)), written with atan2 so t_FM = 1 gives pi/2."""
    return torch.atan2(t_fm, 1 - t_fm)


def fm_scale(t_fm: torch.Tensor) -> torch.Tensor:
    """sqrt(t_FM^2 + (1 - t_FM)^2) = 1 / (sin t + cos t), the factor shared by Eq. 6 and Eq. 7."""
    return torch.sqrt(t_fm**2 + (1 - t_fm) ** 2)


def trig_to_fm_input(x_scaled: torch.Tensor, t_trig: torch.Tensor) -> torch.Tensor:
    """Eq. 6: the FM network's input x_FM from the TrigFlow input x_t / sigma_d."""
    return x_scaled * fm_scale(expand_time(fm_time(t_trig), x_scaled))


def fm_to_trig_input(x_fm: torch.Tensor, t_fm: torch.Tensor) -> torch.Tensor:
    """Inverse of Eq. 6: x_t / sigma_d from x_FM."""
    return x_fm / fm_scale(expand_time(t_fm, x_fm))


def velocity_to_trig(v: torch.Tensor, x_fm: torch.Tensor, t_fm: torch.Tensor) -> torch.Tensor:
    """Eq. 7: F = [(1 - 2 t_FM) x_FM + (1 - 2 t_FM + 2 t_FM^2) v] / sqrt(t_FM^2 + (1 - t_FM)^2)."""
    tf = expand_time(t_fm, x_fm)
    return ((1 - 2 * tf) * x_fm + (1 - 2 * tf + 2 * tf**2) * v) / fm_scale(tf)


def trig_to_velocity(F: torch.Tensor, x_fm: torch.Tensor, t_fm: torch.Tensor) -> torch.Tensor:
    """Inverse of Eq. 7: the FM velocity v that a TrigFlow output F corresponds to."""
    tf = expand_time(t_fm, x_fm)
    return (F * fm_scale(tf) - (1 - 2 * tf) * x_fm) / (1 - 2 * tf + 2 * tf**2)


def add_noise(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Forward process: x_t = cos t * x0 + sin t * z (z already scaled by sigma_d)."""
    te = expand_time(t, x0)
    return torch.cos(te) * x0 + torch.sin(te) * z


def denoise(x_t: torch.Tensor, t: torch.Tensor, dxdt: torch.Tensor) -> torch.Tensor:
    """One-step denoise x0 = cos t * x_t - sin t * sigma_d * F, with dxdt = sigma_d * F (§3.2)."""
    te = expand_time(t, x_t)
    return torch.cos(te) * x_t - torch.sin(te) * dxdt


def ode_step(x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor, dxdt: torch.Tensor) -> torch.Tensor:
    """Eq. 9, exact TrigFlow step from t down to s: x_s = cos(t - s) x_t - sin(t - s) dx_t/dt.

    It is the DDIM step in TrigFlow form: exact whenever the x0-prediction is constant on [s, t].
    Eq. 9 writes the step with sigma_d * dx/dt and F_teacher for dx/dt; the public code and this
    one use dx/dt = sigma_d * F, which is the consistent reading (method-notes §1).
    """
    delta = expand_time(t, x_t) - expand_time(s, x_t)
    return torch.cos(delta) * x_t - torch.sin(delta) * dxdt


def equivalent_noise(x_t: torch.Tensor, t: torch.Tensor, x0_hat: torch.Tensor) -> torch.Tensor:
    """Eq. 8: Noise_eqv = (x_t - cos t * x0_hat) / sin t (undefined at t = 0)."""
    te = expand_time(t, x_t)
    return (x_t - torch.cos(te) * x0_hat) / torch.sin(te)
