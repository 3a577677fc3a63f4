"""Teacher rollout (Alg. 1): pairs satisfy the ODE, CFG, amortised conditioning, final x0."""

import pytest
import torch

from tbcm import trigflow
from tbcm.analytic import GaussianMixtureVelocity
from tbcm.denoiser import FlowMatchingAdapter, concat_conditions, repeat_condition, split_condition
from tbcm.rollout import draw_guidance, guided_velocity, rollout
from tbcm.routes import sample_routes
from tbcm.train_step import MethodConfig, StepPairs, tbcm_pairs_ahead

from toys import TinyDenoiser

SD = 0.5


class CountingTeacher(torch.nn.Module):
    """Records every condition it is called with; F = a label-dependent linear field."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, cond):
        self.calls.append({k: v.clone() for k, v in cond.items()})
        return -x * (1 + cond["label"].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1))))


def test_pairs_satisfy_the_ode_and_chain_by_exact_steps():
    mu, s = torch.tensor([[0.8, -0.3]], dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    teacher = FlowMatchingAdapter(GaussianMixtureVelocity(mu, s))
    routes = sample_routes("reference", 5, 16, torch.Generator().manual_seed(0))
    noise = SD * torch.randn(5, 2, dtype=torch.float64)
    traj = rollout(teacher, {}, None, routes, noise, torch.ones(5, dtype=torch.float64))
    assert traj.x_t.shape == (5, 15, 2) and traj.t.shape == (5, 15) and traj.dxdt.shape == (5, 15, 2)
    assert torch.equal(traj.t, routes[:, 1:])  # every point after the pure-noise one
    for i in range(15):
        # dx/dt is the teacher's velocity at the stored point...
        v = SD * teacher(traj.x_t[:, i] / SD, traj.t[:, i], {})
        assert torch.allclose(traj.dxdt[:, i], v, atol=1e-12)
        # ...and consecutive points are linked by the exact step of Eq. 9
        nxt = traj.x_t[:, i + 1] if i < 14 else traj.x0
        t_next = traj.t[:, i + 1] if i < 14 else torch.zeros(5, dtype=torch.float64)
        assert torch.allclose(trigflow.ode_step(traj.x_t[:, i], traj.t[:, i], t_next, traj.dxdt[:, i]), nxt, atol=1e-12)


def test_cfg_is_the_classic_two_pass_combination():
    teacher = CountingTeacher()
    x = torch.randn(3, 2, dtype=torch.float64)
    t = torch.full((3,), 1.0, dtype=torch.float64)
    cond, uncond = {"label": torch.tensor([1, 2, 3])}, {"label": torch.tensor([0])}
    w = torch.tensor([4.0, 4.5, 5.0], dtype=torch.float64)
    v = guided_velocity(teacher, x, t, cond, uncond, w, SD)
    F_c = -(x / SD) * (1 + cond["label"][:, None])
    F_u = -(x / SD)
    assert torch.allclose(v, SD * (F_u + w[:, None] * (F_c - F_u)))
    assert len(teacher.calls) == 1 and teacher.calls[0]["label"].tolist() == [0, 0, 0, 1, 2, 3]  # one batched pass


def test_conditioning_is_repeated_not_recomputed_and_guidance_is_per_prompt():
    teacher = CountingTeacher()
    cond, uncond = {"label": torch.tensor([1, 2])}, {"label": torch.tensor([0])}
    cfg = MethodConfig(route_steps=6, brightness_threshold=0)
    g = torch.Generator().manual_seed(3)
    (p,), traj = tbcm_pairs_ahead(teacher, [cond], uncond, (2,), cfg, g, dtype=torch.float64)
    x_t, t, scond, weight, keep = p.x_t, p.t, p.student_cond(), p.pair_weight, p.keep
    assert x_t.shape == (10, 2) and t.shape == (10,)
    assert scond["label"].tolist() == [1] * 5 + [2] * 5  # prompt-major, 5 pairs each
    assert torch.all(scond["guidance"][:5] == traj.guidance[0]) and torch.all(scond["guidance"][5:] == traj.guidance[1])
    assert set(traj.guidance.tolist()) <= {4.0, 4.5, 5.0}
    assert len(teacher.calls) == 6  # one (batched CFG) teacher call per route point, no re-encoding
    assert weight.tolist() == [1.0] * 10 and keep.all()


def test_pairs_rolled_out_ahead_are_the_step_by_step_pairs():
    """Three steps from one rollout = one rollout per step on the same generator (rank 1 of 2, the filter
    drawing): the same pairs, weights and generator state afterwards, from 6 teacher calls instead of 18."""
    cfg = MethodConfig(route_steps=6, brightness_threshold=1e6)  # this field drives x0 to 3 .. 3e7 from black
    conds = [{"label": torch.tensor([1, 2])}, {"label": torch.tensor([3, 0])}, {"label": torch.tensor([2, 2])}]
    uncond, black = {"label": torch.tensor([0])}, torch.zeros(2, dtype=torch.float64)
    kw = dict(black_latent=black, dtype=torch.float64, rank=1, world_size=2)
    g_one, g_ahead = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    one_teacher, ahead_teacher = CountingTeacher(), CountingTeacher()
    one = [tbcm_pairs_ahead(one_teacher, [c], uncond, (2,), cfg, g_one, **kw)[0][0] for c in conds]
    ahead, traj = tbcm_pairs_ahead(ahead_teacher, conds, uncond, (2,), cfg, g_ahead, **kw)
    assert len(one_teacher.calls) == 18 and len(ahead_teacher.calls) == 6 and traj.x_t.shape[0] == 6
    assert torch.equal(g_one.get_state(), g_ahead.get_state())
    keeps = torch.cat([o.keep for o in one])
    assert 0 < int(keeps.sum()) < 6  # the filter dropped some prompts, not all
    for o, p in zip(one, ahead):
        x_t, scond = o.x_t, o.student_cond()
        torch.testing.assert_close(p.x_t, x_t, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(p.dxdt, o.dxdt, rtol=1e-12, atol=1e-14)
        assert torch.equal(p.t, o.t) and torch.equal(p.keep, o.keep) and torch.equal(p.pair_weight, o.pair_weight)
        cond = p.student_cond()
        assert set(cond) == set(scond) and all(torch.equal(cond[k], scond[k]) for k in scond)
        restored = StepPairs.from_state(p.state(), "cpu")  # a checkpoint's copy trains on the same pairs
        assert all(torch.equal(restored.student_cond()[k], scond[k]) for k in scond)
        assert torch.equal(restored.x_t, x_t) and p.state()["x_t"].untyped_storage().nbytes() == x_t.numel() * 8


def test_guidance_one_skips_the_unconditional_pass():
    teacher = CountingTeacher()
    x = torch.randn(2, 2, dtype=torch.float64)
    guided_velocity(teacher, x, torch.ones(2, dtype=torch.float64), {"label": torch.tensor([1, 1])},
                    {"label": torch.tensor([0])}, torch.ones(2, dtype=torch.float64), SD)
    assert teacher.calls[0]["label"].tolist() == [1, 1]


def test_draw_guidance_covers_the_set_and_is_reproducible():
    a = draw_guidance(3000, (4, 4.5, 5), torch.Generator().manual_seed(0))
    assert set(a.tolist()) == {4.0, 4.5, 5.0}
    assert torch.equal(a, draw_guidance(3000, (4, 4.5, 5), torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="empty"):
        draw_guidance(2, ())


def test_rollout_rejects_mismatched_shapes():
    teacher = TinyDenoiser((2,))
    routes = sample_routes("random", 3, 4)
    with pytest.raises(ValueError, match="share the batch size"):
        rollout(teacher, {}, None, routes, torch.zeros(2, 2, dtype=torch.float64), torch.ones(3))


def test_repeat_condition_is_prompt_major():
    cond = {"e": torch.arange(6.0).reshape(2, 3)}
    out = repeat_condition(cond, 3)
    assert out["e"][:3].eq(cond["e"][0]).all() and out["e"][3:].eq(cond["e"][1]).all()


def test_split_condition_inverts_concat():
    a, b = {"e": torch.randn(2, 3), "m": torch.ones(2, 3)}, {"e": torch.randn(3, 3), "m": torch.zeros(3, 3)}
    parts = split_condition(concat_conditions(a, b), [2, 3])
    assert all(torch.equal(parts[0][k], a[k]) and torch.equal(parts[1][k], b[k]) for k in a)
    assert split_condition({}, [2, 2]) == [{}, {}]  # an unconditional model's empty condition
    with pytest.raises(ValueError, match="condition has 5 rows"):
        split_condition(concat_conditions(a, b), [2, 2])
