"""The one interface between the method and a network: a TrigFlow denoiser F(x_t / sigma_d, t, cond).

A *condition* is a dict of tensors whose first dimension is the batch (text embeddings, their
attention mask, a guidance scale, a class label...). Keeping it a flat dict lets the method repeat
one prompt's encoding for all of its trajectory pairs (the amortisation of §4.1) and stack the
conditional and unconditional halves of classifier-free guidance without knowing the backbone.

`FlowMatchingAdapter` turns any flow-matching velocity model v(x_FM, t_FM, cond) into this
interface through Eq. 5-7 (Sana-Sprint's trick, which lets an FM teacher be distilled in TrigFlow).
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol

import torch
from torch import nn

from . import trigflow

Condition = Mapping[str, torch.Tensor]


class Denoiser(Protocol):
    def __call__(self, x_scaled: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        """x_scaled = x_t / sigma_d with shape [B, ...]; t in (0, pi/2] with shape [B]."""
        ...


VelocityFn = Callable[[torch.Tensor, torch.Tensor, Condition], torch.Tensor]


class FlowMatchingAdapter(nn.Module):
    """F(x_t / sigma_d, t, y) from a flow-matching velocity model v(x_FM, t_FM, y), Eq. 5-7.

    `velocity` receives t_FM in [0, 1]; a backbone with another time convention (Sana's 0-1000)
    converts inside its own velocity function. If `velocity` is an nn.Module it is registered, so
    the adapter's parameters are the model's.
    """

    def __init__(self, velocity: VelocityFn):
        super().__init__()
        self.velocity = velocity

    def forward(self, x_scaled: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        t_fm = trigflow.fm_time(t)
        x_fm = trigflow.trig_to_fm_input(x_scaled, t)
        v = self.velocity(x_fm, t_fm, cond)
        return trigflow.velocity_to_trig(v, x_fm, t_fm)


def condition_batch_size(cond: Condition) -> int | None:
    """The common batch size of a condition's tensors (None for an empty condition)."""
    sizes = {k: v.shape[0] for k, v in cond.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"condition tensors disagree on the batch size: {sizes}")
    return next(iter(sizes.values()), None)


def repeat_condition(cond: Condition, repeats: int) -> dict[str, torch.Tensor]:
    """Repeat each prompt's condition `repeats` times, consecutively (prompt-major order)."""
    return {k: v.repeat_interleave(repeats, dim=0) for k, v in cond.items()}


def concat_conditions(a: Condition, b: Condition) -> dict[str, torch.Tensor]:
    """Stack two conditions along the batch (e.g. unconditional then conditional for CFG)."""
    if set(a) != set(b):
        raise ValueError(f"conditions have different keys: {sorted(a)} vs {sorted(b)}")
    return {k: torch.cat([a[k], b[k]], dim=0) for k in a}


def split_condition(cond: Condition, sizes: list[int]) -> list[dict[str, torch.Tensor]]:
    """Cut a condition along the batch into consecutive parts of `sizes` rows (concat_conditions' inverse)."""
    n = condition_batch_size(cond)
    if n is not None and n != sum(sizes):
        raise ValueError(f"condition has {n} rows, parts of {sizes} need {sum(sizes)}")
    parts = {k: v.split(sizes) for k, v in cond.items()}
    return [{k: parts[k][i] for k in cond} for i in range(len(sizes))]


def expand_condition(cond: Condition, batch: int) -> dict[str, torch.Tensor]:
    """Broadcast a batch-1 condition (the empty prompt) to `batch` rows; others pass unchanged."""
    out = {}
    for k, v in cond.items():
        if v.shape[0] == batch:
            out[k] = v
        elif v.shape[0] == 1:
            out[k] = v.expand(batch, *v.shape[1:])
        else:
            raise ValueError(f"condition '{k}' has batch {v.shape[0]}; expected 1 or {batch}")
    return out


def with_guidance(cond: Condition, guidance: torch.Tensor) -> dict[str, torch.Tensor]:
    """The student's condition: the teacher's plus the guidance scale it is distilled at."""
    return {**cond, "guidance": guidance}
