"""`tbcm <stage> ...`: one command per pipeline stage, each a thin shell over the library.

Pipeline stages read their settings from `--params` (params.yaml, validated against
workflow/schemas/params.schema.yaml before any work) and take only input and output paths as flags,
so a Snakemake rule and its DVC stage run the very same command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path


def _params(args) -> dict:
    from .config import load_params

    return load_params(args.params)


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# --------------------------------------------------------------------------- toy

def _toy2d(args) -> int:
    from .toy2d import Toy2DConfig, run

    summary = {}
    for method in args.methods:
        cfg = Toy2DConfig(method=method, steps=args.steps, seed=args.seed, tangent_c=args.tangent_c, lr=args.lr)
        summary[method] = run(cfg, Path(args.out), progress=not args.quiet)["energy_distance"]
    _print(summary)
    return 0


# --------------------------------------------------------------------------- embedded world

def _world_data(args) -> int:
    from .world.build import build_data

    p = _params(args)["world"]["data"]
    _print(build_data(Path(args.out), p["n_train"], p["n_eval"], p["seed"], p["resolution"]))
    return 0


def _world_vae(args) -> int:
    from .world.autoencoder import AutoencoderConfig
    from .world.build import build_vae

    p = _params(args)["world"]["vae"]
    cfg = AutoencoderConfig(latent_channels=p["latent_channels"], channels=tuple(p["channels"]), lr=p["lr"],
                            batch_size=p["batch_size"], steps=p["steps"], seed=p["seed"])
    _print(build_vae(Path(args.data), Path(args.out), cfg))
    return 0


def _world_judge(args) -> int:
    from .world.build import build_judge_stage
    from .world.judge import JudgeConfig

    p = _params(args)["world"]["judge"]
    _print(build_judge_stage(Path(args.data), Path(args.out), JudgeConfig(steps=p["steps"], hard_negatives=p["hard_negatives"], seed=p["seed"])))
    return 0


def _world_teacher(args) -> int:
    from .world.build import build_teacher_stage
    from .world.teacher import TeacherConfig

    p = _params(args)["world"]["teacher"]
    cfg = TeacherConfig(lr=p["lr"], batch_size=p["batch_size"], caption_dropout=p["caption_dropout"],
                        steps=p["steps"], seed=p["seed"])
    model_kw = dict(hidden=p["hidden"], layers=p["layers"], heads=p["hidden"] // 32)
    m = build_teacher_stage(Path(args.data), Path(args.vae), Path(args.out), cfg, model_kw, dict(hidden=64, layers=2),
                            shift=p["shift"])
    _print({k: v for k, v in m.items() if k != "model"})
    return 0


def _world_eval(args) -> int:
    from .atomic import write_json
    from .world.evaluate import evaluate_folder

    p = _params(args)
    # the teacher also runs for one step: the baseline a 1-step student must beat
    steps = sorted({p["sample"]["teacher_steps"], 1}, reverse=True) if args.teacher else p["sample"]["steps"]
    label = "teacher_" if args.teacher else "student_"
    m = evaluate_folder(Path(args.model), Path(args.data), Path(args.judge), steps, p["sample"]["guidance"],
                        p["evaluate"]["n"], p["sample"]["seed"], Path(args.grids), label=label)
    write_json(Path(args.out), m)
    _print(m)
    return 0


# --------------------------------------------------------------------------- method stages

def _black_latent(args) -> int:
    import torch
    from diffusers import AutoencoderDC

    from .atomic import atomic_path
    from .distill import black_latent

    res = _params(args)["black_latent"]["resolution"]
    vae_dir = Path(args.teacher) / "vae"
    if not vae_dir.is_dir():
        raise ValueError(f"no VAE folder at {vae_dir}")
    lat = black_latent(AutoencoderDC.from_pretrained(vae_dir).eval(), res)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        torch.save(lat, tmp)
    print(f"black latent {tuple(lat.shape)} (mean {float(lat.mean()):.3f}, std {float(lat.std()):.3f}) -> {out}")
    return 0


def _distill(args) -> int:
    import torch

    from .distill import DistillConfig, read_prompts, run_distill
    from .schedules import RSchedule
    from .train_step import MethodConfig

    p = _params(args)["distill"]
    if p["method"] != "tbcm":
        raise ValueError("distill.method 'scm' needs clean latents of images; the Sana-scale baseline stage is not wired yet")
    prompts = read_prompts(args.prompts)
    if not Path(args.black_latent).is_file():
        raise ValueError(f"black latent not found: {args.black_latent}")
    black = torch.load(args.black_latent)
    r = p["r"]
    method = MethodConfig(
        route_scheme=p["route"]["scheme"], route_steps=p["route"]["steps"], route_shift=p["route"]["shift"],
        guidance_scales=tuple(p["guidance_scales"]), brightness_threshold=p["brightness_threshold"],
        tangent_c=p["tangent"]["c"], tangent_method=p["tangent"]["method"], grad_clip=p["grad_clip"],
        r=RSchedule(r["schedule"], r["warmup_steps"], r["cooldown_start"], r["cooldown_steps"], p["r_final"]),
    )
    cfg = DistillConfig(steps=p["steps"], prompts_per_step=p["prompts_per_step"], lr=p["lr"], seed=p["seed"],
                        adaptive_weight=p["adaptive_weight"], precision=p["precision"],
                        gradient_checkpointing=p["gradient_checkpointing"], ema_decay=p["ema_decay"],
                        checkpoint_every=p["checkpoint_every"], checkpoint_keep=p["checkpoint_keep"], method=method)
    info = run_distill(args.teacher, prompts, black, args.out, cfg, progress=not args.quiet,
                       checkpoint_dir=args.checkpoint_dir, resume=args.resume, live_dir=args.live)
    if os.environ.get("RANK", "0") == "0":  # under accelerate launch, one summary, from the main process
        _print({k: v for k, v in info.items() if k not in ("curve", "config")})
    return 0


def _collect_prompts(args) -> int:
    from .prompts import collect_prompts

    p = _params(args)["prompts"]
    src = Path(p["file"]) if p["file"] else Path(args.world_prompts) if args.world_prompts else None
    if src is None:
        raise ValueError("prompts.file is null and no --world-prompts file was given")
    n = collect_prompts(src, Path(args.out), column=p["column"], min_words=p["min_words"], max_words=p["max_words"],
                        limit=p["limit"], seed=p["seed"])
    print(f"{n} prompts -> {args.out}")
    return 0


def _report(args) -> int:
    from .eval.report import write_report

    _params(args)
    print(write_report(Path(args.teacher), Path(args.student), Path(args.train_log), Path(args.out)))
    return 0


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tbcm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def stage(name, fn, help_):
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("--params", default="params.yaml", help="configuration file (default %(default)s)")
        s.set_defaults(func=fn)
        return s

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

    s = stage("world-data", _world_data, "embedded world: captioned shapes in MJHQ-30k layout (train, eval, prompts)")
    s.add_argument("--out", required=True)
    for name, fn, help_ in (("world-vae", _world_vae, "embedded world: train the DC-AE"),
                            ("world-judge", _world_judge, "embedded world: train the CLIP judge")):
        s = stage(name, fn, help_)
        s.add_argument("--data", required=True)
        s.add_argument("--out", required=True)
    s = stage("world-teacher", _world_teacher, "embedded world: train the Sana teacher, save a SanaPipeline folder")
    s.add_argument("--data", required=True)
    s.add_argument("--vae", required=True)
    s.add_argument("--out", required=True)
    s = stage("world-eval", _world_eval, "embedded world: score a teacher or student with the judge")
    s.add_argument("--model", required=True, help="SanaPipeline or SanaSprintPipeline folder")
    s.add_argument("--data", required=True)
    s.add_argument("--judge", required=True)
    s.add_argument("--teacher", action="store_true", help="score at sample.teacher_steps (and 1 step) instead of sample.steps")
    s.add_argument("--grids", required=True, help="folder for PNG grids")
    s.add_argument("--out", required=True, help="metrics JSON")

    s = stage("collect-prompts", _collect_prompts, "clean, de-duplicate, length-filter and shuffle a prompt set")
    s.add_argument("--world-prompts", default=None, help="the world's train_prompts.txt (used when prompts.file is null)")
    s.add_argument("--out", required=True)
    s = stage("black-latent", _black_latent, "VAE latent of an all-black image (the brightness filter's reference)")
    s.add_argument("--teacher", required=True, help="diffusers SanaPipeline folder (its vae/ is used)")
    s.add_argument("--out", required=True, help="output .pt file")
    s = stage("distill", _distill, "TBCM distillation of a SanaPipeline teacher into a SanaSprintPipeline student "
                                   "(data parallel: accelerate launch --multi_gpu --num_processes N -m tbcm.cli distill ...; "
                                   "without a GPU the same command runs N CPU processes over gloo)")
    s.add_argument("--teacher", required=True)
    s.add_argument("--prompts", required=True, help="text file, one prompt per line")
    s.add_argument("--black-latent", required=True)
    s.add_argument("--out", required=True, help="SanaSprintPipeline folder, written whole at the end")
    s.add_argument("--checkpoint-dir", default=None,
                   help="checkpoints every distill.checkpoint_every steps (default: <out>.ckpt beside --out)")
    s.add_argument("--resume", default=None, metavar="latest|PATH",
                   help="'latest': continue this setup's newest checkpoint (afresh if none); or a checkpoint file")
    s.add_argument("--live", default=None, metavar="DIR", help="dvclive folder for per-step training curves (DVC plots)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s = stage("report", _report, "collect metrics, plots and grids into a Markdown report")
    s.add_argument("--teacher", required=True, help="teacher metrics JSON")
    s.add_argument("--student", required=True, help="student metrics JSON")
    s.add_argument("--train-log", required=True)
    s.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError) as e:  # bad input: say what, no traceback
        print(f"tbcm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
