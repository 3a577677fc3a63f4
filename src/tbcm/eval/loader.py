"""The batches of images the metrics read back, in order, decoded by `evaluate.decode_workers` processes.

One image's decode and resizes cost a CPU core 20-65 ms per metric at 1024 px (a JPEG to a PNG;
benchmarks/image_io.py), more than a GPU takes for Inception-v3 or CLIP on it, so an evaluating process
hands them to torch DataLoader workers. The batches are the same fixed slices in the same order for any
worker count (no shuffling, the last batch kept short), so every feature and score is too.

The workers are forked, whatever the interpreter's default start method: clean-fid's resize functions
and ours are closures, which spawn and forkserver would have to pickle (and cannot). Forking after CUDA
is initialised is safe here because the workers only run PIL, numpy and CPU torch. Each worker keeps
up to two batches ready in shared memory (/dev/shm): with Inception's 299 px float32 inputs ~1.1 MB an
image, so batch_size x 2.2 MB a worker (the evaluate rules add it to their memory request).
"""

from __future__ import annotations

import torch


def ordered_batches(dataset: torch.utils.data.Dataset, batch_size: int, workers: int = 0) -> torch.utils.data.DataLoader:
    """`dataset` in batches of `batch_size`, in order; `workers` > 0: read by that many forked processes."""
    if workers < 0:
        raise ValueError(f"evaluate.decode_workers must be >= 0, got {workers}")
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False,
                                       num_workers=workers, multiprocessing_context="fork" if workers else None)
