"""The frozen teacher's calls under torch.compile (`distill.compile`).

The rollout calls the teacher N times per rollout on a small batch (two CFG halves per prompt); at Sana
0.6B on an H100 a call of batch 2 is bound by launching its thousands of kernels from the CPU (28-40 ms
per sample-forward against 8.8 ms at batch 30; docs/step-cost.md). On a GPU the compiled teacher
therefore replays CUDA graphs (inductor's "reduce-overhead"), which launch a whole call at once. A
replay overwrites the graph's output buffer, so each call starts a new graph step and returns a copy:
the rollout keeps every step's dx/dt. Elsewhere (the CPU, or an offloaded teacher) it is plain
`torch.compile`, and given the teacher's transformer it compiles its blocks in place instead of the whole
call (regional compilation, `models.compiled_student.compile_sana_blocks`): at Sana-Sprint 0.6B on the CPU
16 s against 60 s for the whole call (docs/compile-time/cpu.md). CUDA graphs keep the whole call, one graph
launched at once.
"""

from __future__ import annotations

import torch

from .compiled_student import compile_sana_blocks

MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def teacher_compile_mode(device: torch.device, offloaded: bool = False) -> str:
    """CUDA graphs where there are any, unless the teacher is offloaded between rollouts (tbcm.offload): each
    rollout then finds its weights at new addresses, which a recorded graph would have to record again."""
    return "reduce-overhead" if device.type == "cuda" and not offloaded else "default"


class CompiledTeacher(torch.nn.Module):
    """A denoiser under torch.compile in `mode`; with "reduce-overhead" each call is one CUDA-graph step. In the
    default mode, given `transformer` (the SanaTransformer2DModel inside `inner`), only its blocks are compiled."""

    def __init__(self, inner, mode: str = "default", transformer: torch.nn.Module | None = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown compile mode {mode!r}; expected one of {MODES}")
        self.graphs = mode == "reduce-overhead"
        if transformer is not None and mode == "default":
            compile_sana_blocks(transformer)
            self.compiled = inner
        else:
            self.compiled = torch.compile(inner, mode=None if mode == "default" else mode)

    def forward(self, *args, **kw):
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
            return self.compiled(*args, **kw).clone()
        return self.compiled(*args, **kw)
