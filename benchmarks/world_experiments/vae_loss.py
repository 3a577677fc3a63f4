"""VAE variants of the embedded world, scored by what matters downstream: held-out PSNR and the judge's
shape / colour accuracy on held-out images passed through the VAE (the ceiling of any teacher in its
latent space). docs/world-budget.md, session 5.

    python benchmarks/world_experiments/vae_loss.py '{"fg": 10}' NAME [--world results/world]

Options (JSON): steps, fg (foreground weight alpha), lc (latent channels), channels, bs, lr, threads,
save (write the VAE to $OUT/vae_NAME, OUT defaults to /tmp/world-exp).
"""
import argparse, json, os, time
from pathlib import Path

import numpy as np
import torch

from tbcm.world.autoencoder import AutoencoderConfig, latent_std, psnr, train_autoencoder
from tbcm.world.build import load_judge, load_split
from tbcm.world.evaluate import reconstruction_accuracy

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("options"), ap.add_argument("name"), ap.add_argument("--world", default="results/world")
a = ap.parse_args()
kw, W = json.loads(a.options), Path(a.world)
torch.set_num_threads(kw.get("threads", 1))
train, *_ = load_split(W / "data" / "train")
held, _, _, attrs = load_split(W / "data" / "eval")
cfg = AutoencoderConfig(channels=tuple(kw.get("channels", [16, 32, 64])), latent_channels=kw.get("lc", 8),
                        batch_size=kw.get("bs", 32), lr=kw.get("lr", 2e-3), steps=kw.get("steps", 1100),
                        foreground_weight=kw.get("fg", 0.0))
t0 = time.time()
vae, _ = train_autoencoder(train, cfg, progress=False)
seconds = time.time() - t0
judge, tok, jcfg = load_judge(W / "judge")
sel = np.linspace(0, len(held) - 1, 500).astype(int)
A = [attrs[i] for i in sel]
acc = reconstruction_accuracy(vae, judge, tok, jcfg, held[sel], A)
small = [i for i, x in enumerate(A) if x["size"] == "small"]
acc_small = reconstruction_accuracy(vae, judge, tok, jcfg, held[sel][small], [A[i] for i in small])
print(a.name, json.dumps(kw), "train_s %.0f psnr %.2f shape %.3f color %.3f small_shape %.3f" % (
    seconds, psnr(vae, held[:1000]), acc["shape_accuracy"], acc["color_accuracy"], acc_small["shape_accuracy"]), flush=True)
if kw.get("save"):
    vae.save_pretrained(Path(os.environ.get("OUT", "/tmp/world-exp")) / f"vae_{a.name}")
