"""A known-answer distillation: the teacher is the exact flow-matching velocity of a 2-D Gaussian
mixture (closed form, `analytic.py`), the student a small MLP. Both TBCM and the forward-sampling
sCM baseline run through the library's own `tbcm_step` / `scm_step`, and the student's 1- and
2-step samples are compared with fresh mixture samples by the energy distance, next to the
teacher's 16-step and 1-step samples.

The student "starts from the teacher" as in the paper: F_student = F_teacher + MLP with the MLP's
last layer zero-initialised, so step 0 is exactly the teacher.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .analytic import GaussianMixtureVelocity, energy_distance, ring_mixture
from .atomic import atomic_path, write_json
from .denoiser import FlowMatchingAdapter
from .sampler import consistency_sample, consistency_times, teacher_sample
from .schedules import RSchedule
from .toy2d_config import Toy2DConfig
from .train_step import MethodConfig, SkipCounter, scm_step, tbcm_step
from .weighting import AdaptiveWeight

SD = 0.5


class ResidualMLPStudent(nn.Module):
    """F(x, t) = F_teacher(x, t) + MLP(x, Fourier(t)), the MLP's output layer zero-initialised."""

    def __init__(self, teacher: nn.Module, hidden: int = 128, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.teacher = teacher
        self.teacher.requires_grad_(False)
        self.register_buffer("freqs", 2 * torch.randn(32, generator=g))
        self.net = nn.Sequential(
            nn.Linear(2 + 64, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x, t, cond):
        e = t[:, None].to(x.dtype) * self.freqs
        return self.teacher(x, t, cond).to(x.dtype) + self.net(torch.cat([x, torch.cos(e), torch.sin(e)], 1))


def distill(cfg: Toy2DConfig, progress: bool = False):
    """Train a student with cfg.method; returns (EMA student, teacher, mixture, log)."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gmm = ring_mixture(cfg.modes, cfg.radius, cfg.mode_std)
    teacher = FlowMatchingAdapter(gmm)
    student = ResidualMLPStudent(FlowMatchingAdapter(copy.deepcopy(gmm)), cfg.hidden, cfg.seed)
    ema = copy.deepcopy(student)
    weight = AdaptiveWeight(seed=cfg.seed).requires_grad_(cfg.adaptive_weight)  # frozen at w = 0 when off
    params = [p for p in list(student.parameters()) + list(weight.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    # constant, then linear decay to 0 over the second half: the normalised tangent makes steps
    # sign-like, so precision near the fixed point comes from the decaying step size.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, 2 * (1 - i / cfg.steps)))
    mcfg = MethodConfig(
        route_steps=cfg.route_steps, guidance_scales=(1.0,), brightness_threshold=0,
        tangent_c=cfg.tangent_c, grad_clip=cfg.grad_clip,
        r=RSchedule("warmup", warmup_steps=max(1, cfg.steps // 4)),
    )
    g = torch.Generator().manual_seed(cfg.seed)
    n_pairs = cfg.prompts_per_step * (cfg.route_steps - 1)
    skips, log, t0 = SkipCounter(), [], time.time()
    it = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"toy2d {cfg.method}")
    for step in it:
        if cfg.method == "tbcm":
            res = tbcm_step(student, weight, opt, params, teacher, {}, None, (2,), step, mcfg, g, batch=cfg.prompts_per_step)
        else:
            x0 = gmm.sample(n_pairs, g).float() * SD
            res = scm_step(student, weight, opt, params, teacher, x0, {}, None, step, mcfg, g)
        skips.update(res)
        sched.step()
        with torch.no_grad():
            for pe, ps in zip(ema.net.parameters(), student.net.parameters()):
                pe.lerp_(ps, 1 - cfg.ema)
        if step % 50 == 0 or step == cfg.steps - 1:
            log.append({"step": step, "loss": res.loss, "r": res.r})
    info = {"train_seconds": time.time() - t0, "skipped": skips.counts, "curve": log}
    return ema, teacher, gmm, info


@torch.no_grad()
def evaluate(student, teacher, gmm: GaussianMixtureVelocity, n: int = 4000, seed: int = 1234) -> dict:
    """Energy distances to fresh mixture samples (`floor`: data against data, the noise level), and
    the mean log-density of each sample set under the true mixture (`loglik_*`; data: `loglik_data`).
    The energy distance is blind to blur between modes; the log-density is not."""
    g = lambda k: torch.Generator().manual_seed(seed + k)
    ref = gmm.sample(n, g(0)) * SD
    z = torch.randn(n, 2, generator=g(1), dtype=torch.float64) * SD
    samples = {"teacher_16": teacher_sample(teacher, {}, None, z, 1.0, 16),
               "teacher_1": teacher_sample(teacher, {}, None, z, 1.0, 1)}
    for steps in (1, 2):
        samples[f"student_{steps}"] = consistency_sample(student, {}, z.float(), consistency_times(steps), g(3)).double()
    ll = lambda x: float(gmm.log_prob(x / SD).mean())
    out = {"floor": energy_distance(gmm.sample(n, g(2)) * SD, ref)}
    out.update({k: energy_distance(x, ref) for k, x in samples.items()})
    out.update({f"in_mode_{k}": in_mode_fraction(gmm, x) for k, x in
                (("data", ref), ("teacher_16", samples["teacher_16"]), ("student_1", samples["student_1"]))})
    out.update({"loglik_data": ll(ref), **{f"loglik_{k}": ll(x) for k, x in samples.items()}})
    return out, ref, samples


def in_mode_fraction(gmm: GaussianMixtureVelocity, x: torch.Tensor, k: float = 2.0) -> float:
    """Fraction of TrigFlow-unit samples within k std of their nearest mode's centre."""
    a = x.double() / SD
    d = torch.cdist(a, gmm.means)  # [n, K]
    near = d.argmin(1)
    return float((d.gather(1, near[:, None])[:, 0] <= k * gmm.stds[near]).double().mean())


def scatter_png(path: Path, panels: dict[str, torch.Tensor]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (name, pts) in zip(axes, panels.items()):
        ax.scatter(pts[:, 0], pts[:, 1], s=0.5, alpha=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-1.4, 1.4)
        ax.set_ylim(-1.4, 1.4)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def run(cfg: Toy2DConfig, out_dir: Path, progress: bool = True) -> dict:
    """Distil, evaluate, and write `<method>.json` and `<method>.png` into out_dir atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    student, teacher, gmm, info = distill(cfg, progress)
    metrics, ref, samples = evaluate(student, teacher, gmm, cfg.n_eval, cfg.seed + 1000)
    scatter_png(out_dir / f"{cfg.method}.png", {
        "mixture (data)": ref,
        "teacher, 16 steps": samples["teacher_16"],
        "teacher, 1 step": samples["teacher_1"],
        f"{cfg.method} student, 1 step": samples["student_1"],
        f"{cfg.method} student, 2 steps": samples["student_2"],
    })
    result = {"config": asdict(cfg), "energy_distance": metrics, **{k: v for k, v in info.items() if k != "curve"}}
    write_json(out_dir / f"{cfg.method}.json", result)
    return result
