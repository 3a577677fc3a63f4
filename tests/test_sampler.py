import math

import pytest
import torch

from tbcm.analytic import GaussianMixtureVelocity
from tbcm.denoiser import FlowMatchingAdapter
from tbcm.sampler import consistency_sample, consistency_times, teacher_sample

SD = 0.5


def test_consistency_times():
    assert consistency_times(1).tolist() == [math.pi / 2, 0.0]
    assert consistency_times(2).tolist() == [math.pi / 2, 1.3, 0.0]
    t4 = consistency_times(4)
    assert torch.allclose(t4, torch.linspace(math.pi / 2, 0, 5, dtype=torch.float64))
    assert consistency_times(2, [math.pi / 2, 0.8, 0]).tolist() == [math.pi / 2, 0.8, 0.0]
    with pytest.raises(ValueError, match="custom times"):
        consistency_times(2, [1.0, 0.5, 0])
    with pytest.raises(ValueError, match="steps must be >= 1"):
        consistency_times(0)


def test_sampler_with_the_exact_consistency_function_is_exact_for_a_point_mass():
    """For a point mass at x0, F = (cos t x - x0) / (sigma_d sin t) is the exact consistency model:
    1, 2 and 4 steps all return x0, and each re-noising uses fresh noise."""
    x0 = torch.tensor([0.3, -0.7], dtype=torch.float64)
    seen = []

    def F(xs, t, cond):
        seen.append(xs.clone())
        x = xs * SD
        return (torch.cos(t)[:, None] * x - x0) / (SD * torch.sin(t)[:, None])

    noise = SD * torch.randn(6, 2, dtype=torch.float64)
    for steps in (1, 2, 4):
        seen.clear()
        out = consistency_sample(F, {}, noise, consistency_times(steps), torch.Generator().manual_seed(0))
        assert torch.allclose(out, x0.expand(6, 2), atol=1e-12)
        assert len(seen) == steps
    # the second input of the 4-step run is x0 re-noised to t = 3 pi / 8 with fresh noise, not the first noise
    t1 = torch.full((6,), 3 * math.pi / 8, dtype=torch.float64)
    z = (seen[1] * SD - torch.cos(t1)[:, None] * x0) / torch.sin(t1)[:, None]
    assert not torch.allclose(z, noise)


def test_teacher_sampler_uses_reference_route_and_reaches_data_scale():
    teacher = FlowMatchingAdapter(GaussianMixtureVelocity(torch.tensor([[2.0, 0.0]], dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)))
    noise = SD * torch.randn(512, 2, dtype=torch.float64)
    x = teacher_sample(teacher, {}, None, noise, 1.0, 16)
    assert torch.allclose(x.mean(0), torch.tensor([1.0, 0.0], dtype=torch.float64), atol=0.02)  # sigma_d * mu
    one = teacher_sample(teacher, {}, None, noise, 1.0, 1)
    assert one.std(0).max() < x.std(0).max()  # a 1-step teacher collapses towards the mean
