"""Fully sharded data parallelism for the student (`distill.parallel: fsdp`, issue 6).

With P processes each holds 1/P of the student's weights, gradients and AdamW moments (FSDP2,
`torch.distributed.fsdp.fully_shard`: one unit per transformer block, one for the rest); a block's
weights are all-gathered just before it runs and freed after. The training maths is DDP's: every
process draws the whole step's randomness and trains on its slice of the prompts, and the
reduce-scatter averages gradients as DDP's all-reduce does, so the loss trajectory is the same as
one process with the P-fold batch (tests/test_distill_robustness.py).

Why torch's fully_shard and not accelerate's FSDP plugin: accelerate enables FSDP only for GPU-class
devices (a gloo group of CPU processes cannot use it), so that path could never be run by this
project's CPU tests; fully_shard runs the same code over gloo and NCCL. The frozen JVP pass calls the
same sharded module under no_grad (the all-gather hooks run inside torch.func.jvp; the tangents live
on activations, never on weights).

Checkpoints hold full, unsharded tensors (gathered to rank 0 and offloaded to the CPU), keyed by
parameter name, so a checkpoint's student is the same state dict a one-process run saves.
"""

from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.tensor import DTensor, distribute_tensor

PARALLEL = ("ddp", "fsdp")
_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)  # rank 0 gets everything, others {}
_SCATTER = StateDictOptions(full_state_dict=True)  # every rank passes the full dict and keeps its shard


def shard(student_tr: torch.nn.Module, weight: torch.nn.Module, device: torch.device, world: int) -> None:
    """Shard in place over all `world` processes: each transformer block, then the rest of the
    transformer, and the adaptive weight w_phi as one unit."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    for block in student_tr.transformer_blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(student_tr, mesh=mesh)
    fully_shard(weight, mesh=mesh)


def gathered(x):
    """A full tensor from a possibly sharded one (a collective: every process must call it)."""
    return x.full_tensor() if isinstance(x, DTensor) else x


def clip_grad_norm_(parameters, max_norm: float) -> torch.Tensor:
    """torch's clipping over sharded gradients (a collective); the total norm as a plain tensor."""
    return gathered(torch.nn.utils.clip_grad_norm_(list(parameters), max_norm))


class ShardedCollective:
    """The step's Collective (train_step.py) for a sharded student: FSDP reduces gradients itself, so
    backward is plain and clipping sees sharded gradients; reductions of statistics are accelerate's."""

    def __init__(self, accelerator):
        self.acc = accelerator
        self.num_processes, self.process_index = accelerator.num_processes, accelerator.process_index

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return self.acc.reduce(tensor, reduction)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, parameters, max_norm: float) -> torch.Tensor:
        return clip_grad_norm_(parameters, max_norm)


def full_state(module: torch.nn.Module) -> dict:
    """The module's unsharded state dict on rank 0 (CPU tensors), {} on the others. A collective."""
    return get_model_state_dict(module, options=_GATHER)


def load_full_state(module: torch.nn.Module, state: dict) -> None:
    """Load an unsharded state dict (read by every process) into the sharded module."""
    set_model_state_dict(module, state, options=_SCATTER)


def full_optimizer_state(modules: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's unsharded state keyed by parameter name on rank 0, {} elsewhere. `modules`
    holds every parameter the optimiser steps (e.g. a ModuleDict of student and weight)."""
    return get_optimizer_state_dict(modules, optimizer, options=_GATHER)


def load_full_optimizer_state(modules: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    set_optimizer_state_dict(modules, optimizer, state, options=_SCATTER)


def full_ema_state(ema) -> dict:
    """diffusers EMAModel state with its shadow weights gathered (every process returns it)."""
    state = ema.state_dict()
    return {**state, "shadow_params": [gathered(p).cpu() for p in state["shadow_params"]]}


def load_full_ema_state(ema, state: dict, parameters) -> None:
    """Load an unsharded EMA state and shard its shadow weights as the live `parameters` are."""
    ema.load_state_dict(state)
    ema.shadow_params = [distribute_tensor(s.to(p.device_mesh.device_type), p.device_mesh, p.placements)
                         if isinstance(p, DTensor) else s for s, p in zip(ema.shadow_params, parameters)]
