"""A world teacher trained by the pipeline's own stage (tbcm.world.build.build_teacher_stage) and scored
on the way: the judge's shape / colour accuracy of its 16-step CFG-4.5 samples for N held-out prompts,
at the steps asked for. docs/world-budget.md, session 5 (the teacher's learning curve and plateau).

    python benchmarks/world_experiments/teacher_curve.py '{"steps": 8000, "evals": [4000, 8000]}' NAME \\
        [--world results/world] [--vae DIR]

Options (JSON): steps, evals, seed (the teacher's: batches, noise, initial weights), hidden, layers,
patch, lr, batch, logit_mean, caption_dropout, n_eval, threads, ema (a decay:
the EMA of the weights is scored too, as "EMA"), text_pretrain (steps teaching the text encoder the
grammar, tbcm.world.text_pretrain; default params.yaml's world.text, 0: a random encoder as before session 6). Accuracies
at a step before the last are those of a run whose cosine learning rate has not annealed yet.
elapsed_s: seconds since the start (data and prompt encoding included), scoring excluded.
The finished teacher is written to $OUT/teacher_NAME (OUT defaults to /tmp/world-exp).
"""
import argparse, json, os, tempfile, time
from pathlib import Path

import numpy as np
import torch
import yaml
from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline

from tbcm.eval.generate import generate, load_generator
from tbcm.world.build import attribute_accuracy, build_teacher_stage, load_judge, load_split, world_tokenizer
from tbcm.world.teacher import TeacherConfig
from tbcm.world.text_pretrain import TextPretrainConfig

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("options"), ap.add_argument("name")
ap.add_argument("--world", default="results/world"), ap.add_argument("--vae", default=None)
a = ap.parse_args()
kw, W = json.loads(a.options), Path(a.world)
vae_dir = Path(a.vae or W / "vae")
torch.set_num_threads(int(kw.get("threads", 1)))
steps = kw.get("steps", 2500)
evals = set(kw.get("evals", [steps]))
_, prompts, _, attrs = load_split(W / "data" / "eval")
sel = np.linspace(0, len(prompts) - 1, kw.get("n_eval", 300)).astype(int)
P, A = [prompts[i] for i in sel], [attrs[i] for i in sel]
judge, jtok, jcfg = load_judge(W / "judge")
tok = world_tokenizer()
vae = AutoencoderDC.from_pretrained(vae_dir).eval()
t0, scoring = time.time(), 0.0


ema_decay, ema = kw.get("ema"), None


def score(step, transformer, encoder):
    global ema
    if ema_decay:
        with torch.no_grad():
            if ema is None:
                ema = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
            else:
                for k, v in transformer.state_dict().items():
                    ema[k].lerp_(v, 1 - ema_decay) if v.is_floating_point() else ema[k].copy_(v)
    if step not in evals:
        return
    score_weights(step, transformer, encoder, "")
    if ema_decay:
        raw = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
        transformer.load_state_dict(ema)
        score_weights(step, transformer, encoder, "EMA ")
        transformer.load_state_dict(raw)


def score_weights(step, transformer, encoder, tag):
    global scoring
    s0 = time.time()
    transformer.eval()
    with tempfile.TemporaryDirectory() as tmp:
        SanaPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, transformer=transformer,
                     scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=2.5)).save_pretrained(tmp)
        images = generate(load_generator(tmp), P, list(range(len(P))), 16, 4.5)
    transformer.train()
    acc = attribute_accuracy(judge, jtok, images, A, jcfg)
    by = {size: attribute_accuracy(judge, jtok, images[[i for i, x in enumerate(A) if x["size"] == size]],
                                   [x for x in A if x["size"] == size], jcfg, keys=("shape",))["shape"]
          for size in ("small", "large")}
    scoring += time.time() - s0
    print(a.name, tag + "EVAL step", step, "elapsed_s %.0f" % (time.time() - t0 - scoring),
          "shape %.3f color %.3f small %.3f large %.3f" % (acc["shape"], acc["color"], by["small"], by["large"]), flush=True)


H = kw.get("hidden", 128)
cfg = TeacherConfig(lr=kw.get("lr", 4e-3), batch_size=kw.get("batch", 64), steps=steps, logit_mean=kw.get("logit_mean", 0.0),
                    caption_dropout=kw.get("caption_dropout", 0.1), seed=kw.get("seed", 0))
model_kw = dict(hidden=H, layers=kw.get("layers", 2), heads=H // 32, patch_size=kw.get("patch", 2))
out = Path(os.environ.get("OUT", "/tmp/world-exp")) / f"teacher_{a.name}"
# the text encoder as params.yaml builds and teaches it (world.text), but for the number of steps
t = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())["world"]["text"]
text = TextPretrainConfig(steps=kw.get("text_pretrain", t["pretrain_steps"]), lr=t["lr"], batch_size=t["batch_size"], seed=t["seed"])
build_teacher_stage(W / "data", vae_dir, out, cfg, model_kw, dict(hidden=t["hidden"], layers=t["layers"], seed=t["seed"]),
                    after_step=score, text_pretrain=text)
