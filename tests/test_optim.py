"""The student's optimisers (tbcm.optim): CAME against its reference implementation, its state size,
and that it optimises."""

import pytest
import torch
from came_pytorch.CAME import CAME as ReferenceCAME

from tbcm.optim import CAME, make_optimizer, matrix_shape, state_bytes


def run(opt_cls, shapes, steps=6, seed=0, **kw):
    """Parameters of `shapes` after `steps` steps on fixed random gradients (float64)."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in shapes]
    grads = [[torch.randn(s, generator=g, dtype=torch.float64) for s in shapes] for _ in range(steps)]
    opt = opt_cls(params, lr=0.01, **kw)
    for step in grads:
        for p, gr in zip(params, step):
            p.grad = gr.clone()
        opt.step()
    return params, opt


def test_matches_the_reference_on_matrices_and_vectors():
    """A linear weight and a bias: the reference implementation's steps, to float64 rounding."""
    ours, _ = run(CAME, [(5, 3), (5,)])
    ref, _ = run(ReferenceCAME, [(5, 3), (5,)])
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_stacking_same_shaped_weights_changes_nothing():
    """Weights of one shape are stepped as stacks (split into chunks of at most chunk_elements numbers):
    the same steps as the reference's tensor-by-tensor loop, however the stacks are cut."""
    shapes = [(5, 3), (5,), (5, 3), (4, 2, 1, 1), (5, 3), (5,), (4, 2)]
    ref, _ = run(ReferenceCAME, [(5, 3), (5,), (5, 3), (4, 2), (5, 3), (5,), (4, 2)])
    for chunk in (1, 20, 2 ** 25):  # one weight per stack, two, all
        ours, opt = run(CAME, shapes, chunk_elements=chunk)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a.reshape(b.shape), b, rtol=1e-12, atol=1e-14)
        assert [len(opt.state[p]) for p in ours] == [6, 3, 6, 6, 6, 3, 6]  # step + moments / factors, per weight


def test_a_1x1_convolution_is_factored_as_the_matrix_it_applies():
    """[out, in, 1, 1] steps as the reference steps the [out, in] matrix, with n + k numbers per factor
    (the reference factors over the trailing 1 x 1 and keeps four full-size tensors instead)."""
    (conv,), opt = run(CAME, [(5, 3, 1, 1)])
    (matrix,), _ = run(ReferenceCAME, [(5, 3)])
    torch.testing.assert_close(conv.reshape(5, 3), matrix, rtol=1e-12, atol=1e-14)
    state = opt.state[conv]
    assert state["exp_avg_sq_row"].shape == (5,) and state["exp_avg_sq_col"].shape == (3,)
    assert state_bytes(opt) == 8 * (5 * 3 + 2 * 5 + 2 * 3)  # float64: m, then two row and two column factors
    _, ref_opt = run(ReferenceCAME, [(5, 3, 1, 1)])
    assert state_bytes(ref_opt) > 8 * 4 * 15  # the reference: m and four [5, 3, 1] "factors"


def test_other_shapes():
    assert matrix_shape(torch.Size([7, 1, 3, 3])) == (7, 9)  # a depthwise 3 x 3 convolution
    assert matrix_shape(torch.Size([4])) == (4,)
    _, opt = run(CAME, [(7, 1, 3, 3)])
    assert next(iter(opt.state.values()))["exp_avg_res_col"].shape == (9,)


def test_it_minimises_a_quadratic_and_adamw_is_the_default_alternative():
    target = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    for name in ("came", "adamw"):
        w = torch.nn.Parameter(torch.zeros(8, 6))
        opt = make_optimizer(name, [{"params": [w], "lr": 0.05}])
        first = float(((w - target) ** 2).mean())
        for _ in range(300):
            opt.zero_grad()
            loss = ((w - target) ** 2).mean()
            loss.backward()
            opt.step()
        assert float(loss) < first / 100, name
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        make_optimizer("sgd", [{"params": [w], "lr": 0.1}])
    with pytest.raises(ValueError, match="lr must be > 0"):
        CAME([w], lr=0.0)


def test_half_precision_gradients_keep_float32_state():
    w = torch.nn.Parameter(torch.randn(4, 3).bfloat16())
    before = w.detach().clone()
    opt = CAME([w], lr=0.01)
    w.grad = torch.randn(4, 3).bfloat16()
    opt.step()
    assert all(v.dtype == torch.float32 for v in opt.state[w].values() if isinstance(v, torch.Tensor))
    assert w.dtype == torch.bfloat16 and not torch.equal(w, before)


def test_resume_keeps_float32_state_for_bf16_weights_and_is_exact(tmp_path):
    """7 steps = 3 steps, save, load into a fresh optimiser, 4 steps: bit for bit, bf16 weights included
    (torch's load_state_dict would cast the float32 moments to bf16)."""
    g = torch.Generator().manual_seed(3)
    start = [torch.randn(6, 4, generator=g).bfloat16(), torch.randn(6, generator=g)]
    grads = [[torch.randn(6, 4, generator=g).bfloat16(), torch.randn(6, generator=g)] for _ in range(7)]

    def fresh():
        params = [torch.nn.Parameter(x.clone()) for x in start]
        return params, CAME(params, lr=0.01)

    def steps(params, opt, todo):
        for step in todo:
            for p, gr in zip(params, step):
                p.grad = gr.clone()
            opt.step()

    straight, opt = fresh()
    steps(straight, opt, grads)
    resumed, opt = fresh()
    steps(resumed, opt, grads[:3])
    torch.save({"params": [p.detach() for p in resumed], "opt": opt.state_dict()}, tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed, opt = fresh()
    with torch.no_grad():
        for p, x in zip(resumed, saved["params"]):
            p.copy_(x)
    opt.load_state_dict(saved["opt"])
    assert opt.state[resumed[0]]["exp_avg"].dtype == torch.float32
    steps(resumed, opt, grads[3:])
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))


def test_channels_last_scalar_and_empty_weights():
    conv = torch.randn(4, 3, 3, 3)
    grad = torch.randn(4, 3, 3, 3)
    outs = []
    for layout in (torch.contiguous_format, torch.channels_last):
        w = torch.nn.Parameter(conv.clone().to(memory_format=layout))
        w.grad = grad.clone().to(memory_format=layout)
        CAME([w], lr=0.01).step()
        outs.append(w.detach().contiguous())
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], conv)
    scalar, empty = torch.nn.Parameter(torch.tensor(1.0)), torch.nn.Parameter(torch.zeros(0, 3))
    scalar.grad, empty.grad = torch.tensor(0.5), torch.zeros(0, 3)
    CAME([scalar, empty], lr=0.01).step()
    assert float(scalar) != 1.0


def test_bf16_weights_step_as_the_reference_steps_them():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(32, 64, generator=g).bfloat16()
    grads = [torch.randn(32, 64, generator=g).bfloat16() for _ in range(5)]
    outs = []
    for cls in (CAME, ReferenceCAME):
        w = torch.nn.Parameter(start.clone())
        opt = cls([w], lr=0.01)
        for gr in grads:
            w.grad = gr.clone()
            opt.step()
        outs.append(w.detach())
    assert outs[0].dtype == torch.bfloat16 and torch.equal(outs[0], outs[1])
