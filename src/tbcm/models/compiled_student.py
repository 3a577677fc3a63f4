"""The student's gradient pass under torch.compile (`distill.compile`), one block at a time.

The pass is the student's forward with its checkpointed backward, the largest piece of a step after the
rollout (docs/step-cost.md); compiled, its elementwise kernels fuse as the tangent's do. Its 28 blocks are
compiled in place (regional compilation, as diffusers' `compile_repeated_blocks`: one graph serves every
block): compiling the whole student took 173 s on the CPU at Sana-Sprint 0.6B (28 blocks, 1024 tokens, 2
threads, bf16, checkpointed), the blocks 48 s, running 8% slower there (benchmarks/compile_time.py,
docs/compile-time/cpu.md); the embeddings and the output norm around them stay eager. In place, the
blocks run compiled however the student is called (plain, through DDP, under checkpointing, inside the
loss's compiled block JVP, where Dynamo inlines them), and its parameters and state dict are unchanged.

Shapes are static: a run's pairs per step, prompt length and latent shape never change, and a second shape in
the same process (another run, a test) would otherwise be compiled with symbolic sizes, which inductor failed
to lower for the whole student (torch 2.14 on the CPU: "cannot determine truth value of Relational"). A new
shape compiles again (up to torch._dynamo.config.recompile_limit shapes per process, 8 by default).
"""

from __future__ import annotations

from ..regional_jvp import compile_blocks


def _contiguous(module, inputs, output):
    return output.contiguous()


def compile_sana_blocks(transformer) -> int:
    """Compile a SanaTransformer2DModel's blocks in place (the embeddings and output norm stay eager); returns how
    many. Its patch embedding returns a transposed view (flatten, then transpose) while every block returns a
    contiguous tensor, so the first block would compile a second graph for its input's strides; a forward hook
    makes the embedding's output contiguous (one copy of the hidden states per call; the values are the same).
    Under bf16 autocast an fp32 student's first block still compiles a second graph, for its input's dtype (the
    embedding's bf16 against the blocks' fp32 outputs): upcasting it would change that block's rounding."""
    if not getattr(transformer.patch_embed, "_tbcm_contiguous", False):
        transformer.patch_embed.register_forward_hook(_contiguous)
        transformer.patch_embed._tbcm_contiguous = True
    return compile_blocks(transformer.transformer_blocks)


def compile_gradient_pass(student) -> int:
    """Compile a Sana student's (models.sana.SanaTrigFlowStudent's) transformer blocks in place."""
    return compile_sana_blocks(student.transformer)
