"""The clustered standard error of an accuracy (tbcm.eval.stderr) against closed forms, in float64."""

import pytest
import torch

from tbcm.eval.stderr import clustered_standard_error


def test_one_reading_per_cluster_is_the_sample_standard_error():
    y = (torch.rand(500, generator=torch.Generator().manual_seed(0), dtype=torch.float64) < 0.8).double()
    se = clustered_standard_error(y, list(range(500)))
    assert se == pytest.approx(float((y.var(unbiased=True) / 500).sqrt()), rel=1e-12)
    p = float(y.mean())
    assert se == pytest.approx((p * (1 - p) / 499) ** 0.5, rel=1e-12)  # the binomial form, n - 1


def test_a_reading_copied_within_its_cluster_adds_no_information():
    """k copies of each of n readings, each reading's copies one cluster: the clustered error is the
    original n readings' error, where treating the k n copies as independent shrinks it by sqrt(k)."""
    y = (torch.rand(200, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < 0.7).double()
    k = 4
    copies, labels = y.repeat_interleave(k), [i for i in range(200) for _ in range(k)]
    original = clustered_standard_error(y, list(range(200)))
    assert clustered_standard_error(copies, labels) == pytest.approx(original, rel=1e-12)
    naive = clustered_standard_error(copies, list(range(200 * k)))
    assert naive == pytest.approx(original / k ** 0.5, rel=0.01)


def test_it_matches_the_spread_of_means_over_repeated_draws():
    """Readings with a shared per-cluster effect (30 clusters of 10): the standard deviation of the mean
    over 4000 repeated draws against the average estimate."""
    g = torch.Generator().manual_seed(2)
    labels = [c for c in range(30) for _ in range(10)]
    means, estimates = [], []
    for _ in range(4000):
        p = (0.8 + 0.15 * torch.randn(30, generator=g, dtype=torch.float64)).clamp(0, 1).repeat_interleave(10)
        y = (torch.rand(300, generator=g, dtype=torch.float64) < p).double()
        means.append(float(y.mean()))
        estimates.append(clustered_standard_error(y, labels))
    truth = float(torch.tensor(means).std())
    assert sum(estimates) / len(estimates) == pytest.approx(truth, rel=0.1)
    assert truth > 1.3 * (0.8 * 0.2 / 300) ** 0.5  # the clusters matter: 1.46x the binomial error here


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="3 values but 2 cluster labels"):
        clustered_standard_error(torch.ones(3), ["a", "b"])
    with pytest.raises(ValueError, match="at least 2 clusters"):
        clustered_standard_error(torch.ones(3), ["a", "a", "a"])
