"""A known-answer distillation (issue: teacher = exact velocity of a 2-D Gaussian mixture).

The student (the teacher plus a zero-initialised MLP, i.e. initialised from the teacher) is
distilled with TBCM and, separately, with the forward-sampling sCM baseline. Both print their
energy distances to fresh mixture samples next to the teacher's 16-step and 1-step ones.
"""

import time

import pytest

from tbcm.toy2d import Toy2DConfig, distill, evaluate


def _run(method):
    t0 = time.time()
    student, teacher, gmm, info = distill(Toy2DConfig(method=method, steps=2000, threads=2))
    ed, _, _ = evaluate(student, teacher, gmm, n=4000)
    seconds = time.time() - t0
    print(f"\n[{method}] {seconds:.0f}s  ED: " + "  ".join(f"{k}={v:.4f}" for k, v in ed.items()))
    return ed, info, seconds


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tbcm", "scm"])
def test_one_step_student_learns_the_mixture(method):
    ed, info, seconds = _run(method)
    assert info["skipped"] == {}
    # the 1-step student is far better than the teacher run for 1 step...
    assert ed["student_1"] < 0.05 * ed["teacher_1"], ed
    # ...and within 2x of the 16-step teacher's distance (docs/known-answer.md: on well-separated
    # modes this metric is too lenient, which is why the default mixture overlaps)
    assert ed["student_1"] < 2 * ed["teacher_16"], ed
