"""How much of a world metric is the judge's: the same images read by several judges.

Each judge (a folder written by `tbcm world-judge`, e.g. trained with other seeds or settings on the same
data) reads the shape and colour of the real held-out images and of each sample folder a run wrote
(`results/samples/<model>/<k>_step`), on the same ids `tbcm world-eval` scores. The spread over
judges is the measuring instrument's share of a difference between runs; docs/world-budget.md,
session 8, found it near +-5 points of shape on generated images.

    python benchmarks/world_experiments/judge_spread.py --run . --judges results/world/judge,/tmp/j1,/tmp/j2 \\
        results/samples/teacher/16_step results/samples/student/1_step

Prints one line per (judge, image set), then each set's mean and standard deviation over judges.
`--disagreements PREFIX`: for the first sample folder and the first two judges (A, B), counts the
images each reads right and writes PREFIX_shape.png / PREFIX_color.png: up to 24 images only B reads
right, then up to 8 only A does, captioned "truth A:<A's pick> B:<B's pick>", to look at who is right.
"""
import argparse
import json
import statistics
from pathlib import Path

import torch

from tbcm.eval.mjhq import load_images, load_meta, subset
from tbcm.eval.grids import image_grid
from tbcm.world.build import attribute_accuracy, attribute_picks, load_judge
from tbcm.world.shapes import ATTRIBUTE_VALUES

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("folders", nargs="*", help="sample folders (imgs/<category>/<id>.png), relative to --run")
ap.add_argument("--run", default=".", help="the run's root (its results/world/data/eval is the held-out split)")
ap.add_argument("--judges", required=True, help="comma-separated judge folders")
ap.add_argument("--n", type=int, default=500, help="the first N sorted ids, as evaluate.n")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--disagreements", default=None, metavar="PREFIX", help="grids of where the first two judges disagree")
a = ap.parse_args()
if a.disagreements and (not a.folders or len(a.judges.split(",")) < 2):
    ap.error("--disagreements needs a sample folder and at least two judges")
torch.set_num_threads(a.threads)
run = Path(a.run)
root = run / "results/world/data/eval"
meta = load_meta(root)
attrs = json.loads((root / "attributes.json").read_text())
ids = subset(meta, None, 0, a.n)
sets = {"real held-out": load_images(root, meta, ids)}
sets.update({f: load_images(run / f, meta, ids, ext="png") for f in a.folders})
judges = {j: load_judge(Path(j)) for j in a.judges.split(",")}
reads: dict[str, list[tuple[float, float]]] = {name: [] for name in sets}
for j, (judge, tok, cfg) in judges.items():
    for name, images in sets.items():
        acc = attribute_accuracy(judge, tok, images, [attrs[i] for i in ids], cfg)
        reads[name].append((acc["shape"], acc["color"]))
        print(f"{j}  {name}: shape {acc['shape']:.3f} colour {acc['color']:.3f}", flush=True)
print(f"\nover {len(judges)} judges (mean +- sd):")
sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0
for name, r in reads.items():
    shape, colour = [x for x, _ in r], [y for _, y in r]
    print(f"{name}: shape {statistics.mean(shape):.3f} +- {sd(shape):.3f}, colour {statistics.mean(colour):.3f} +- {sd(colour):.3f}")

if a.disagreements:
    images = sets[a.folders[0]]
    ab = list(judges.values())[:2]
    for key in ("shape", "color"):
        (pa, truth), (pb, _) = [attribute_picks(j, tok, images, [attrs[i] for i in ids], cfg, key) for j, tok, cfg in ab]
        ra, rb = pa == truth, pb == truth
        print(f"{key}: both right {int((ra & rb).sum())}, only A {int((ra & ~rb).sum())}, only B {int((~ra & rb).sum())}, "
              f"neither {int((~ra & ~rb).sum())}")
        sel = torch.nonzero(~ra & rb).flatten()[:24].tolist() + torch.nonzero(ra & ~rb).flatten()[:8].tolist()
        if not sel:
            continue
        names = ATTRIBUTE_VALUES[key]
        caps = [f"{names[truth[i]]} A:{names[pa[i]]} B:{names[pb[i]]}" for i in sel]
        big = torch.nn.functional.interpolate(images[sel].permute(0, 3, 1, 2).float(), size=96, mode="nearest")
        image_grid(big.permute(0, 2, 3, 1).to(torch.uint8), Path(f"{a.disagreements}_{key}.png"), ncol=8, captions=caps)
