"""tbcm.skip_zero_tangents: an eager JVP runs each linear layer's and convolution's products twice, not three
times, and computes the same primal and tangent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tbcm.loss import directional_derivative, ode_tangents
from tbcm.skip_zero_tangents import CountProducts, skip_zero_products, skipping_jvp


def jvp(fn, primals, tangents, skip: bool):
    with torch.no_grad(), CountProducts() as count:
        if skip:
            with skip_zero_products():
                out = torch.func.jvp(fn, primals, tangents)
        else:
            out = torch.func.jvp(fn, primals, tangents)
    return out, count


LAYERS = {
    "linear": lambda: torch.nn.Linear(6, 5),
    "linear, no bias": lambda: torch.nn.Linear(6, 5, bias=False),
    "conv 3x3": lambda: torch.nn.Conv2d(6, 5, 3, padding=1),
    "conv strided, dilated, no bias": lambda: torch.nn.Conv2d(6, 4, 3, stride=2, padding=2, dilation=2, bias=False),
    "conv depthwise, padding 'same'": lambda: torch.nn.Conv2d(6, 6, 3, padding="same", groups=6),
    "conv grouped 1x1": lambda: torch.nn.Conv2d(6, 4, 1, groups=2),
}


@pytest.mark.parametrize("name", LAYERS)
def test_a_layer_runs_two_products_not_three_and_the_same_jvp(name):
    torch.manual_seed(0)
    layer = LAYERS[name]().double()
    shape = (3, 7, 6) if isinstance(layer, torch.nn.Linear) else (2, 6, 7, 7)
    x, dx = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    (y0, dy0), stock = jvp(layer, (x,), (dx,), skip=False)
    (y1, dy1), skipped = jvp(layer, (x,), (dx,), skip=True)
    assert stock.products == 3 and skipped.products == 2  # x W, dx W (and PyTorch's x 0)
    assert stock.ops["zeros"] > 0 and skipped.ops["zeros"] == 0
    assert torch.equal(y1, y0)
    torch.testing.assert_close(dy1, dy0, rtol=1e-13, atol=1e-13)
    # the loss's call: the same on dual tensors
    with torch.no_grad(), CountProducts() as dual:
        y2, dy2 = skipping_jvp(layer, (x,), (dx,))
    assert dual.products == 2 and torch.equal(y2, y0)
    torch.testing.assert_close(dy2, dy0, rtol=1e-13, atol=1e-13)
    # and the tangent is the derivative: central difference in float64
    eps = 1e-6
    fd = (layer(x + eps * dx) - layer(x - eps * dx)) / (2 * eps)
    torch.testing.assert_close(dy1, fd, rtol=1e-7, atol=1e-8)


def test_tangents_of_weights_and_biases_are_kept():
    """The rule is general: where a weight or bias does carry a tangent, its terms are in (here all three, as
    functions of the parameters)."""
    torch.manual_seed(0)
    d = lambda *s: torch.randn(*s, dtype=torch.float64)  # noqa: E731
    x, w, b, dx, dw, db = d(4, 6), d(5, 6), d(5), d(4, 6), d(5, 6), d(5)
    cx, cw, cb, dcx, dcw, dcb = d(2, 6, 5, 5), d(4, 3, 3, 3), d(4), d(2, 6, 5, 5), d(4, 3, 3, 3), d(4)
    lin = lambda x, w, b: F.linear(x, weight=w, bias=b)  # noqa: E731  (keywords, as some callers pass them)
    conv = lambda x, w, b: F.conv2d(x, w, b, 1, 1, 1, 2)  # noqa: E731
    for fn, p, t in ((lin, (x, w, b), (dx, dw, db)), (conv, (cx, cw, cb), (dcx, dcw, dcb))):
        (y0, dy0), _ = jvp(fn, p, t, skip=False)
        (y1, dy1), count = jvp(fn, p, t, skip=True)
        assert count.products == 3  # x W, dx W, x dW: all three needed
        assert torch.equal(y1, y0)
        torch.testing.assert_close(dy1, dy0, rtol=1e-13, atol=1e-13)
        # a tangent on the weight alone: one product for it, none for the input's absent tangent
        (_, dyw), count = jvp(lambda w: fn(p[0], w, p[2]), (p[1],), (t[1],), skip=True)
        (_, dyw0), _ = jvp(lambda w: fn(p[0], w, p[2]), (p[1],), (t[1],), skip=False)
        assert count.products == 2
        torch.testing.assert_close(dyw, dyw0, rtol=1e-13, atol=1e-13)


def test_the_loss_tangent_of_the_sana_student_is_unchanged_with_a_third_fewer_products():
    """directional_derivative (the loss's tangent, no grad) through the tiny Sana student with the JVP processor:
    the same primal and tangent as PyTorch's own rules, with every convolution run twice instead of three times and
    the products the tangent adds to the forward's down by more than 30%."""
    from test_jvp_attention import pairs, tiny_student

    from tbcm.models.jvp_attention import use_jvp_attention
    from tbcm.models.sana import SanaTrigFlowStudent

    (x_t, t, dxdt), cond = pairs(torch.float64)
    transformer = tiny_student(torch.float64)
    use_jvp_attention(transformer)
    model = SanaTrigFlowStudent(transformer)
    primals, tangents = ode_tangents(x_t, t, dxdt)
    fn = lambda x, tt: model(x, tt, cond)  # noqa: E731
    with torch.no_grad(), CountProducts() as fwd:
        fn(*primals)
    with torch.no_grad(), CountProducts() as stock:
        F0, dF0 = directional_derivative(fn, primals, tangents, skip_zeros=False)
    with torch.no_grad(), CountProducts() as skipped:
        F1, dF1 = directional_derivative(fn, primals, tangents)
    assert torch.equal(F1, F0)
    torch.testing.assert_close(dF1, dF0, rtol=1e-12, atol=1e-12)
    assert dF0.abs().max() > 1e-2
    assert stock.ops["convolution"] == 3 * fwd.ops["convolution"] and skipped.ops["convolution"] == 2 * fwd.ops["convolution"]
    assert stock.ops["zeros"] > 0 and skipped.ops["zeros"] == 0  # no weight's zero tangent materialised
    # the products the tangent adds to the primal's (the text's keys and values and the caption projection carry
    # no tangent, so they have none to save; the attention rule's and the linear attention's are all needed):
    # here 60 -> 37
    added = stock.products - fwd.products
    assert (stock.products - skipped.products) / added > 0.3


def test_with_gradient_it_refuses_and_the_loss_keeps_pytorchs_rules():
    layer = torch.nn.Linear(3, 2)
    x, dx = torch.randn(4, 3), torch.randn(4, 3)
    with skip_zero_products(), pytest.raises(RuntimeError, match="no_grad"):
        torch.func.jvp(layer, (x,), (dx,))
    # directional_derivative with grad enabled (nothing records under the mode then): PyTorch's rules, same tangent
    with CountProducts() as count:
        _, d = directional_derivative(lambda a, b: layer(a) * b, (x, torch.ones(4, 1)), (dx, torch.zeros(4, 1)))
    assert count.ops["mm"] + count.ops["addmm"] == 3
    with torch.no_grad():
        torch.testing.assert_close(d, F.linear(dx, layer.weight))



def test_under_bf16_autocast_the_primal_is_the_plain_forward():
    """With PyTorch's rules the JVP's primal is rounded differently from a plain forward under bf16 autocast (forward
    AD decomposes each linear layer); with the products skipped each layer is called as a forward calls it."""
    from test_jvp_attention import pairs, tiny_student

    from tbcm.models.jvp_attention import use_jvp_attention
    from tbcm.models.sana import SanaTrigFlowStudent

    (x_t, t, dxdt), cond = pairs()
    transformer = tiny_student()
    use_jvp_attention(transformer)
    model = SanaTrigFlowStudent(transformer)
    primals, tangents = ode_tangents(x_t, t, dxdt)
    fn = lambda x, tt: model(x, tt, cond)  # noqa: E731
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        plain = fn(*primals)
        F0, dF0 = directional_derivative(fn, primals, tangents, skip_zeros=False)
        F1, dF1 = directional_derivative(fn, primals, tangents)
    assert torch.equal(F1, plain) and not torch.equal(F0, plain)
    assert float((dF1 - dF0).norm() / dF0.norm()) < 1e-2  # bf16 rounding apart
