"""The standard error of a mean over prompts that come in clusters.

An accuracy over n prompts is a mean of n 0/1 readings. sqrt(p (1 - p) / n) is its standard error only if
the readings are independent; in the embedded world prompts that share an attribute tuple (shape,
colour, background, size, position) differ only in wording, so they are drawn and read alike (the
first 500 held-out ids hold 232 tuples). The cluster-robust (Liang-Zeger) estimator treats each
cluster's summed residual as one draw:

    SE^2 = C / (C - 1) * sum_c (sum_{i in c} (y_i - mean))^2 / n^2

with C clusters; with one prompt per cluster it is the sample standard error sqrt(s^2 / n) of
independent readings (s^2 with n - 1), the C / (C - 1) being the usual small-sample correction.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


def clustered_standard_error(values: torch.Tensor, clusters: Sequence[Hashable]) -> float:
    """Standard error of `values.mean()` ([n] readings) when readings within a cluster may be correlated."""
    y = values.double().flatten()
    if len(y) != len(clusters):
        raise ValueError(f"{len(y)} values but {len(clusters)} cluster labels")
    index = {c: k for k, c in enumerate(dict.fromkeys(clusters))}
    n, C = len(y), len(index)
    if C < 2:
        raise ValueError(f"a clustered standard error needs at least 2 clusters, got {C}")
    sums = torch.zeros(C, dtype=torch.float64).index_add_(0, torch.tensor([index[c] for c in clusters]), y - y.mean())
    return float((C / (C - 1) * sums.pow(2).sum()).sqrt() / n)
