"""tbcm.zero_tangents: a compiled JVP runs each product of a constant twice, not three times, and the same maths."""

from __future__ import annotations

import collections
import re

import pytest
import torch
import torch._functorch.config
import torch._inductor.config
from torch._inductor.utils import run_and_get_code
from torch.nn.attention import SDPBackend, sdpa_kernel

from tbcm.regional_jvp import block_jvp
from tbcm.zero_tangents import ZERO_PRODUCTS, drop_zero_products, zero_products


def products(fn, *args, options=None):
    """(outputs, Counter of the matrix products and convolutions in inductor's generated code), compiled afresh
    (a cached graph would skip the pass, which then counts nothing)."""
    torch._dynamo.reset()
    with torch._inductor.config.patch(fx_graph_cache=False), torch._functorch.config.patch(enable_autograd_cache=False):
        out, code = run_and_get_code(torch.compile(fn, dynamic=False, options=options), *args)
    return out, collections.Counter(re.findall(r"extern_kernels\.(\w+)", "\n".join(code)))


@pytest.mark.parametrize("make", [lambda: torch.nn.Linear(16, 24), lambda: torch.nn.Linear(16, 24, bias=False),
                                  lambda: torch.nn.Conv2d(16, 24, 1), lambda: torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)])
def test_a_layer_jvp_runs_two_products_not_three(make):
    from tbcm.models.compiled_jvp import split_conv_bias

    torch.manual_seed(0)
    layer = make()
    split_conv_bias(layer)  # as the library compiles them (torch 2.11's inductor cannot lower the JVP otherwise)
    shape = (4, 16) if isinstance(layer, torch.nn.Linear) else (2, 16, 5, 5)
    x, dx = torch.randn(shape), torch.randn(shape)
    f = lambda x, dx: torch.func.jvp(layer, (x,), (dx,))  # noqa: E731
    eager = f(x, dx)
    with torch.no_grad():
        (y0, dy0), kept = products(f, x, dx)
        before = ZERO_PRODUCTS.dropped
        (y1, dy1), dropped = products(f, x, dx, options=drop_zero_products())
    _, fwd = products(layer, x)
    assert sum(kept.values()) == 3 * sum(fwd.values())  # x W, dx W and x 0: PyTorch's rule
    assert sum(dropped.values()) == 2 * sum(fwd.values()) and ZERO_PRODUCTS.dropped == before + 1
    for a, b in ((y1, eager[0]), (dy1, eager[1]), (dy0, eager[1])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_sana_block_jvp_runs_twice_the_forward_products_and_the_same_maths():
    from diffusers import SanaTransformer2DModel

    from tbcm.models.compiled_jvp import split_conv_bias
    from tbcm.models.sana import tiny_sana_config

    torch.manual_seed(0)
    tr = SanaTransformer2DModel(**tiny_sana_config(hidden=32, layers=1, heads=2, sample_size=8,
                                                   caption_channels=32)).eval()
    split_conv_bias(tr)
    block = tr.transformer_blocks[0]
    h, dh, text = torch.randn(2, 64, 32), torch.randn(2, 64, 32), torch.randn(2, 5, 32)
    ts, dts = torch.randn(2, 6 * 32), torch.randn(2, 6 * 32)
    args = (h, None, text, None, ts, 8, 8)
    f = lambda h, dh, ts, dts: block_jvp(block, (h, ts), (dh, dts), args, (0, 4))  # noqa: E731
    with sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        eager = f(h, dh, ts, dts)
        _, kept = products(f, h, dh, ts, dts)
        out, dropped = products(f, h, dh, ts, dts, options=drop_zero_products())
        _, fwd = products(lambda: block(*args))
    # self-attention, cross-attention (keys and values from the text: no tangent), Mix-FFN convolutions
    assert sum(kept.values()) > 2 * sum(fwd.values())
    assert sum(dropped.values()) == 2 * sum(fwd.values())
    for a, b in zip(out, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_only_products_of_zeros_are_dropped():
    from torch.fx.experimental.proxy_tensor import make_fx

    def f(x, w):
        z = torch.zeros(3, 3)
        return (x @ z.t().to(torch.float64).to(x.dtype), x @ w, x @ (z + 1), torch.full((3, 3), 0.5) @ x)

    x, w = torch.randn(3, 3), torch.randn(3, 3)
    gm = make_fx(f, tracing_mode="fake")(x, w)
    assert zero_products(gm.graph) == 1  # x @ 0 through a view and two casts; not x @ w, x @ (0 + 1), 0.5 @ x
    assert sum(n.target == torch.ops.aten.mm.default for n in gm.graph.nodes) == 3
    gm.recompile()
    for a, b in zip(gm(x, w), f(x, w)):
        torch.testing.assert_close(a, b)


def test_the_library_compiles_its_jvps_with_the_pass(monkeypatch):
    import tbcm.loss as loss
    import tbcm.regional_jvp as regional

    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.append(kw.get("options")) or fn)
    monkeypatch.setattr(regional, "_compiled", {})
    monkeypatch.setattr(loss, "_compiled", {})
    x, t = torch.randn(2, 3), torch.rand(2)
    regional.compiled_block_jvp(lambda h: h * 2, (x,), (x,), (x,), (0,))
    loss.compiled_directional_derivative(lambda x, t: x * t[:, None], (x, t), (x, t))
    assert seen == [drop_zero_products()] * 2
