"""`tbcm <stage> ...`: one command per pipeline stage, each a thin shell over the library."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path


def _toy2d(args) -> int:
    from .toy2d import Toy2DConfig, run

    out = Path(args.out)
    summary = {}
    for method in args.methods:
        cfg = Toy2DConfig(method=method, steps=args.steps, seed=args.seed, tangent_c=args.tangent_c, lr=args.lr)
        res = run(cfg, out, progress=not args.quiet)
        summary[method] = res["energy_distance"]
    print(json.dumps(summary, indent=2))
    return 0


def _world_data(args) -> int:
    from .world.build import build_data

    print(json.dumps(build_data(Path(args.out), args.n_train, args.n_eval, args.seed, args.resolution), indent=2))
    return 0


def _world_vae(args) -> int:
    from .world.autoencoder import AutoencoderConfig
    from .world.build import build_vae

    cfg = AutoencoderConfig(max_seconds=args.seconds, seed=args.seed)
    print(json.dumps(build_vae(Path(args.data), Path(args.out), cfg), indent=2, default=str))
    return 0


def _world_judge(args) -> int:
    from .world.build import build_judge_stage
    from .world.judge import JudgeConfig

    cfg = JudgeConfig(max_seconds=args.seconds, seed=args.seed)
    print(json.dumps(build_judge_stage(Path(args.data), Path(args.out), cfg), indent=2, default=str))
    return 0


def _world_teacher(args) -> int:
    from .world.build import build_teacher_stage
    from .world.teacher import TeacherConfig

    cfg = TeacherConfig(max_seconds=args.seconds, seed=args.seed, lr=args.lr)
    model_kw = dict(hidden=args.hidden, layers=args.layers, heads=args.hidden // 32)
    m = build_teacher_stage(Path(args.data), Path(args.vae), Path(args.out), cfg, model_kw, dict(hidden=64, layers=2))
    print(json.dumps({k: v for k, v in m.items() if k != "model"}, indent=2, default=str))
    return 0


def _black_latent(args) -> int:
    import torch
    from diffusers import AutoencoderDC

    from .distill import black_latent

    vae_dir = Path(args.teacher) / "vae"
    if not vae_dir.is_dir():
        raise ValueError(f"no VAE folder at {vae_dir}")
    lat = black_latent(AutoencoderDC.from_pretrained(vae_dir).eval(), args.resolution)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(lat, tmp)
    tmp.replace(out)
    print(f"black latent {tuple(lat.shape)} (mean {float(lat.mean()):.3f}, std {float(lat.std()):.3f}) -> {out}")
    return 0


def _distill(args) -> int:
    import torch

    from .distill import DistillConfig, read_prompts, run_distill
    from .schedules import RSchedule
    from .train_step import MethodConfig

    prompts = read_prompts(args.prompts)
    black = None
    if args.black_latent:
        if not Path(args.black_latent).is_file():
            raise ValueError(f"black latent not found: {args.black_latent}")
        black = torch.load(args.black_latent)
    method = MethodConfig(route_scheme=args.route, route_steps=args.route_steps, brightness_threshold=args.brightness_threshold,
                          r=RSchedule(args.r_schedule, args.warmup_steps, args.cooldown_start, args.cooldown_steps, args.r_final))
    cfg = DistillConfig(steps=args.steps, prompts_per_step=args.prompts_per_step, lr=args.lr, seed=args.seed, method=method)
    info = run_distill(args.teacher, prompts, black, args.out, cfg)
    print(json.dumps({k: v for k, v in info.items() if k not in ("curve", "config")}, indent=2))
    return 0


def _world_eval(args) -> int:
    from .world.build import write_json
    from .world.evaluate import evaluate_folder

    m = evaluate_folder(Path(args.model), Path(args.data), Path(args.judge), args.steps, args.guidance, args.n, args.seed,
                        Path(args.grids) if args.grids else None, label=args.label)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(args.out), m)
    print(json.dumps(m, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tbcm", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    from .toy2d import Toy2DConfig

    d = {f.name: f.default for f in fields(Toy2DConfig)}
    t = sub.add_parser("toy2d", help="known-answer distillation of a 2-D Gaussian mixture (TBCM vs sCM)",
                       description="Distil the exact velocity of a 2-D Gaussian mixture into a 1-step MLP "
                                   "with TBCM and with forward-sampling sCM; writes <method>.json and .png.")
    t.add_argument("--methods", nargs="+", default=["tbcm", "scm"], choices=["tbcm", "scm"])
    t.add_argument("--steps", type=int, default=d["steps"], help="optimiser steps (default %(default)s)")
    t.add_argument("--lr", type=float, default=d["lr"], help="Adam learning rate (default %(default)s)")
    t.add_argument("--tangent-c", type=float, default=d["tangent_c"], help="tangent normalisation constant c")
    t.add_argument("--seed", type=int, default=d["seed"])
    t.add_argument("--out", default="results/toy2d", help="output folder (default %(default)s)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_toy2d)

    w = sub.add_parser("world-data", help="embedded world: captioned shapes in MJHQ-30k layout")
    w.add_argument("--out", default="results/world/data")
    w.add_argument("--n-train", type=int, default=20000)
    w.add_argument("--n-eval", type=int, default=2000)
    w.add_argument("--resolution", type=int, default=32)
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(func=_world_data)

    for name, fn, secs, help_ in (("world-vae", _world_vae, 150.0, "train the world's DC-AE"),
                                  ("world-judge", _world_judge, 60.0, "train the world's CLIP judge")):
        w = sub.add_parser(name, help=help_)
        w.add_argument("--data", default="results/world/data")
        w.add_argument("--out", default=f"results/world/{name.split('-')[1]}")
        w.add_argument("--seconds", type=float, default=secs, help="training budget in seconds (default %(default)s)")
        w.add_argument("--seed", type=int, default=0)
        w.set_defaults(func=fn)

    w = sub.add_parser("world-teacher", help="train the world's Sana teacher and save a SanaPipeline folder")
    w.add_argument("--data", default="results/world/data")
    w.add_argument("--vae", default="results/world/vae")
    w.add_argument("--out", default="results/world/teacher")
    w.add_argument("--seconds", type=float, default=180.0)
    w.add_argument("--lr", type=float, default=1e-3)
    w.add_argument("--hidden", type=int, default=128)
    w.add_argument("--layers", type=int, default=4)
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(func=_world_teacher)

    b = sub.add_parser("black-latent", help="VAE latent of an all-black image (brightness filter reference)")
    b.add_argument("--teacher", required=True, help="diffusers SanaPipeline folder")
    b.add_argument("--resolution", type=int, required=True)
    b.add_argument("--out", required=True, help="output .pt file")
    b.set_defaults(func=_black_latent)

    d = sub.add_parser("distill", help="TBCM distillation of a SanaPipeline teacher into a SanaSprintPipeline student")
    d.add_argument("--teacher", required=True)
    d.add_argument("--prompts", required=True, help="text file, one prompt per line")
    d.add_argument("--black-latent", default=None)
    d.add_argument("--out", required=True)
    d.add_argument("--steps", type=int, default=300)
    d.add_argument("--prompts-per-step", type=int, default=4)
    d.add_argument("--lr", type=float, default=1e-4)
    d.add_argument("--route", default="reference", choices=["reference", "logit_normal", "random"])
    d.add_argument("--route-steps", type=int, default=16)
    d.add_argument("--brightness-threshold", type=float, default=1.0, help="<= 0 disables the filter")
    d.add_argument("--r-schedule", default="warmup_cooldown", choices=["warmup", "warmup_cooldown", "warmup_to_final"])
    d.add_argument("--warmup-steps", type=int, default=100)
    d.add_argument("--cooldown-start", type=int, default=200)
    d.add_argument("--cooldown-steps", type=int, default=50)
    d.add_argument("--r-final", type=float, default=0.75)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_distill)

    e = sub.add_parser("world-eval", help="score a world teacher/student with the judge (accuracy, CLIP, FID)")
    e.add_argument("--model", required=True)
    e.add_argument("--data", default="results/world/data")
    e.add_argument("--judge", default="results/world/judge")
    e.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    e.add_argument("--guidance", type=float, default=4.5)
    e.add_argument("--n", type=int, default=500)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--grids", default=None, help="folder for PNG grids")
    e.add_argument("--label", default="")
    e.add_argument("--out", default=None, help="metrics JSON")
    e.set_defaults(func=_world_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # bad input: say what, no traceback
        print(f"tbcm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
