"""The student's gradient pass under torch.compile (`distill.compile`).

The pass is the student's forward with its checkpointed backward, the largest piece of a step after the
rollout (docs/step-cost.md); compiled, its elementwise kernels fuse as the tangent's do. Shapes are static:
a run's pairs per step, prompt length and latent shape never change, and a second shape in the same process
(another run, a test) would otherwise be compiled with symbolic sizes, which inductor failed to lower for
this graph (torch 2.14 on the CPU: "cannot determine truth value of Relational"). A new shape compiles again.
"""

from __future__ import annotations

import torch


def compile_gradient_pass(student: torch.nn.Module) -> torch.nn.Module:
    """`student` (plain or wrapped for DDP) compiled for static shapes; its parameters and state dict are the
    module's own, and the JVP pass keeps calling the uncompiled module."""
    return torch.compile(student, dynamic=False)
