"""How a world teacher's samples depend on how it is sampled: the judge's shape / colour / position
accuracy of N held-out prompts for each (CFG scale, time shift, steps) asked for, same prompts and
noise for every setting. docs/world-budget.md, session 6 (CFG 4.5 over-guides a teacher with a taught
text encoder).

    python benchmarks/world_experiments/teacher_sampling.py TEACHER_FOLDER [--world results/world] \\
        [--n 300] 4.5,2.5,16 3,2.5,16 ...

Each setting is CFG,SHIFT,STEPS. The folder's own shift is what the pipeline's evaluation uses.
"""
import argparse, dataclasses
from pathlib import Path

import numpy as np
import torch

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
        cfg, shift, steps = spec.split(",")
        settings.append((float(cfg), float(shift), int(steps)))
    except ValueError:
        ap.error(f"setting {spec!r} is not CFG,SHIFT,STEPS (e.g. 4.5,2.5,16)")
W = Path(a.world)
_, prompts, _, attrs = load_split(W / "data" / "eval")
sel = np.linspace(0, len(prompts) - 1, a.n).astype(int)  # spread over every category and template
P, A = [prompts[i] for i in sel], [attrs[i] for i in sel]
judge, jtok, jcfg = load_judge(W / "judge")
gen = load_generator(a.teacher)
print("teacher", a.teacher, "own shift", gen.shift, "prompts", len(P))
for cfg, shift, steps in settings:
    images = generate(dataclasses.replace(gen, shift=shift), P, list(range(len(P))), steps, cfg)
    acc = attribute_accuracy(judge, jtok, images, A, jcfg, keys=("shape", "color", "position"))
    print(f"cfg {cfg} shift {shift} steps {steps}: " + " ".join(f"{k} {v:.3f}" for k, v in acc.items()), flush=True)
