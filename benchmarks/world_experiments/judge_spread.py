"""How much of a world metric is the judge's: the same images read by several judges.

Each judge (a folder written by `tbcm world-judge`, e.g. trained with other seeds or settings on the same
data) reads the shape and colour of the real held-out images and of each sample folder a run wrote
(`results/samples/<model>/<k>_step`), on the same ids `tbcm world-eval` scores. The spread over
judges is the measuring instrument's share of a difference between runs; docs/world-budget.md,
session 8, found it near +-5 points of shape on generated images.

    python benchmarks/world_experiments/judge_spread.py --run . --judges results/world/judge,/tmp/j1,/tmp/j2 \\
        results/samples/teacher/16_step results/samples/student/1_step

Prints one line per (judge, image set), then each set's mean and standard deviation over judges.
"""
import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tbcm.eval.mjhq import image_paths, load_images, load_meta, subset
from tbcm.world.build import attribute_accuracy, load_judge

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("folders", nargs="*", help="sample folders (imgs/<category>/<id>.png), relative to --run")
ap.add_argument("--run", default=".", help="the run's root (its results/world/data/eval is the held-out split)")
ap.add_argument("--judges", required=True, help="comma-separated judge folders")
ap.add_argument("--n", type=int, default=500, help="the first N sorted ids, as evaluate.n")
ap.add_argument("--threads", type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
run = Path(a.run)
root = run / "results/world/data/eval"
meta = load_meta(root)
attrs = json.loads((root / "attributes.json").read_text())
ids = subset(meta, None, 0, a.n)
sets = {"real held-out": load_images(root, meta, ids)}
for f in a.folders:
    paths = image_paths(run / f, meta, ids, "png")
    sets[f] = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]))
reads: dict[str, list[tuple[float, float]]] = {name: [] for name in sets}
for j in a.judges.split(","):
    judge, tok, cfg = load_judge(Path(j))
    for name, images in sets.items():
        acc = attribute_accuracy(judge, tok, images, [attrs[i] for i in ids], cfg)
        reads[name].append((acc["shape"], acc["color"]))
        print(f"{j}  {name}: shape {acc['shape']:.3f} colour {acc['color']:.3f}", flush=True)
print(f"\nover {len(a.judges.split(','))} judges (mean +- sd):")
for name, r in reads.items():
    sd = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
    shape, colour = [x for x, _ in r], [y for _, y in r]
    print(f"{name}: shape {statistics.mean(shape):.3f} +- {sd(shape):.3f}, colour {statistics.mean(colour):.3f} +- {sd(colour):.3f}")
