"""tbcm.models.compiled_jvp: biased convolutions add their bias after the convolution when traced (torch
2.11's inductor cannot compile the JVP of a biased convolution), eager calls are untouched; and the
attention rule's autocast switch asks torch nothing Dynamo cannot trace (torch 2.11 broke the compiled
JVP into eager pieces there, measured on an H100, docs/step-cost.md)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tbcm.models import jvp_attention
from tbcm.models.compiled_jvp import BiasAfterConv2d, split_conv_bias


def convs():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 8, 1), nn.SiLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                         nn.Conv2d(8, 4, 1, bias=False))


def test_split_conv_bias_keeps_parameters_and_eager_outputs():
    ref, model = convs(), convs()
    keys = list(model.state_dict())
    assert split_conv_bias(model) == 2 and split_conv_bias(model) == 2  # the biased two; idempotent
    assert [type(m) for m in model] == [BiasAfterConv2d, nn.SiLU, BiasAfterConv2d, nn.Conv2d]
    assert list(model.state_dict()) == keys
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(model(x), ref(x))


def test_traced_calls_convolve_without_bias_then_add_it(monkeypatch):
    ref, model = convs(), convs()
    split_conv_bias(model)
    seen = []
    original = nn.Conv2d._conv_forward

    def spy(self, x, weight, bias):
        seen.append(bias)
        return original(self, x, weight, bias)

    monkeypatch.setattr(nn.Conv2d, "_conv_forward", spy)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    x = torch.randn(2, 4, 5, 5)
    out = model(x)
    assert seen == [None, None, None]  # the bias-free third conv has no bias to move either
    torch.testing.assert_close(out, ref(x), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_compiled_jvp_of_biased_convs_is_one_graph_and_exact():
    """fullgraph compile of torch.func.jvp through the split convolutions equals eager forward-mode AD."""
    model = convs().eval()
    split_conv_bias(model)
    x, v = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    compiled = torch.compile(lambda a, b: torch.func.jvp(model, (a,), (b,)), fullgraph=True)
    with torch.no_grad():
        out, tangent = compiled(x, v)
        ref_out, ref = torch.func.jvp(model, (x,), (v,))
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tangent, ref, rtol=1e-5, atol=1e-6)


def test_no_autocast_asks_torch_nothing_for_cpu_and_cuda(monkeypatch):
    def untraceable(device_type):
        raise AssertionError(f"is_autocast_available({device_type!r}) called")

    monkeypatch.setattr(torch.amp, "is_autocast_available", untraceable)
    for device in ("cpu", "cuda"):
        with jvp_attention._no_autocast(device):
            assert not torch.is_autocast_enabled(device)
