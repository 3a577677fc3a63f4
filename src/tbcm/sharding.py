"""Fully sharded data parallelism for the student (`distill.parallel: fsdp`, issue 6).

With P processes each holds 1/P of the student's weights, gradients and AdamW moments (FSDP2,
`torch.distributed.fsdp.fully_shard`: one unit per transformer block, one for the rest); a block's
weights are all-gathered just before it runs. The training maths is DDP's: every process draws the
whole step's randomness and trains on its slice of the prompts, and the reduce-scatter averages
gradients as DDP's all-reduce does, so the loss trajectory is the same as one process with the
P-fold batch (tests/test_distill_robustness.py, on gloo; not yet run on NCCL).

Why torch's fully_shard and not accelerate's FSDP plugin: accelerate enables FSDP only for GPU-class
devices (a gloo group of CPU processes cannot use it), so that path could never be run by this
project's CPU tests; fully_shard is the same code over gloo and NCCL. The frozen JVP pass calls the
same sharded module under no_grad (the all-gather hooks run inside the forward-mode pass; the tangents
live on activations, never on weights).

Checkpoints hold whole tensors in the layout a one-process run saves (the student's and w_phi's state
dicts, the optimiser's state by parameter index, the EMA's shadow list), gathered with collectives
that every process calls in the same order; only the main process keeps them.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor, distribute_tensor


def shard(modules: list[torch.nn.Module], device: torch.device, world: int) -> None:
    """Shard each module in place over all `world` processes: its transformer blocks (if it has any)
    each as one unit, then the rest of it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    for module in modules:
        module.to(device)
        for block in getattr(module, "transformer_blocks", []):
            fully_shard(block, mesh=mesh)
        fully_shard(module, mesh=mesh)


def gathered(x):
    """A full tensor from a possibly sharded one (a collective: every process must call it)."""
    return x.full_tensor() if isinstance(x, DTensor) else x


def like(full: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A whole tensor shaped as `param`, sharded as `param` is (every process passes the same one)."""
    if not isinstance(param, DTensor):
        return full.to(param.device)
    return distribute_tensor(full.to(param.device), param.device_mesh, param.placements)


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
        """torch's clipping over the sharded gradients; the global norm as a plain tensor."""
        return gathered(torch.nn.utils.clip_grad_norm_(list(parameters), max_norm))


def full_state(module: torch.nn.Module, main: bool) -> dict:
    """The module's state dict with whole CPU tensors on the main process ({} elsewhere). A collective."""
    state = {k: gathered(v) for k, v in module.state_dict().items()}
    return {k: v.cpu() for k, v in state.items()} if main else {}


def full_optimizer_state(optimizer: torch.optim.Optimizer, main: bool) -> dict:
    """`optimizer.state_dict()` with whole CPU tensors on the main process ({} elsewhere): the same
    index-keyed layout as an unsharded optimiser's. A collective.

    Written out rather than torch.distributed.checkpoint's get_optimizer_state_dict, which on an
    optimiser with no state yet (every step before the first checkpoint skipped) runs a zero-lr step
    to create it, leaving AdamW's step count one ahead of an unsharded run's."""
    state = optimizer.state_dict()
    moments = {i: {k: gathered(v) for k, v in s.items()} for i, s in sorted(state["state"].items())}
    if not main:
        return {}
    return {**state, "state": {i: {k: v.cpu() for k, v in s.items()} for i, s in moments.items()}}


def load_full_optimizer_state(optimizer: torch.optim.Optimizer, state: dict, parameters: list) -> None:
    """Load a state `full_optimizer_state` wrote: each moment shaped as its parameter is sharded like it.
    `parameters` are the optimiser's, in its order (the indices of the state dict)."""
    def shard_moment(v, p):
        return like(v, p) if isinstance(v, torch.Tensor) and v.shape == p.shape and v.dim() > 0 else v

    moments = {i: {k: shard_moment(v, parameters[i]) for k, v in s.items()} for i, s in state["state"].items()}
    optimizer.load_state_dict({**state, "state": moments})


def full_ema_state(ema, main: bool) -> dict:
    """diffusers EMAModel state with its shadow weights whole, on the main process. A collective."""
    state = ema.state_dict()
    shadow = [gathered(p) for p in state["shadow_params"]]
    return {**state, "shadow_params": [p.cpu() for p in shadow]} if main else {}


def load_full_ema_state(ema, state: dict, parameters: list) -> None:
    """Load an EMA state `full_ema_state` wrote, its shadow weights sharded as the live `parameters`."""
    ema.load_state_dict(state)
    ema.shadow_params = [like(s, p) for s, p in zip(ema.shadow_params, parameters, strict=True)]
