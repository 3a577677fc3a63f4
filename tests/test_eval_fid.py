"""The Frechet distance: the value of clean-fid's, and exactly 0 for a set against itself."""

import numpy as np
import pytest
from cleanfid.fid import frechet_distance as cleanfid_frechet

from tbcm.eval.fid import fid, fid_by_category, frechet_distance


def _stats(x):
    return np.mean(x, axis=0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("n, d", [(400, 32), (40, 32), (12, 32)])  # full rank, barely, singular
def test_frechet_distance_is_clean_fids(n, d):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = (rng.normal(size=(n, d)) * 1.3 + 0.2).astype(np.float32)
    ours = frechet_distance(*_stats(a), *_stats(b))
    assert ours == pytest.approx(cleanfid_frechet(*_stats(a), *_stats(b)), rel=1e-6)
    assert fid(a, b) == pytest.approx(ours, rel=1e-12)
    assert abs(fid(a, a)) < 1e-6 * np.trace(_stats(a)[1])


def test_fid_needs_two_images_per_set_and_per_category_marks_the_undefined():
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="at least 2 images"):
        fid(x[:1], x)
    per = fid_by_category(x, list("aaabbbc"), x, list("aaabbbc"))
    assert set(per) == {"a", "b", "c"} and per["c"] is None and abs(per["a"]) < 1e-6
