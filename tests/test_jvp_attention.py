"""The JVP attention (models/jvp_attention.py) against torch.func.jvp on the math backend and against
central finite differences, alone and inside a tiny Sana-Sprint student; and its primal against the stock.

What must hold for the loss to use it: the tangent equals forward-mode AD through the math backend (1e-4
relative in float32), is the true derivative (float64 central differences), the primal is bit-equal to
the stock processor's, and the fused kernel that makes the stock op fail under forward AD works here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import SanaTransformer2DModel
from diffusers.models.attention_processor import SanaLinearAttnProcessor2_0
from diffusers.models.transformers.sana_transformer import SanaAttnProcessor2_0
from torch.nn.attention import SDPBackend, sdpa_kernel

from tbcm.loss import directional_derivative, ode_tangents
from tbcm.models.jvp_attention import (ALL_BACKENDS, AttentionWithJVP, SanaJVPAttnProcessor, attention_tangent,
                                       attention_with_jvp, use_jvp_attention, uses_jvp_attention)
from tbcm.models.sana import SanaTrigFlowStudent, student_from_teacher, tiny_sana_config

B, H, LQ, LK, D = 2, 3, 6, 5, 8


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def qkv(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, H, LQ, D), (B, H, LK, D), (B, H, LK, D)]
    primals = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]
    tangents = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]
    return primals, tangents


def masks(dtype=torch.float32):
    bias = torch.zeros(B, 1, 1, LK, dtype=dtype)
    bias[0, ..., -2:] = -10000.0  # diffusers' Sana bias for padded text tokens
    keep = torch.ones(B, H, LQ, LK, dtype=torch.bool)
    keep[1, :, :, 1] = False
    return {"none": None, "bias": bias, "bool": keep}


@pytest.mark.parametrize("mask_kind", ["none", "bias", "bool"])
@pytest.mark.parametrize("which", ["qkv", "q"])
def test_op_matches_math_backend_forward_ad(mask_kind, which):
    (q, k, v), (dq, dk, dv) = qkv()
    mask = masks()[mask_kind]
    n = 3 if which == "qkv" else 1  # "q": only the query moves, as in Sana's cross-attention under the loss's JVP

    def ours(*x):
        return attention_with_jvp(*x, *(k, v)[n - 1:], attn_mask=mask)

    def stock(*x):
        return F.scaled_dot_product_attention(*x, *(k, v)[n - 1:], attn_mask=mask)

    with torch.no_grad():
        out, tangent = torch.func.jvp(ours, (q, k, v)[:n], (dq, dk, dv)[:n])
        with sdpa_kernel(SDPBackend.MATH):
            ref_out, ref_tangent = torch.func.jvp(stock, (q, k, v)[:n], (dq, dk, dv)[:n])
        plain = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(out, plain)  # the primal is the stock call, untouched
    assert rel(out, ref_out) < 1e-5
    assert ref_tangent.abs().max() > 1e-2 and rel(tangent, ref_tangent) < 1e-4


@pytest.mark.parametrize("mask_kind", ["none", "bias", "bool"])
def test_op_tangent_matches_central_difference_float64(mask_kind):
    (q, k, v), (dq, dk, dv) = qkv(torch.float64)
    mask = masks(torch.float64)[mask_kind]
    eps = 1e-6

    def f(e):
        return F.scaled_dot_product_attention(q + e * dq, k + e * dk, v + e * dv, attn_mask=mask)

    fd = (f(eps) - f(-eps)) / (2 * eps)
    with torch.no_grad():
        _, tangent = torch.func.jvp(lambda *x: attention_with_jvp(*x, attn_mask=mask), (q, k, v), (dq, dk, dv))
    assert rel(tangent, fd) < 1e-7


def test_forward_ad_api_and_none_tangents():
    """torch.autograd.forward_ad passes the same rule; inputs without a tangent cost nothing."""
    import torch.autograd.forward_ad as fwAD

    (q, k, v), (dq, _, _) = qkv()
    with torch.no_grad(), fwAD.dual_level():
        out = attention_with_jvp(fwAD.make_dual(q, dq), k, v)
        tangent = fwAD.unpack_dual(out).tangent
    out_ref = F.scaled_dot_product_attention(q, k, v)
    assert torch.equal(fwAD.unpack_dual(out).primal, out_ref)
    assert rel(tangent, attention_tangent(q, k, v, out_ref, dq, None, None)) < 1e-6
    assert attention_tangent(q, k, v, out_ref, None, None, None) is None


def test_fused_kernel_passes_forward_ad_through_the_op():
    """The point of the op: a fused kernel (CPU flash here) has no forward-mode rule, ours supplies one."""
    (q, k, v), (dq, _, _) = qkv()
    with torch.no_grad():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION), pytest.raises(RuntimeError, match="forward AD"):
            torch.func.jvp(lambda x: F.scaled_dot_product_attention(x, k, v), (q,), (dq,))
        out, tangent = torch.func.jvp(
            lambda x: attention_with_jvp(x, k, v, backends=[SDPBackend.FLASH_ATTENTION]), (q,), (dq,))
        with sdpa_kernel(SDPBackend.MATH):
            _, ref = torch.func.jvp(lambda x: F.scaled_dot_product_attention(x, k, v), (q,), (dq,))
    assert rel(tangent, ref) < 1e-4


@pytest.mark.slow
def test_compiled_jvp_is_one_graph_and_matches_math_backend():
    """Under torch.compile the op is traced as written-out attention: one graph (no eager fallback)
    whose tangent and primal match the math backend's forward-mode AD (about 20 s of compiling on CPU)."""
    (q, k, v), (dq, _, _) = qkv()
    mask = masks()["bias"]
    compiled = torch.compile(lambda x, d: torch.func.jvp(lambda y: attention_with_jvp(y, k, v, mask), (x,), (d,)),
                             fullgraph=True)
    with torch.no_grad():
        out, tangent = compiled(q, dq)
        with sdpa_kernel(SDPBackend.MATH):
            ref_out, ref = torch.func.jvp(lambda y: F.scaled_dot_product_attention(y, k, v, attn_mask=mask), (q,), (dq,))
    assert rel(out, ref_out) < 1e-5 and rel(tangent, ref) < 1e-4


def test_backward_is_sdpa_gradient():
    (q, k, v), _ = qkv(torch.float64)
    mask = masks(torch.float64)["bias"]
    inputs = [x.clone().requires_grad_() for x in (q, k, v)]
    assert torch.autograd.gradcheck(lambda *x: AttentionWithJVP.apply(*x, mask, None, ALL_BACKENDS), inputs)


def test_autocast_tangent_is_computed_in_float32():
    """Under bf16 autocast the primal is the bf16 SDPA; the rule still runs in float32 (returned in bf16)."""
    (q, k, v), (dq, _, _) = qkv()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, tangent = torch.func.jvp(lambda x: attention_with_jvp(x.bfloat16(), k.bfloat16(), v.bfloat16()), (q,), (dq,))
    assert out.dtype == tangent.dtype == torch.bfloat16
    ref = attention_tangent(q.bfloat16(), k.bfloat16(), v.bfloat16(), out, dq.bfloat16(), None, None)
    assert torch.equal(tangent, ref)
    with torch.no_grad():
        _, exact = torch.func.jvp(lambda x: attention_with_jvp(x, k, v), (q,), (dq,))
    assert rel(tangent, exact) < 3e-2  # bf16 inputs, fp32 rule


# --- inside a tiny Sana-Sprint student ------------------------------------------------------------

PROMPT_LEN, CH, SIDE = 7, 8, 4


def tiny_student(dtype=torch.float32, layers=2):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teacher = SanaTransformer2DModel(**tiny_sana_config(hidden=32, layers=layers, heads=2, in_channels=CH,
                                                            sample_size=SIDE, caption_channels=16)).eval()
    student = student_from_teacher(teacher).eval().to(dtype)
    with torch.no_grad():  # a non-zero guidance MLP, so every input matters
        lin2 = student.time_embed.guidance_embedder.linear_2
        lin2.weight.copy_(0.05 * torch.randn(lin2.weight.shape, generator=torch.Generator().manual_seed(1)))
    return student.requires_grad_(False)


def pairs(dtype=torch.float32, n=3):
    g = torch.Generator().manual_seed(2)
    x_t = 0.5 * torch.randn(n, CH, SIDE, SIDE, generator=g, dtype=torch.float64)
    t = torch.tensor([0.3, 0.9, 1.4][:n], dtype=torch.float64)
    dxdt = 0.5 * torch.randn(n, CH, SIDE, SIDE, generator=g, dtype=torch.float64)
    mask = torch.ones(n, PROMPT_LEN, dtype=torch.long)
    mask[0, 3:] = 0  # padded prompt: the cross-attention bias matters
    mask[1, 5:] = 0
    cond = {"prompt_embeds": torch.randn(n, PROMPT_LEN, 16, generator=g, dtype=torch.float64).to(dtype),
            "prompt_attention_mask": mask, "guidance": torch.tensor([4.0, 4.5, 5.0][:n], dtype=dtype)}
    return (x_t.to(dtype), t.to(dtype), dxdt.to(dtype)), cond


def test_use_jvp_attention_replaces_softmax_attention_only():
    model = tiny_student()
    before = model.attn_processors
    assert sum(isinstance(p, SanaAttnProcessor2_0) for p in before.values()) == 2  # one cross-attention per block
    assert not uses_jvp_attention(model)
    assert use_jvp_attention(model) == 2 and use_jvp_attention(model) == 2  # idempotent
    after = model.attn_processors
    assert uses_jvp_attention(model)
    for name, proc in after.items():
        expected = SanaLinearAttnProcessor2_0 if ".attn1." in name else SanaJVPAttnProcessor
        assert isinstance(proc, expected), name


def test_use_jvp_attention_refuses_an_unknown_processor():
    from diffusers.models.attention_processor import AttnProcessor

    model = tiny_student()
    model.transformer_blocks[1].attn2.set_processor(AttnProcessor())
    with pytest.raises(ValueError, match=r"transformer_blocks\.1\.attn2.*AttnProcessor"):
        use_jvp_attention(model)


def test_student_jvp_matches_math_backend_and_primal_is_stock():
    """The loss's tangent (directional_derivative, 'jvp') through the whole student: with the processor it
    equals the stock model's forward-mode AD on the math backend; its primal equals the stock forward."""
    (x_t, t, dxdt), cond = pairs()
    stock, ours = tiny_student(), tiny_student()
    use_jvp_attention(ours)
    primals, tangents = ode_tangents(x_t, t, dxdt)
    with torch.no_grad():
        F_ref, dF_ref = directional_derivative(lambda x, tt: SanaTrigFlowStudent(stock)(x, tt, cond), primals, tangents)
        F_ours, dF_ours = torch.func.jvp(lambda x, tt: SanaTrigFlowStudent(ours)(x, tt, cond), primals, tangents)
        F_lib, dF_lib = directional_derivative(lambda x, tt: SanaTrigFlowStudent(ours)(x, tt, cond), primals, tangents)
        plain = SanaTrigFlowStudent(stock)(*primals, cond)
    assert torch.equal(F_ours, plain)  # no backend pinned: the processor's primal is the stock forward's
    assert dF_ref.abs().max() > 1e-2
    assert rel(dF_ours, dF_ref) < 1e-4
    # under the loss's MATH pin too: the processor re-enables the fused kernels for its primal
    assert rel(dF_lib, dF_ref) < 1e-4 and torch.equal(F_lib, plain)
    # and a fused-only pin, under which the stock model cannot be differentiated forward at all
    with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        with pytest.raises(RuntimeError, match="forward AD"):
            torch.func.jvp(lambda x, tt: SanaTrigFlowStudent(stock)(x, tt, cond), primals, tangents)
        _, dF_flash = torch.func.jvp(lambda x, tt: SanaTrigFlowStudent(ours)(x, tt, cond), primals, tangents)
    assert torch.equal(dF_flash, dF_ours)


def test_cross_attention_module_jvp_float64():
    """A Sana cross-attention layer (projections, RMS qk-norm, padded-prompt bias) with the processor, in
    float64: its JVP along the image tokens equals the stock layer's on the math backend, and a central
    difference. diffusers' RMSNorm computes its variance in float32, so the difference is taken at
    h = 1e-3 (error O(h^2) + O(eps_fp32 / h), measured 2e-5); the op alone is checked at 1e-7 above."""
    stock, ours = tiny_student(torch.float64), tiny_student(torch.float64)
    use_jvp_attention(ours)
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, SIDE * SIDE, 32, generator=g, dtype=torch.float64)
    d_hidden = torch.randn(hidden.shape, generator=g, dtype=torch.float64)
    text = torch.randn(2, PROMPT_LEN, 32, generator=g, dtype=torch.float64)
    bias = torch.zeros(2, 1, PROMPT_LEN, dtype=torch.float64)
    bias[0, :, 4:] = -10000.0

    def layer(model):
        return lambda h: model.transformer_blocks[0].attn2(h, encoder_hidden_states=text, attention_mask=bias)

    with torch.no_grad():
        _, jvp = torch.func.jvp(layer(ours), (hidden,), (d_hidden,))
        with sdpa_kernel(SDPBackend.MATH):
            _, ref = torch.func.jvp(layer(stock), (hidden,), (d_hidden,))
        h = 1e-3
        fd = (layer(stock)(hidden + h * d_hidden) - layer(stock)(hidden - h * d_hidden)) / (2 * h)
    assert rel(jvp, ref) < 1e-12
    assert rel(jvp, fd) < 1e-4


def test_student_jvp_matches_central_difference_and_reverse_mode():
    """The whole student in float64 (diffusers computes the linear self-attention and the timestep
    embedding in float32 inside, which bounds a finite difference at ~1e-5; see test_sana_adapter) and
    against the reverse-mode directional derivative, which shares none of the forward-mode code."""
    (x_t, t, dxdt), cond = pairs(torch.float64)
    model = tiny_student(torch.float64)
    use_jvp_attention(model)
    fn = lambda x, tt: SanaTrigFlowStudent(model)(x, tt, cond)  # noqa: E731
    primals, tangents = ode_tangents(x_t, t, dxdt)
    with torch.no_grad():
        _, jvp = torch.func.jvp(fn, primals, tangents)
        _, fd = directional_derivative(fn, primals, tangents, "finite_difference", fd_eps=1e-3)
    assert rel(jvp, fd) < 1e-4
    with sdpa_kernel(SDPBackend.MATH):
        _, reverse = torch.autograd.functional.jvp(fn, primals, tangents)
    assert rel(jvp, reverse) < 1e-6


def test_training_forward_backward_is_the_stock_one():
    """With grad enabled the processor calls the stock SDPA: same loss gradient as the stock model."""
    (x_t, t, _), cond = pairs()
    stock, ours = tiny_student().requires_grad_(True), tiny_student().requires_grad_(True)
    use_jvp_attention(ours)
    grads = []
    for model in (stock, ours):
        out = SanaTrigFlowStudent(model)(x_t / 0.5, t, cond)
        out.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.equal(grads[0], grads[1])
