"""An evaluation on several processes, one per GPU (`evaluate.processes`).

At MJHQ-30k scale both halves of an evaluation are long. Generating: 30,000 prompts, the teacher at its
own step count with classifier-free guidance, take hours on one GPU. Scoring: every image is read back
and brought to Inception's and CLIP's sizes on the CPU, 90-120 ms of a core per 1024 px PNG
(benchmarks/image_io.py, an AMD EPYC core), 45-60 minutes per 30,000 images and step count in one CPU
process; a student scored at 1, 2 and 4 steps spends over two hours there (evaluate.decode_workers spreads
that over more CPUs of the node, several processes over more GPUs and their CPUs).

Both split without changing a number. A list of n items is cut into the fixed batches one process would
use (`batch_size` each, in order) and the batches are dealt out round-robin, batch j to process j mod P
(`dealt`). Every image is a function of (model, seed, prompt id) and its batch alone (eval/generate.py),
so each process writes its own images; every feature and CLIP score of a batch is computed from the same
images in the same batch as in one process, so the main process, putting the rows back in order
(`gathered`), holds what one process would have computed, bit for bit on the same kind of device.

The processes meet at a barrier and exchange counts and numpy rows, so the group is gloo's (CPU): it
needs no GPU, which lets the CPU tests run this very code, and it keeps NCCL (and accelerate's state,
which would open it) out of a job that never exchanges a GPU tensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import numpy as np
import torch

# A collective waits for the slowest process's share of the work; the launcher (torch elastic, under
# accelerate launch) stops every process as soon as one fails, so a long timeout never hides a failure.
BARRIER_TIMEOUT = timedelta(hours=24)


def dealt_batches(n: int, batch_size: int, rank: int = 0, size: int = 1) -> list[range]:
    """Process `rank`'s batches of a list of `n`, out of `size` processes: the fixed slices
    [j * batch_size, (j + 1) * batch_size) one process would use, those with j = rank, rank + size, ..."""
    return [range(b, min(b + batch_size, n)) for b in range(rank * batch_size, n, size * batch_size)]


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

    def dealt(self, n: int, batch_size: int) -> list[int]:
        """The indices of this process's batches of a list of `n` (`dealt_batches`), in order."""
        return [k for batch in dealt_batches(n, batch_size, self.rank, self.size) for k in batch]

    def gathered(self, n: int, batch_size: int, rows: Callable[[list[int]], np.ndarray]) -> np.ndarray | None:
        """`rows(indices)` ([len(indices), ...]) over the whole list of `n`, each process computing its dealt
        batches; the main process gets all n rows in order, the others None (every process must call it)."""
        mine = self.dealt(n, batch_size)
        part = np.asarray(rows(mine)) if mine else None
        if self.size == 1:
            return part
        parts = [None] * self.size if self.main else None
        torch.distributed.gather_object((mine, part), parts, dst=0)
        if not self.main:
            return None
        shape = next(p.shape[1:] for _, p in parts if p is not None)
        dtype = next(p.dtype for _, p in parts if p is not None)
        out = np.empty((n, *shape), dtype)
        for idx, p in parts:
            if idx:
                out[idx] = p
        return out

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
