import pytest
import torch

from tbcm.filters import black_distance, brightness_keep

SD = 0.5


def test_distance_and_drop_probability():
    black = torch.full((4, 2, 2), -1.0)
    x0 = torch.stack([SD * black, SD * (black + 3.0)])  # exactly black; far from black
    d = black_distance(x0, black, SD)
    assert torch.allclose(d, torch.tensor([0.0, 9.0]))
    keep, _ = brightness_keep(x0, black[None], 1.0, SD, torch.Generator().manual_seed(0))
    assert keep.tolist() == [False, True]  # p_drop = 1 and 0


def test_drop_rate_is_one_minus_mse_over_threshold():
    black = torch.zeros(1, 8)
    # rows at mse 0.25 below a threshold of 1: dropped with probability 0.75
    x0 = SD * torch.full((20000, 8), 0.5)
    keep, mse = brightness_keep(x0, black, 1.0, SD, torch.Generator().manual_seed(1))
    assert torch.allclose(mse, torch.full_like(mse, 0.25))
    assert abs(1 - keep.float().mean().item() - 0.75) < 0.015


def test_disabled_filter_keeps_all_and_shape_mismatch_is_named():
    keep, _ = brightness_keep(torch.zeros(3, 4), torch.zeros(4), threshold=0)
    assert keep.all()
    with pytest.raises(ValueError, match="does not match a latent"):
        black_distance(torch.zeros(3, 4), torch.zeros(5))
