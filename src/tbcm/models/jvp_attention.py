"""Forward-mode AD through Sana's attention with a fused primal: the tangent of the loss's JVP (Alg. 1).

The sCM/TBCM loss needs dF^- = jvp(F_theta^-, ...) (`tbcm.loss`). PyTorch's fused attention kernels
(flash, memory-efficient, cuDNN; CPU flash) have no forward-mode rule, so `loss.directional_derivative`
pins `scaled_dot_product_attention` to its math backend, which on an H100 at Sana-Sprint 0.6B makes the
JVP cost 4.1x a forward (method-notes §9). sCM (Lu & Song 2024, App. F) wrote a JVP kernel for
FlashAttention; the public TBCM code swaps in an explicit fp32 softmax attention. Here the attention
op is a `torch.autograd.Function` whose primal is the fused `F.scaled_dot_product_attention` and whose
tangent is the explicit forward-mode rule of softmax attention:

    O  = P V,   P = softmax(S),   S = s Q K^T + M        (s = 1 / sqrt(d) by default, M a constant mask)
    dS = s (dQ K^T + Q dK^T)
    dO = P dV + (P * dS) V - rowsum(P * dS) * O          (* elementwise, rowsum over keys, broadcast)

Why P is materialised. (P * dS) V = s sum_d dQ[:, d] (P (K[:, d] * V)) + ... couples every key's K
and V: as an attention it would need values of width d_k * d_v (72 * 72 per head here), which no fused
kernel takes, and a finite difference of two SDPA calls would not be exact. So the rule recomputes
S and P (one extra Q K^T) and uses plain matmuls. In Sana the only softmax attention is the
cross-attention from the N = H * W image tokens to the L = 300 text tokens, so P is [B, heads, N, L]:
at 1024 px (N = 1024), 16 heads, 15 pairs that is 74M entries, 0.29 GiB per fp32 copy, of which the
rule holds about three at once (S/P, dS, P * dS), transiently, one layer at a time. The rule runs
in float32 (float64 for float64 inputs) whatever the autocast dtype, as the public code's fp32
attention does: dO is a difference of two terms of similar size. Keys and values come from the text
embeddings, which carry no tangent in the loss's JVP (along (x_t, t)), so dK = dV = None there and
the rule does only the dQ terms (`set_materialize_grads(False)` passes absent tangents as None).

Sana's self-attention is linear attention (diffusers `SanaLinearAttnProcessor2_0`: ReLU kernels and
plain matmuls), which forward-mode AD handles as it is; `use_jvp_attention` leaves it in place and
checks that every processor is one of the two.

Under `torch.compile` the rule is not used: Dynamo does not call a Function's `jvp` inside
`torch.func.jvp` but traces its forward, where the fused kernel has no forward-mode rule, and the
whole JVP then falls back to eager. Traced calls therefore take the written-out attention
(`explicit_attention`, float32 softmax, what the math backend computes), which forward AD passes and
inductor fuses (one graph, checked with fullgraph=True in the tests). Eager calls keep the fused primal.

`torch.func.jvp` needs a Function in the `setup_context` style with a `jvp` staticmethod (no vmap rule
unless vmapped, which the loss does not do). Under reverse mode (the student's training forward,
grad enabled) the processor calls the stock fused SDPA, so training is exactly the stock model's; the
Function's own `backward` (a recomputation through SDPA) exists so the op is complete on its own.
"""

from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# Every backend, in torch's own priority order (set_priority=False): the primal takes the fastest one
# that supports the inputs, as the stock processor does. A caller's `sdpa_kernel(MATH)` pin exists only
# to make forward-mode AD possible; this op makes it possible itself, so it re-enables the fused kernels
# for its primal.
ALL_BACKENDS = (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                SDPBackend.MATH)


def _no_autocast(device_type: str):
    """Autocast off (the rule's float32 must not be cast back down); nothing to do where autocast does not exist.

    CPU and CUDA are answered without asking torch: Dynamo in torch 2.11 cannot trace
    `torch.amp.is_autocast_available` and broke the compiled JVP into eager pieces at every cross-attention
    (measured on an H100: the compiled tangent 10x the compiled forward, docs/step-cost.md)."""
    if device_type in ("cuda", "cpu") or torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _sdpa(q, k, v, attn_mask, scale, backends):
    with sdpa_kernel(list(backends)):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


def _scores(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """s Q K^T + M in q's dtype; a boolean mask keeps True entries (SDPA's convention)."""
    s = q @ k.transpose(-2, -1)
    s.mul_(scale)
    if attn_mask is None:
        return s
    if attn_mask.dtype == torch.bool:
        return s.masked_fill_(~attn_mask, float("-inf"))
    return s.add_(attn_mask.to(s.dtype))


def attention_tangent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    dq: torch.Tensor | None,
    dk: torch.Tensor | None,
    dv: torch.Tensor | None,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor | None:
    """dO of O = softmax(s Q K^T + M) V along (dQ, dK, dV); None tangents are zero. Returns None when all are.

    `out` is the primal O (e.g. from a fused kernel). Computed in float32 (float64 for float64 inputs)
    under disabled autocast and returned in `out`'s dtype.
    """
    if dq is None and dk is None and dv is None:
        return None
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    dtype = torch.promote_types(q.dtype, torch.float32)
    with _no_autocast(q.device.type):
        qf, kf, vf = q.to(dtype), k.to(dtype), v.to(dtype)
        p = _scores(qf, kf, attn_mask, scale).softmax(-1)
        result = None
        if dq is not None or dk is not None:
            ds = dq.to(dtype) @ kf.transpose(-2, -1) if dq is not None else None
            if dk is not None:
                term = qf @ dk.to(dtype).transpose(-2, -1)
                ds = term if ds is None else ds.add_(term)
            pds = ds.mul_(p).mul_(scale)  # P * dS, in place: one [.., N, L] buffer besides P
            result = pds @ vf
            result.sub_(pds.sum(-1, keepdim=True) * out.to(dtype))
            del ds, pds
        if dv is not None:
            term = p @ dv.to(dtype)
            result = term if result is None else result.add_(term)
    return result.to(out.dtype)


class AttentionWithJVP(torch.autograd.Function):
    """scaled_dot_product_attention with a fused primal and an explicit forward-mode rule.

    apply(q, k, v, attn_mask, scale, backends); the mask is a constant (it gets no tangent or gradient).
    """

    @staticmethod
    def forward(q, k, v, attn_mask, scale, backends):
        return _sdpa(q, k, v, attn_mask, scale, backends)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, attn_mask, scale, backends = inputs
        ctx.save_for_forward(q, k, v, output)
        ctx.save_for_backward(q, k, v)
        ctx.attn_mask, ctx.scale, ctx.backends = attn_mask, scale, backends
        ctx.set_materialize_grads(False)  # absent tangents arrive as None, not as zero tensors

    @staticmethod
    def jvp(ctx, dq, dk, dv, dmask, _dscale, _dbackends):
        if dmask is not None:
            raise ValueError("AttentionWithJVP: the attention mask must be a constant (it received a tangent)")
        q, k, v, out = ctx.saved_tensors
        return attention_tangent(q, k, v, out, dq, dk, dv, ctx.attn_mask, ctx.scale)

    @staticmethod
    def backward(ctx, grad_out):
        if grad_out is None:
            return None, None, None, None, None, None
        q, k, v = ctx.saved_tensors
        inputs = [x.detach().requires_grad_(need) for x, need in zip((q, k, v), ctx.needs_input_grad[:3])]
        with torch.enable_grad():
            out = _sdpa(*inputs, ctx.attn_mask, ctx.scale, ctx.backends)
        wanted = [x for x in inputs if x.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad_out)) if wanted else iter(())
        return (*(next(grads) if x.requires_grad else None for x in inputs), None, None, None)


def attention_with_jvp(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
    backends: Sequence[SDPBackend] = ALL_BACKENDS,
) -> torch.Tensor:
    """Drop-in for F.scaled_dot_product_attention (no dropout, not causal) that forward-mode AD passes.

    When reverse mode needs it (grad enabled and an input requires grad) this is exactly the stock call
    (`backends` unused, any outer `sdpa_kernel` respected), so a training forward/backward is the stock
    one; otherwise (no_grad, as in the loss's JVP of theta^-) it is `AttentionWithJVP` on `backends`.
    """
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    if torch.compiler.is_compiling():
        # Dynamo does not call a Function's jvp under torch.func.jvp: it traces forward through the
        # functorch wrappers, reaches the fused kernel and falls back to eager for the whole JVP. Traced,
        # the op is therefore written out (float32 softmax, as in the rule), which forward AD passes and
        # inductor fuses; eager calls keep the fused primal.
        return explicit_attention(q, k, v, attn_mask, scale)
    return AttentionWithJVP.apply(q, k, v, attn_mask, scale, tuple(backends))


def explicit_attention(q, k, v, attn_mask=None, scale=None) -> torch.Tensor:
    """softmax(s Q K^T + M) V written out in float32 (float64 for float64), returned in q's dtype."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    dtype = torch.promote_types(q.dtype, torch.float32)
    with _no_autocast(q.device.type):
        p = _scores(q.to(dtype), k.to(dtype), attn_mask, scale).softmax(-1)
        return (p @ v.to(dtype)).to(q.dtype)


class SanaJVPAttnProcessor:
    """diffusers attention processor: SanaAttnProcessor2_0 (Sana's cross-attention) with its SDPA call
    replaced by `attention_with_jvp`. Same projections, norms, mask handling and output as the stock one."""

    def __init__(self, backends: Sequence[SDPBackend] = ALL_BACKENDS):
        self.backends = tuple(backends)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        batch_size = (hidden_states if encoder_hidden_states is None else encoder_hidden_states).shape[0]
        sequence_length = (hidden_states if encoder_hidden_states is None else encoder_hidden_states).shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        hidden_states = attention_with_jvp(query, key, value, attention_mask, backends=self.backends)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        return hidden_states / attn.rescale_output_factor


def use_jvp_attention(transformer, backends: Sequence[SDPBackend] = ALL_BACKENDS) -> int:
    """Install `SanaJVPAttnProcessor` on every softmax attention of a diffusers Sana transformer.

    Linear-attention processors stay (forward-mode AD passes them). Any other processor stops here,
    named, since nothing is known about its forward-mode path. Returns the number of processors
    replaced (one per block's cross-attention); installing twice is harmless.
    """
    from diffusers.models.attention_processor import SanaLinearAttnProcessor2_0
    from diffusers.models.transformers.sana_transformer import SanaAttnProcessor2_0

    processors = transformer.attn_processors
    if not processors:
        raise ValueError(f"{type(transformer).__name__} has no attention processors to replace")
    new, replaced = {}, 0
    for name, proc in processors.items():
        if isinstance(proc, (SanaAttnProcessor2_0, SanaJVPAttnProcessor)):
            new[name] = SanaJVPAttnProcessor(backends)
            replaced += 1
        elif isinstance(proc, SanaLinearAttnProcessor2_0):
            new[name] = proc
        else:
            raise ValueError(
                f"attention processor {name} is {type(proc).__name__}, whose forward-mode AD path is unknown; "
                "use_jvp_attention handles SanaAttnProcessor2_0 (softmax) and SanaLinearAttnProcessor2_0 (linear)"
            )
    transformer.set_attn_processor(new)
    return replaced


def uses_jvp_attention(transformer) -> bool:
    """True when every softmax attention of the transformer runs through SanaJVPAttnProcessor."""
    from diffusers.models.transformers.sana_transformer import SanaAttnProcessor2_0

    procs = transformer.attn_processors.values()
    return any(isinstance(p, SanaJVPAttnProcessor) for p in procs) and not any(
        isinstance(p, SanaAttnProcessor2_0) for p in procs)


def use_stock_attention(transformer) -> int:
    """Undo `use_jvp_attention`: diffusers' SanaAttnProcessor2_0 back on every softmax attention.
    Returns the number of processors restored."""
    from diffusers.models.transformers.sana_transformer import SanaAttnProcessor2_0

    new, restored = {}, 0
    for name, proc in transformer.attn_processors.items():
        if isinstance(proc, SanaJVPAttnProcessor):
            proc, restored = SanaAttnProcessor2_0(), restored + 1
        new[name] = proc
    transformer.set_attn_processor(new)
    return restored
