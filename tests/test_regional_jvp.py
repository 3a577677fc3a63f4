"""tbcm.regional_jvp: the loss's JVP chained head -> blocks -> tail equals torch.func.jvp of the whole model
(float64 and float32), compiles one graph for all blocks, leaves the model as it was, and refuses bad specs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tbcm.loss as loss_module
import tbcm.regional_jvp as regional
from tbcm.loss import directional_derivative, ode_tangents
from tbcm.models.compiled_jvp import split_conv_bias
from tbcm.models.jvp_attention import use_jvp_attention
from tbcm.models.sana import SanaTrigFlowStudent
from tbcm.regional_jvp import Regions, block_jvp, regional_jvp
from test_jvp_attention import PROMPT_LEN, rel, tiny_student
from test_jvp_attention import pairs as attention_pairs


def student(dtype=torch.float32, layers=3):
    """test_jvp_attention's tiny student (a non-zero guidance MLP) with 3 blocks and the JVP processor."""
    model = tiny_student(dtype, layers)
    use_jvp_attention(model)
    return SanaTrigFlowStudent(model)


def pairs(dtype=torch.float32):
    (x_t, t, dxdt), cond = attention_pairs(dtype)  # padded prompts: the cross-attention bias matters
    return ode_tangents(x_t, t, dxdt), cond


def test_chained_jvp_equals_the_whole_models_float64():
    """Eager blocks, float64: the chain rule is exact, so it agrees with one torch.func.jvp to rounding; the
    primal is the model's forward."""
    F = student(torch.float64)
    (primals, tangents), cond = pairs(torch.float64)
    fn = lambda x, t: F(x, t, cond)  # noqa: E731
    blocks = F.jvp_regions.blocks
    with torch.no_grad():
        out, tangent = regional_jvp(fn, F.jvp_regions, primals, tangents, block_fn=block_jvp)
        ref_out, ref = directional_derivative(fn, primals, tangents)
        plain = fn(*primals)
    assert ref.abs().max() > 1e-2
    assert rel(tangent, ref) < 1e-12
    assert rel(out, ref_out) < 1e-13 and rel(out, plain) < 1e-13
    assert F.jvp_regions.blocks is blocks and len(blocks) == 3  # the block list is back in place


def test_dual_arguments_are_all_that_depend_on_x_and_t():
    """Dropping the timestep modulation from the dual arguments loses the tangent through t: the stated
    positions matter, and (0, 4) is what the whole model's JVP needs."""
    F = student(torch.float64)
    (primals, tangents), cond = pairs(torch.float64)
    fn = lambda x, t: F(x, t, cond)  # noqa: E731
    hidden_only = Regions(F.transformer, "transformer_blocks", dual=(0,))
    with torch.no_grad():
        _, ref = directional_derivative(fn, primals, tangents)
        _, wrong = regional_jvp(fn, hidden_only, primals, tangents, block_fn=block_jvp)
    assert rel(wrong, ref) > 1e-6  # against 1e-12 with both positions (a tiny model: its modulation acts weakly)


def test_compiled_blocks_are_one_graph_and_match_the_whole_jvp(monkeypatch):
    """Through the loss's compiled path (as distill.compile runs it): float32 tangent within 1e-4 of the eager
    math-backend JVP, and one compiled graph serves the three blocks, on a second call too."""
    monkeypatch.setattr(regional, "_compiled", {})
    torch._dynamo.reset()
    graphs = []

    def counting(gm, example_inputs, options=None):
        graphs.append(gm)
        from torch._inductor.compile_fx import compile_fx

        return compile_fx(gm, example_inputs, config_patches=options)

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, backend=counting, **kw))
    F = student()
    split_conv_bias(F.transformer)
    (primals, tangents), cond = pairs()
    fn = lambda x, t: F(x, t, cond)  # noqa: E731
    with torch.no_grad():
        ref_out, ref = directional_derivative(fn, primals, tangents)
        for _ in range(2):
            out, tangent = loss_module.compiled_directional_derivative(fn, primals, tangents, "jvp",
                                                                       regions=F.jvp_regions)
            assert rel(tangent, ref) < 1e-4 and rel(out, ref_out) < 1e-5
    assert len(graphs) == 1


def test_block_list_is_restored_when_the_model_raises():
    F = student(torch.float64)
    (primals, tangents), _ = pairs(torch.float64)
    blocks = F.jvp_regions.blocks
    bad_cond = {"prompt_embeds": torch.zeros(3, PROMPT_LEN, 5, dtype=torch.float64)}  # wrong width, no mask
    with torch.no_grad(), pytest.raises(Exception):
        regional_jvp(lambda x, t: F(x, t, bad_cond), F.jvp_regions, primals, tangents, block_fn=block_jvp)
    assert F.transformer.transformer_blocks is blocks


def test_regions_refuse_a_bad_spec():
    owner = nn.Module()
    owner.blocks = nn.ModuleList([nn.Identity()])
    owner.empty = nn.ModuleList()
    with pytest.raises(ValueError, match="non-empty nn.ModuleList"):
        Regions(owner, "missing", (0,))
    with pytest.raises(ValueError, match="non-empty nn.ModuleList"):
        Regions(owner, "empty", (0,))
    with pytest.raises(ValueError, match="starting with 0"):
        Regions(owner, "blocks", (1, 2))
    with pytest.raises(ValueError, match="starting with 0"):
        Regions(owner, "blocks", (0, 3, 3))


def test_dual_positions_must_name_tensor_arguments():
    F = student(torch.float64)
    (primals, tangents), cond = pairs(torch.float64)
    for dual in ((0, 7), (0, 5)):  # past the 7 arguments; the image height (an int)
        with torch.no_grad(), pytest.raises(ValueError, match="must name tensor arguments"):
            regional_jvp(lambda x, t: F(x, t, cond), Regions(F.transformer, "transformer_blocks", dual), primals,
                         tangents, block_fn=block_jvp)
    assert len(F.transformer.transformer_blocks) == 3


def test_a_model_that_skips_its_blocks_is_named():
    owner = nn.Module()
    owner.blocks = nn.ModuleList([nn.Linear(2, 2)])
    regions = Regions(owner, "blocks", (0,))
    x, t = torch.randn(3, 2), torch.rand(3)
    with pytest.raises(RuntimeError, match="never called Module.blocks"):
        regional_jvp(lambda a, b: a * b[:, None], regions, (x, t), (x, t), block_fn=block_jvp)
