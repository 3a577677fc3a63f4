"""Schedules for r, the factor on the unstable tangent term (paper §4.3, Alg. 1, Tab. 6-7).

- tangent warm-up (sCM, Sana-Sprint): r = min(1, step / H)
- Warmup-Cooldown (TBCM's default): warm up to 1, then from S_r over T_r steps blend linearly to
  R_final: p = clip((step - S_r) / T_r, 0, 1), r <- (1 - p) r + p R_final
- Warmup-to-R_final (Tab. 7's alternative): r = R_final * min(1, step / H)
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("warmup", "warmup_cooldown", "warmup_to_final")


@dataclass(frozen=True)
class RSchedule:
    kind: str = "warmup_cooldown"
    warmup_steps: int = 4000  # H
    cooldown_start: int = 15000  # S_r
    cooldown_steps: int = 2000  # T_r
    r_final: float = 0.75  # R_final

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown r schedule '{self.kind}'; expected one of {SCHEDULES}")
        if self.warmup_steps < 0 or self.cooldown_steps < 0 or self.cooldown_start < 0:
            raise ValueError("r schedule step counts must be >= 0")

    def __call__(self, step: int) -> float:
        warm = 1.0 if self.warmup_steps == 0 else min(1.0, step / self.warmup_steps)
        if self.kind == "warmup":
            return warm
        if self.kind == "warmup_to_final":
            return self.r_final * warm
        if self.cooldown_steps == 0:
            p = 1.0 if step >= self.cooldown_start else 0.0
        else:
            p = min(1.0, max(0.0, (step - self.cooldown_start) / self.cooldown_steps))
        return (1 - p) * warm + p * self.r_final
