"""A training loop's wall-clock budget: the embedded world's models train for a fixed number of
seconds (what the 2-core machine can afford), not a fixed number of steps, so the learning-rate
schedule runs over the time budget and the progress bar counts seconds."""

from __future__ import annotations

import math
import time


class TimeBudget:
    """`while budget.running(): ...; budget.tick(loss)`, with `budget.lr_factor()` for the schedule."""

    def __init__(self, name: str, max_seconds: float, max_steps: int, progress: bool = True):
        self.max_seconds, self.max_steps = float(max_seconds), int(max_steps)
        self.step, self.last_loss, self.t0 = 0, None, time.time()
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=max(1, int(self.max_seconds)), desc=name, unit="s")

    @property
    def elapsed(self) -> float:
        return time.time() - self.t0

    def running(self) -> bool:
        done = self.step >= self.max_steps or self.elapsed >= self.max_seconds
        if done and self.bar is not None:
            self.bar.close()
            self.bar = None
        return not done

    def lr_factor(self, warmup_steps: int = 0, floor: float = 0.05) -> float:
        """Linear warm-up over steps, then cosine decay to `floor` over the time budget."""
        frac = min(1.0, self.elapsed / self.max_seconds)
        warm = min(1.0, (self.step + 1) / warmup_steps) if warmup_steps else 1.0
        return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))

    def set_lr(self, optimizer, base_lr: float, **kw) -> None:
        for group in optimizer.param_groups:
            group["lr"] = base_lr * self.lr_factor(**kw)

    def tick(self, loss: float) -> None:
        self.step += 1
        self.last_loss = loss
        if self.bar is not None:
            self.bar.n = min(int(self.elapsed), self.bar.total)
            self.bar.set_postfix(step=self.step, loss=f"{loss:.4f}")
            self.bar.refresh()
