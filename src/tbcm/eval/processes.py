"""Generating an evaluation's images with several processes, one per GPU (`evaluate.processes`).

At MJHQ-30k scale the images are the cost: 30,000 prompts, the teacher at its own step count with
classifier-free guidance, take hours on one GPU. Every image is a function of (model, seed, prompt id)
alone (eval/generate.py), so the work splits without changing a single image: the folder's fixed
batches are dealt out round-robin, batch j to process j mod P, and each process writes its own images.
The scoring (Inception-v3 features, CLIP) then runs once, in the main process, over the whole folder.

The processes only meet at barriers and add up one count each, so the group is gloo's (CPU tensors):
it needs no GPU, which lets the CPU tests run this very code, and it keeps NCCL (and accelerate's
state, which would open it) out of a job that never exchanges a GPU tensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

# A barrier waits for the slowest process's share of the images; the launcher (torch elastic, under
# accelerate launch) stops every process as soon as one fails, so a long timeout never hides a failure.
BARRIER_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class Group:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def total(self, n: int) -> int:
        """The sum of `n` over the processes (every process must call it)."""
        if self.size == 1:
            return int(n)
        t = torch.tensor([int(n)], dtype=torch.int64)
        torch.distributed.all_reduce(t)
        return int(t.item())

    def device(self) -> str:
        """This process's GPU (LOCAL_RANK, set by the launcher), else the CPU."""
        if not torch.cuda.is_available():
            return "cpu"
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if self.size > 1 else "cuda"


def join_group() -> Group:
    """The group of the processes `accelerate launch` started (WORLD_SIZE, RANK and the rendezvous
    address in the environment), or a group of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return Group()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    return Group(torch.distributed.get_rank(), size)
