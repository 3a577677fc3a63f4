"""The loss's JVP (Alg. 1, step 1) with every repeated block compiled once: regional compilation.

Why. `torch.compile` of the whole JVP call (`loss.compiled_directional_derivative`) traces all blocks into
one graph, and its compile time grows faster than the depth: at Sana-Sprint 0.6B's width on the CPU
(2 threads, bf16 autocast, a few tokens) 45 s for 2 blocks, 49 s for 8, 181 s for the real model's 28; on an
H100 192 s (method-notes §9). The blocks share their code and shapes, so one compiled block JVP can serve
all of them, which is what regional compilation does for forward passes (PyTorch's recipe; diffusers'
`compile_repeated_blocks`): block by block the JVP compiled in 38 s against 160 s for the whole call, and
ran within 2% of it (CPU, 1024 tokens; benchmarks/compile_time.py, docs/compile-time/cpu.md). That recipe compiles each block module and calls the model as usual, which
does not work under forward-mode AD: Dynamo does not compile a function called inside `torch.func.jvp`, it
runs eagerly. So the JVP is taken in parts, chained (the chain rule):

    head:    (x, t) -> the first block's inputs: the model's own forward with its block list replaced by
             a stand-in that records its arguments (the rest of the forward runs on and is discarded);
    blocks:  (h, dh) <- jvp(block_i) at (h, dh) and the other dual arguments, one compiled function for
             all blocks (with `inline_inbuilt_nn_modules`, torch's default, a block's parameters are
             inputs of the graph, not constants, so the graph does not depend on which block it is);
    tail:    (x, t, h_L) -> F: the model's forward again, the block list replaced by a stand-in that
             returns h_L whatever it is given; the tangent of the ignored path does not reach the output.

Head and tail run eagerly: a patch embedding, the time and guidance embeddings, the caption projection and
the output norm, a few dozen kernels against the blocks' thousands; the tail recomputes the head's part.
Which block arguments carry a tangent is stated by the model (`Regions.dual`); the others (the text
embeddings, masks, sizes) must not depend on (x, t), which the tests check against `torch.func.jvp` of the
whole model. Swapping the block list is undone before returning, also on error: the module is the same
object afterwards, so a compiled gradient pass that guards it does not recompile (tested).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .zero_tangents import drop_zero_products


@dataclass(frozen=True)
class Regions:
    """Where a model's repeated blocks are: `owner.<attr>` is an nn.ModuleList whose members are called as
    block(h, *args) -> h; `dual` lists the positions of the call's arguments that carry a tangent (h is 0)."""

    owner: nn.Module
    attr: str
    dual: tuple[int, ...]

    def __post_init__(self):
        blocks = getattr(self.owner, self.attr, None)
        if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
            raise ValueError(f"{type(self.owner).__name__}.{self.attr} must be a non-empty nn.ModuleList of blocks")
        if not self.dual or self.dual[0] != 0 or list(self.dual) != sorted(set(self.dual)):
            raise ValueError("dual must be increasing argument positions starting with 0 (the hidden states), "
                             f"got {self.dual}")

    @property
    def blocks(self) -> nn.ModuleList:
        return getattr(self.owner, self.attr)


class _Tap(nn.Module):
    """Stands in for the block list in the head: keeps the first block's arguments."""

    def __init__(self):
        super().__init__()
        self.args = None

    def forward(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"regional JVP expects blocks called with positional arguments only, got {sorted(kwargs)}")
        self.args = args
        return args[0]


class _Inject(nn.Module):
    """Stands in for the block list in the tail: returns the last block's output, whatever it is given."""

    def __init__(self, h: torch.Tensor):
        super().__init__()
        self.h = h

    def forward(self, *args, **kwargs):
        return self.h


@contextlib.contextmanager
def _blocks_replaced(regions: Regions, stand_in: nn.Module):
    blocks = regions.blocks
    setattr(regions.owner, regions.attr, nn.ModuleList([stand_in]))
    try:
        yield
    finally:
        setattr(regions.owner, regions.attr, blocks)


def _with_dual(args: tuple, dual: tuple, positions: tuple[int, ...]) -> tuple:
    out = list(args)
    for i, a in zip(positions, dual):
        out[i] = a
    return tuple(out)


def block_jvp(block: nn.Module, primals: tuple, tangents: tuple, args: tuple, positions: tuple[int, ...]):
    """jvp of block(*args) in the arguments at `positions` (primals, tangents); the others are constants.
    Returns (h, dh)."""
    return torch.func.jvp(lambda *dual: block(*_with_dual(args, dual, positions)), primals, tangents)


def compile_blocks(blocks: nn.ModuleList) -> int:
    """Regional compilation of forward passes: `block.compile(dynamic=False)` for each block, in place (its
    parameters and state dict unchanged; calling it again is harmless). Returns how many blocks."""
    for block in blocks:
        if getattr(block, "_compiled_call_impl", None) is None:
            block.compile(dynamic=False)
    return len(blocks)


_compiled = {}


def compiled_block_jvp(*args, **kwargs):
    """`block_jvp` under torch.compile with static shapes: one graph for every block of a model, without the
    products of zero tangents (`tbcm.zero_tangents`)."""
    if "fn" not in _compiled:
        _compiled["fn"] = torch.compile(block_jvp, dynamic=False, options=drop_zero_products())
    return _compiled["fn"](*args, **kwargs)


def regional_jvp(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    regions: Regions,
    primals: tuple[torch.Tensor, torch.Tensor],
    tangents: tuple[torch.Tensor, torch.Tensor],
    block_fn: Callable = compiled_block_jvp,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fn(primals), its directional derivative along tangents), fn calling the model that `regions` names,
    taken head -> blocks -> tail as in the module docstring; `block_fn` is `block_jvp` to run it eagerly."""
    blocks, positions = regions.blocks, regions.dual
    consts = {}  # the block arguments that are not tensors (None, sizes): kept as they are

    def head(*xt):
        tap = _Tap()
        with _blocks_replaced(regions, tap):
            fn(*xt)
        if tap.args is None:
            raise RuntimeError(f"the model never called {type(regions.owner).__name__}.{regions.attr}")
        if positions[-1] >= len(tap.args) or not all(isinstance(tap.args[i], torch.Tensor) for i in positions):
            raise ValueError(f"dual positions {positions} must name tensor arguments of the blocks' call, which has "
                             f"{len(tap.args)} arguments")
        consts.update((i, a) for i, a in enumerate(tap.args) if not isinstance(a, torch.Tensor))
        dual = tuple(tap.args[i] for i in positions)
        # torch.func.jvp returns tensors only; the constant tensors leave as aux (primal values, no tangent)
        aux = {i: a for i, a in enumerate(tap.args) if i not in positions and isinstance(a, torch.Tensor)}
        return dual, aux

    dual, d_dual, aux = torch.func.jvp(head, primals, tangents, has_aux=True)
    rest = tuple(aux.get(i, consts.get(i)) for i in range(len(aux) + len(consts) + len(positions)))
    # The head's hidden states may be a transposed view (Sana's patch embedding flattens, then transposes) while
    # the blocks return contiguous ones: the first block gets the same layout (a copy), or it would compile a
    # second graph for its strides. Its dtype is left as the model makes it: under bf16 autocast an fp32
    # student's embedding is bf16 and its blocks' outputs fp32 (the fp32 modulation promotes them), which costs
    # the first block a second graph; upcasting its input would save that compile but change its rounding
    # (1.6e-3 relative on the tiny student's bf16 tangent), and the compiled run should be the eager one.
    h, dh = dual[0].contiguous(), d_dual[0].contiguous()
    for block in blocks:
        h, dh = block_fn(block, (h, *dual[1:]), (dh, *d_dual[1:]), rest, positions)

    def tail(x, t, h_last):
        with _blocks_replaced(regions, _Inject(h_last)):
            return fn(x, t)

    return torch.func.jvp(tail, (*primals, h), (*tangents, dh))
