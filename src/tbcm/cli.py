"""`tbcm <stage> ...`: one command per pipeline stage, each a thin shell over the library.

Pipeline stages read their settings from `--params` (params.yaml, validated against
workflow/schemas/params.schema.yaml before any work) and take only input and output paths as flags,
so a Snakemake rule and its DVC stage run the very same command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
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
                            batch_size=p["batch_size"], steps=p["steps"], foreground_weight=p["foreground_weight"],
                            decoder_steps=p["decoder_steps"], decoder_noise=p["decoder_noise"], decoder_lr=p["decoder_lr"],
                            seed=p["seed"])
    _print(build_vae(Path(args.data), Path(args.out), cfg))
    return 0


def _world_judge(args) -> int:
    from .world.build import build_judge_stage
    from .world.judge import JudgeConfig

    p = _params(args)["world"]["judge"]
    cfg = JudgeConfig(steps=p["steps"], hard_negatives=p["hard_negatives"], group_size=p["group_size"],
                      attribute_loss=p["attribute_loss"], seed=p["seed"])
    _print(build_judge_stage(Path(args.data), Path(args.out), cfg))
    return 0


def _world_teacher(args) -> int:
    from .world.build import build_teacher_stage
    from .world.teacher import TeacherConfig
    from .world.text_pretrain import TextPretrainConfig

    world = _params(args)["world"]
    p, t = world["teacher"], world["text"]
    cfg = TeacherConfig(lr=p["lr"], batch_size=p["batch_size"], caption_dropout=p["caption_dropout"],
                        steps=p["steps"], seed=p["seed"])
    model_kw = dict(hidden=p["hidden"], layers=p["layers"], heads=p["hidden"] // 32, patch_size=p["patch_size"])
    text_kw = dict(hidden=t["hidden"], layers=t["layers"], seed=t["seed"])
    text_pretrain = TextPretrainConfig(steps=t["pretrain_steps"], lr=t["lr"], batch_size=t["batch_size"], seed=t["seed"])
    m = build_teacher_stage(Path(args.data), Path(args.vae), Path(args.out), cfg, model_kw, text_kw,
                            shift=p["shift"], text_pretrain=text_pretrain)
    _print({k: v for k, v in m.items() if k != "model"})
    return 0


def _eval_steps(p: dict, teacher: bool) -> list[int]:
    # the teacher also runs for one step: the baseline a 1-step student must beat
    return sorted({p["sample"]["teacher_steps"], 1}, reverse=True) if teacher else p["sample"]["steps"]


def _write_metrics(args, m: dict, label: str) -> None:
    from .atomic import write_json
    from .eval.plots import plot_quality_vs_steps

    write_json(Path(args.out), m)
    if args.plot:
        plot_quality_vs_steps({label.rstrip("_"): m}, Path(args.plot))
    _print(m)


def _world_eval(args) -> int:
    from .eval.settings import evaluate_params
    from .world.evaluate import evaluate_folder

    p = _params(args)
    e = evaluate_params(p)
    label = "teacher_" if args.teacher else "student_"
    m = evaluate_folder(Path(args.model), Path(args.data), Path(args.judge), _eval_steps(p, args.teacher),
                        p["sample"]["guidance"], e["n"], p["sample"]["seed"], Path(args.grids), label=label,
                        samples_dir=Path(args.samples) if args.samples else None,
                        ref_dir=Path(args.ref_dir) if args.ref_dir else None, resolution=e["resolution"],
                        fid_features=e["fid_features"], weights_dir=e["weights_dir"], per_category=e["per_category"],
                        batch_size=e["batch_size"], compute_reference=not args.ref_cached,
                        reconstructions=args.teacher, decode_workers=e["decode_workers"],
                        precision=p["sample"]["precision"])
    _write_metrics(args, m, label)
    return 0


def _evaluate(args) -> int:
    """MJHQ-30k (or any set in its layout): Inception-v3 FID and OpenAI CLIP score, offline."""
    from .eval.clip_score import open_clip_scorer
    from .eval.evaluate import EvalSettings, evaluate_model
    from .eval.fid import inception_extractor
    from .eval.mjhq import load_meta
    from .eval.settings import evaluate_params
    from .eval.weights import find_clip, find_inception

    p = _params(args)
    e = evaluate_params(p)
    # every weight file and the set are found before anything is loaded or generated
    inception = find_inception(e["weights_dir"])
    clip = find_clip(e["weights_dir"], e["clip_model"], e["clip_weights"])
    load_meta(args.data)
    if not (Path(args.model) / "model_index.json").is_file():
        raise ValueError(f"{args.model} is not a diffusers pipeline folder (no model_index.json)")
    if (code := _processes("evaluate", "evaluate.processes", e["processes"], args.argv)) is not None:
        return code
    from .eval.processes import join_group
    from .models.sana import prompt_encoding

    group = join_group()  # evaluate.processes > 1: each generates and scores its share, the main one sums up
    device = group.device()
    label = "teacher_" if args.teacher else "student_"
    tokens, instruction = prompt_encoding(p["source"])  # as the distillation encoded them
    settings = EvalSettings(steps=_eval_steps(p, args.teacher), guidance=p["sample"]["guidance"],
                            seed=p["sample"]["seed"], precision=p["sample"]["precision"], n=e["n"],
                            per_category=e["per_category"],
                            resolution=e["resolution"], batch_size=e["batch_size"],
                            decode_workers=e["decode_workers"], text_max_length=args.text_max_length or tokens,
                            text_instruction=instruction, device=device, compute_reference=not args.ref_cached)
    m = evaluate_model(Path(args.model), Path(args.data), Path(args.samples), Path(args.ref_dir),
                       inception_extractor(inception, device), open_clip_scorer(e["clip_model"], clip, device),
                       settings, Path(args.grids), label, group=group)
    if group.main:
        _write_metrics(args, m, label)
    return 0


def _sample(args) -> int:
    from .eval.sample import check_steps, read_prompts, sample_grid
    from .models.sana import prompt_encoding

    p = _params(args)
    prompts = read_prompts(args.prompt or (), args.prompts_file)  # bad input stops before any model loads
    if not (Path(args.model) / "model_index.json").is_file():
        raise ValueError(f"{args.model} is not a diffusers pipeline folder (no model_index.json)")
    kind = json.loads((Path(args.model) / "model_index.json").read_text()).get("_class_name")
    steps = check_steps(args.steps or ([p["sample"]["teacher_steps"]] if kind == "SanaPipeline" else p["sample"]["steps"]))
    tokens, instruction = prompt_encoding(p["source"])  # as the distillation and the evaluation encode them
    info = sample_grid(args.model, prompts, steps, args.out,
                       guidance=p["sample"]["guidance"] if args.guidance is None else args.guidance,
                       seed=p["sample"]["seed"] if args.seed is None else args.seed,
                       text_max_length=args.text_max_length or tokens, instruction=instruction,
                       images_dir=args.images, device=args.device,
                       precision=p["sample"]["precision"] if args.precision is None else args.precision)
    _print({k: info[k] for k in ("model", "kind", "steps", "guidance", "seed", "precision", "grid", "images")})
    return 0


def _eval_reference(args) -> int:
    """The FID reference and the real images' CLIP scores of a set (eval/reference.py), for the evaluation
    stages to read (--ref-cached)."""
    import torch

    from .eval.clip_score import open_clip_scorer
    from .eval.fid import inception_extractor
    from .eval.mjhq import load_meta
    from .eval.reference import real_clip_scores, reference_features
    from .eval.settings import evaluate_params
    from .eval.weights import find_clip, find_inception

    e = evaluate_params(_params(args))
    world = bool(args.judge)
    # every weight file and the set are found before anything is loaded
    inception = find_inception(e["weights_dir"]) if not world or e["fid_features"] == "inception" else None
    clip = None if world else find_clip(e["weights_dir"], e["clip_model"], e["clip_weights"])
    load_meta(args.data)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if world:  # the judge is the world's CLIP
        from .world.build import load_judge
        from .world.evaluate import judge_extractor, judge_scorer

        judge, tok, jcfg = load_judge(Path(args.judge))
        scorer = judge_scorer(judge, tok, jcfg, Path(args.judge))
    else:  # MJHQ-30k: OpenAI CLIP
        scorer = open_clip_scorer(e["clip_model"], clip, device)
    if inception is None:  # the world's default FID features: the judge's image tower, on the CPU
        extractor, device = judge_extractor(judge, jcfg, Path(args.judge)), "cpu"
    else:
        extractor = inception_extractor(inception, device)
    ref = reference_features(Path(args.data), extractor, e["resolution"], Path(args.ref_dir), e["batch_size"], device,
                             workers=e["decode_workers"])
    clip_ref = real_clip_scores(Path(args.data), scorer, Path(args.ref_dir), e["batch_size"],
                                workers=e["decode_workers"])
    print(ref.path)
    print(clip_ref.path)
    return 0


# --------------------------------------------------------------------------- method stages

def _black_latent(args) -> int:
    import torch
    from diffusers import AutoencoderDC

    from .atomic import atomic_path
    from .distill import black_latent

    res = _params(args)["black_latent"]["resolution"]
    vae_dir = Path(args.vae)
    if not (vae_dir / "config.json").is_file():
        raise ValueError(f"no diffusers AutoencoderDC folder (config.json) at --vae {vae_dir}")
    lat = black_latent(AutoencoderDC.from_pretrained(vae_dir).eval(), res)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        torch.save(lat, tmp)
    print(f"black latent {tuple(lat.shape)} (mean {float(lat.mean()):.3f}, std {float(lat.std()):.3f}) -> {out}")
    return 0


def _launch_processes(stage: str, key: str, processes: int, argv: list[str]) -> int:
    """`tbcm <stage>` with `key` (a process count) N > 1, not launched yet: the same command under
    `accelerate launch`, N processes on this node, one per GPU (without a GPU, a gloo group of CPU
    processes). Launched here rather than written into the workflow's command, so that the command, and
    dvc.yaml with it, does not depend on the count (`dvc exp run -S distill.processes=8` works). The job's
    CPU threads (OMP_NUM_THREADS, which Snakemake sets to the rule's threads, else the CPUs this process
    may use) are shared out: accelerate would give each process all of them. The rendezvous port is one the
    system hands out (port 0; accelerate frees it again before torch binds it, a small window): two launches
    on one node at the same moment (the teacher's and the student's evaluation) would both find accelerate's
    default 29500 free and then collide on it."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = int(os.environ.get("OMP_NUM_THREADS") or cpus)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
           "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--num_cpu_threads_per_process", str(max(1, threads // processes)), "-m", "tbcm.cli", *argv]
    print(f"tbcm {stage}: {key} {processes}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    return subprocess.call(cmd)


def _processes(stage: str, key: str, processes: int, argv: list[str]) -> int | None:
    """None where this process should do the stage's work (alone, or as one of the `processes` that
    accelerate launched), else the exit code of the launch of `processes` processes made here."""
    import torch

    launched = os.environ.get("WORLD_SIZE")  # set by accelerate launch (torchrun) in every process it starts
    if processes > 1 and torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise ValueError(f"{key} is {processes} (one process per GPU) but {torch.cuda.device_count()} GPU(s) are "
                         "visible here")
    if launched is None and processes > 1:
        return _launch_processes(stage, key, processes, argv)
    if int(launched or 1) != processes:
        raise ValueError(f"{key} is {processes} but this is one of {launched} processes: run `tbcm {stage}` "
                         f"alone (it launches {key} processes itself), or set {key} to the number you launch")
    return None


def _distill(args) -> int:
    import torch

    from .distill import DistillConfig, read_prompts, run_distill
    from .models.sana import prompt_encoding
    from .schedules import RSchedule
    from .train_step import MethodConfig

    params = _params(args)
    p = params["distill"]
    if (code := _processes("distill", "distill.processes", p["processes"], args.argv)) is not None:
        return code
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
    tokens, instruction = prompt_encoding(params["source"])
    cfg = DistillConfig(steps=p["steps"], prompts_per_step=p["prompts_per_step"], lr=p["lr"], seed=p["seed"],
                        text_max_length=tokens, text_instruction=instruction,
                        adaptive_weight=p["adaptive_weight"], precision=p["precision"],
                        gradient_checkpointing=p["gradient_checkpointing"], ema_decay=p["ema_decay"],
                        checkpoint_every=p["checkpoint_every"], checkpoint_keep=p["checkpoint_keep"],
                        parallel=p["parallel"], compile=p["compile"], rollout_ahead=p["rollout_ahead"],
                        optimizer=p["optimizer"], offload_frozen=p["offload_frozen"],
                        method=method)
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
    print(write_report(Path(args.teacher), Path(args.student), Path(args.train_log), Path(args.out),
                       Path(args.world) if args.world else None))
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

    from .toy2d_config import Toy2DConfig  # not .toy2d: that imports torch, which most commands never need

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
    for name, fn, help_ in (("world-vae", _world_vae, "embedded world: train the DC-AE, then its decoder alone on noisy latents (world.vae.decoder_*)"),
                            ("world-judge", _world_judge, "embedded world: train the CLIP judge")):
        s = stage(name, fn, help_)
        s.add_argument("--data", required=True)
        s.add_argument("--out", required=True)
    s = stage("world-teacher", _world_teacher, "embedded world: train the Sana teacher, save a SanaPipeline folder")
    s.add_argument("--data", required=True)
    s.add_argument("--vae", required=True)
    s.add_argument("--out", required=True)
    def eval_flags(s, samples_required):
        s.add_argument("--model", required=True, help="SanaPipeline or SanaSprintPipeline folder")
        s.add_argument("--teacher", action="store_true",
                       help="score at sample.teacher_steps (and 1 step) instead of sample.steps")
        s.add_argument("--samples", required=samples_required, default=None,
                       help="folder for the generated images, <k>_step/imgs/<category>/<id>.png; a rerun resumes there"
                            + ("" if samples_required else " (default: a temporary folder, no resume)"))
        s.add_argument("--ref-dir", required=samples_required, default=None,
                       help="folder of the cached FID reference and real images' CLIP scores (computed there once)"
                            + ("" if samples_required else " (default: a temporary folder)"))
        s.add_argument("--ref-cached", action="store_true",
                       help="only read what is cached in --ref-dir (the pipeline's fid_reference stage, "
                            "tbcm eval-reference, wrote it), never compute it: a missing file stops before any generation")
        s.add_argument("--grids", required=True, help="folder for the PNG grids, one per step count")
        s.add_argument("--out", required=True, help="metrics JSON")
        s.add_argument("--plot", default=None, help="also write FID and CLIP score against steps to this PNG")

    s = stage("world-eval", _world_eval, "embedded world: score a teacher or student with the judge")
    s.add_argument("--data", required=True, help="the world's data folder (its eval/ split is scored)")
    s.add_argument("--judge", required=True)
    eval_flags(s, samples_required=False)
    s = stage("evaluate", _evaluate, "MJHQ-30k layout: Inception-v3 FID and CLIP score per step count and category, "
                                     "weights from evaluate.weights_dir (offline)")
    s.add_argument("--data", required=True, help="folder with meta_data.json and imgs/<category>/<id>.jpg")
    s.add_argument("--text-max-length", type=int, default=None,
                   help="prompt tokens for the model's text encoder (default: by params' source, as the distillation "
                        "reads them: 300 after Sana's complex human instruction for sana, 24 for the world)")
    eval_flags(s, samples_required=True)
    s = stage("sample", _sample, "sample a teacher or student folder for your own prompts at several step counts: "
                                 "one PNG grid, a row per prompt, a column per step count")
    s.add_argument("--model", required=True, help="SanaPipeline (teacher) or SanaSprintPipeline (student) folder")
    s.add_argument("--prompt", action="append", metavar="TEXT", help="a prompt (repeat for several)")
    s.add_argument("--prompts-file", default=None, help="text file, one prompt per line (after any --prompt)")
    s.add_argument("--steps", type=int, nargs="+", default=None,
                   help="step counts, one column each (default: sample.steps for a student, "
                        "sample.teacher_steps for a teacher)")
    s.add_argument("--guidance", type=float, default=None, help="guidance scale (default: sample.guidance)")
    s.add_argument("--seed", type=int, default=None, help="noise seed (default: sample.seed)")
    s.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="the networks' precision (default: sample.precision)")
    s.add_argument("--text-max-length", type=int, default=None,
                   help="prompt tokens (default: by params' source, as the distillation reads them)")
    s.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    s.add_argument("--images", default=None, metavar="DIR", help="also save each image, as DIR/<k>_step/<row>.png")
    s.add_argument("--out", required=True, help="grid PNG; what it shows is recorded beside it in the same name .json")
    s = stage("eval-reference", _eval_reference,
              "compute (or find cached) the FID reference features and the real images' CLIP scores of a set")
    s.add_argument("--data", required=True, help="MJHQ-layout folder (the world: its data/eval)")
    s.add_argument("--judge", default=None, help="the world's judge folder (embedded world)")
    s.add_argument("--ref-dir", required=True, help="folder of the cached FID reference and real CLIP scores")

    s = stage("collect-prompts", _collect_prompts, "clean, de-duplicate, length-filter and shuffle a prompt set")
    s.add_argument("--world-prompts", default=None, help="the world's train_prompts.txt (used when prompts.file is null)")
    s.add_argument("--out", required=True)
    s = stage("black-latent", _black_latent, "VAE latent of an all-black image (the brightness filter's reference)")
    s.add_argument("--vae", required=True, help="diffusers AutoencoderDC folder: a SanaPipeline's vae/, or the world's VAE")
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
    s.add_argument("--world", default=None, help="the embedded world's folder (its vae, judge, teacher metrics)")
    s.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what `tbcm distill` relaunches under accelerate
    try:
        return args.func(args)
    except (ValueError, FileExistsError) as e:  # bad input: say what, no traceback
        print(f"tbcm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
