"""What `torch.compile` of the loss's forward-mode JVP needs on a diffusers Sana transformer.

Inductor in torch 2.11 (the CUDA image of this project's lent GPUs) cannot lower the JVP of a
convolution that has a bias: the bias carries no tangent, AOTAutograd passes its zero tangent as a
broadcast (expanded) view, and the convolution lowering raises `NotImplementedError: ExpandView`.
A 1x1 `Conv2d(4, 8)` alone reproduces it on the CPU; without a bias it compiles (torch 2.14 compiles
both). Sana has biased convolutions in its patch embedding and in every Mix-FFN, so the compiled JVP
failed there as a whole. `split_conv_bias` makes those convolutions add their bias after a bias-free
convolution while being traced: the same function (the bias add is elementwise, as inside the
kernel's epilogue), and eager calls are untouched.
"""

from __future__ import annotations

import torch
from torch import nn


class BiasAfterConv2d(nn.Conv2d):
    """nn.Conv2d whose traced calls add the bias after a bias-free convolution (eager: unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None or not torch.compiler.is_compiling():
            return super().forward(x)
        return self._conv_forward(x, self.weight, None) + self.bias.view(1, -1, 1, 1)


def split_conv_bias(module: nn.Module) -> int:
    """Turn every biased nn.Conv2d inside `module` into a BiasAfterConv2d, in place (parameters, state
    dict keys and eager outputs unchanged). Returns how many; calling it twice is harmless."""
    n = 0
    for m in module.modules():
        if type(m) is nn.Conv2d and m.bias is not None:
            m.__class__ = BiasAfterConv2d
            n += 1
        elif isinstance(m, BiasAfterConv2d):
            n += 1
    return n
