"""A training loop's step budget with its learning-rate schedule and progress bar.

The embedded world's models train for a fixed number of steps, not seconds: the same params.yaml
then gives the same models on any machine (DVC's cache and `dvc repro` rely on that), and the time
a step count costs on the 2-core machine is measured by benchmarks/world_budget.py instead.
"""

from __future__ import annotations

import math
import time


class StepBudget:
    """`while budget.running(): budget.set_lr(...); ...; budget.tick(loss)`."""

    def __init__(self, name: str, max_steps: int, progress: bool = True):
        if int(max_steps) < 1:
            raise ValueError(f"{name}: steps must be >= 1, got {max_steps}")
        self.max_steps = int(max_steps)
        self.step, self.last_loss, self.t0 = 0, None, time.time()
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.max_steps, desc=name, unit="step", mininterval=1.0)

    @property
    def elapsed(self) -> float:
        return time.time() - self.t0

    def running(self) -> bool:
        done = self.step >= self.max_steps
        if done and self.bar is not None:
            self.bar.close()
            self.bar = None
        return not done

    def lr_factor(self, warmup_steps: int = 0, floor: float = 0.05) -> float:
        """Linear warm-up, then cosine decay to `floor` at the last step."""
        frac = self.step / self.max_steps
        warm = min(1.0, (self.step + 1) / warmup_steps) if warmup_steps else 1.0
        return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))

    def set_lr(self, optimizer, base_lr: float, **kw) -> None:
        for group in optimizer.param_groups:
            group["lr"] = base_lr * self.lr_factor(**kw)

    def tick(self, loss: float) -> None:
        self.step += 1
        self.last_loss = loss
        if self.bar is not None:
            self.bar.update(1)
            if self.step % 10 == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
