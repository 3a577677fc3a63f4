"""How a world teacher's samples depend on how it is sampled: the judge's shape / colour / position
accuracy of N held-out prompts for each (CFG scale, time shift, steps) asked for, same prompts and
noise for every setting. docs/world-budget.md, sessions 6 (CFG 4.5 over-guides a teacher with a taught
text encoder) and 7 (where in time it does).

    python benchmarks/world_experiments/teacher_sampling.py TEACHER_FOLDER [--world results/world] \\
        [--n 300] 4.5,2.5,16 3,2.5,16 4.5,2.5,16,0.75,1 ...

Each setting is CFG,SHIFT,STEPS[,LO,HI]. The folder's own shift is what the pipeline's evaluation uses.
With LO,HI the guidance acts only at flow-matching noise levels tau in [LO, HI] (tau = 1: pure noise)
and the conditional velocity alone is used elsewhere: a diagnostic of where guidance helps or harms
(Kynkaenniemi et al. 2024 apply guidance in a limited interval), not a sampler of the pipeline.
"""
import argparse, dataclasses
from pathlib import Path

import numpy as np
import torch

from tbcm.denoiser import Condition
from tbcm.trigflow import fm_time

from tbcm.eval.generate import generate, load_generator
from tbcm.world.build import attribute_accuracy, load_judge, load_split

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("teacher"), ap.add_argument("settings", nargs="+", help="CFG,SHIFT,STEPS")
ap.add_argument("--world", default="results/world"), ap.add_argument("--n", type=int, default=300)
ap.add_argument("--threads", type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
settings = []
for spec in a.settings:
    try:
        cfg, shift, steps, *interval = spec.split(",")
        if len(interval) not in (0, 2):
            raise ValueError
        settings.append((float(cfg), float(shift), int(steps), tuple(map(float, interval)) or (0.0, 1.0)))
    except ValueError:
        ap.error(f"setting {spec!r} is not CFG,SHIFT,STEPS[,LO,HI] (e.g. 4.5,2.5,16 or 4.5,2.5,16,0.75,1)")


class GuidanceInterval:
    """A teacher denoiser whose unconditional half of a CFG batch (rollout.guided_velocity stacks
    [uncond; cond]) is replaced by the conditional half where tau is outside [lo, hi], so the guided
    velocity there is the conditional one. Only for guided sampling (w != 1), where every call is such a pair."""

    def __init__(self, inner, lo: float, hi: float):
        self.inner, self.lo, self.hi = inner, lo, hi

    def __call__(self, x_scaled: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        out = self.inner(x_scaled, t, cond)
        # float32 pi/2 would give tau = 1 + 1e-7 and drop the first step from [lo, 1]
        tau = fm_time(t.double()).clamp(0, 1)
        outside = ((tau < self.lo) | (tau > self.hi)).reshape(-1, *[1] * (out.dim() - 1))
        u, c = out.chunk(2)
        return torch.cat([torch.where(outside[: len(u)], c, u), c])

W = Path(a.world)
_, prompts, _, attrs = load_split(W / "data" / "eval")
sel = np.linspace(0, len(prompts) - 1, a.n).astype(int)  # spread over every category and template
P, A = [prompts[i] for i in sel], [attrs[i] for i in sel]
judge, jtok, jcfg = load_judge(W / "judge")
gen = load_generator(a.teacher)
print("teacher", a.teacher, "own shift", gen.shift, "prompts", len(P))
for cfg, shift, steps, (lo, hi) in settings:
    den = gen.denoiser if (lo, hi) == (0.0, 1.0) else GuidanceInterval(gen.denoiser, lo, hi)
    if den is not gen.denoiser and cfg == 1:
        ap.error("a guidance interval needs CFG != 1")
    images = generate(dataclasses.replace(gen, shift=shift, denoiser=den), P, list(range(len(P))), steps, cfg)
    acc = attribute_accuracy(judge, jtok, images, A, jcfg, keys=("shape", "color", "position"))
    where = "" if den is gen.denoiser else f" guided only for tau in [{lo}, {hi}]"
    print(f"cfg {cfg} shift {shift} steps {steps}{where}: " + " ".join(f"{k} {v:.3f}" for k, v in acc.items()), flush=True)
