"""The known-answer toy's settings (`tbcm.toy2d`), in a module of their own without torch: `tbcm`'s
argument parser shows them as defaults, and building it should not import torch for every command."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Toy2DConfig:
    method: str = "tbcm"  # tbcm | scm
    steps: int = 2000
    prompts_per_step: int = 16  # TBCM: 16 trajectories x 15 pairs; sCM: the same 240 pairs from data
    route_steps: int = 16
    lr: float = 2e-3
    hidden: int = 128
    # c at the scale of ||g|| in 2-D: the normalisation then caps outlier pairs (near the boundary
    # between modes the student's Jacobian is unbounded) without flattening every pair to unit
    # strength, which c << ||g|| does (docs/known-answer.md).
    tangent_c: float = 1.0
    # The learned weight w(t) converges to about log of the prior 1/(sigma_d tan t) and so cancels
    # it; consistency is bootstrapped upward from t = 0, which the prior's emphasis on small t serves.
    adaptive_weight: bool = False
    grad_clip: float = 1.0
    ema: float = 0.99
    # Two well-separated modes (docs/known-answer.md has the eight-mode ring, still open).
    modes: int = 2
    radius: float = 1.2
    mode_std: float = 0.35
    seed: int = 0
    n_eval: int = 4000
    threads: int = 0  # 0: leave torch's default

    def validate(self) -> None:
        if self.method not in ("tbcm", "scm"):
            raise ValueError(f"toy2d.method must be 'tbcm' or 'scm', got '{self.method}'")
        for k in ("steps", "prompts_per_step", "route_steps", "hidden", "modes", "n_eval"):
            if getattr(self, k) < 1:
                raise ValueError(f"toy2d.{k} must be >= 1, got {getattr(self, k)}")
