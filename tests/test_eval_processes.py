"""evaluate.processes: the batches one process would use, dealt out round-robin, cover a list exactly once,
and rows computed per process come back to the main one in the list's order (a gloo group of 3 CPU
processes, as `accelerate launch` forms it without a GPU)."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tbcm.eval.processes import Group, dealt_batches, join_group


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_dealt_batches_are_one_process_batches_each_once(size):
    for n in range(0, 23):
        for bs in range(1, 6):
            whole = dealt_batches(n, bs)
            assert [k for b in whole for k in b] == list(range(n))
            assert all(len(b) == bs for b in whole[:-1])
            shares = [dealt_batches(n, bs, r, size) for r in range(size)]
            assert sorted((b.start, b.stop) for s in shares for b in s) == [(b.start, b.stop) for b in whole]
            for r, share in enumerate(shares):  # batch j goes to process j mod size
                assert [whole.index(b) % size for b in share] == [r] * len(share)
                assert Group(r, size).dealt(n, bs) == [k for b in share for k in b]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, size: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    group = join_group()
    seen = []

    def rows(ks):
        seen.append(list(ks))
        return np.stack([np.full(3, 10.0 * k + rank) for k in ks])  # which process made each row, too

    out = group.gathered(11, 2, rows)
    total = group.total(len(seen[0]))
    queue.put((group.rank, out, seen[0], total))
    group.barrier()
    torch.distributed.destroy_process_group()


def test_rows_of_three_processes_come_back_in_order_to_the_main_one():
    size, ctx = 3, mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(size, _free_port(), queue), nprocs=size, start_method="spawn")
    results = sorted(queue.get() for _ in range(size))
    assert [r[0] for r in results] == [0, 1, 2]
    # 11 rows in batches of 2: process 0 has batches 0 and 3 (0, 1, 6, 7), 1 has 1 and 4, 2 has 2 and 5 (4, 5, 10)
    assert [r[2] for r in results] == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10]]
    assert all(r[3] == 11 for r in results)
    assert results[1][1] is None and results[2][1] is None
    maker = {k: r for r, ks in enumerate(x[2] for x in results) for k in ks}
    want = np.stack([np.full(3, 10.0 * k + maker[k]) for k in range(11)])
    np.testing.assert_array_equal(results[0][1], want)
