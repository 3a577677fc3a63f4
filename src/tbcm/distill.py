"""The distillation stage on a diffusers Sana teacher: prompts -> TBCM -> SanaSprintPipeline folder.

Image-free as in the paper: it reads the teacher's transformer, text encoder and tokenizer, the
prompts and the black latent. The VAE is never run here (its folder is only copied into the
exported pipeline, as are the text encoder's and the tokenizer's). Each step encodes its prompts
once and reuses the encoding for all N - 1 pairs of each prompt's trajectory.

Long runs (issue 6):
- Checkpoints every `checkpoint_every` steps into a folder beside the output (`<out>.ckpt/` by
  default; tbcm.checkpoint), never inside it: a workflow deletes a job's declared output before it
  reruns it and the exported folder only appears, whole, at the end. Each holds the student, w_phi,
  the optimiser, the EMA, the step, the logs and every RNG the run draws from (the prompt sampler,
  the step generator, each process's Python and torch global RNGs), so `resume="latest"` continues
  bit for bit.
- Data parallel with accelerate (`accelerate launch --multi_gpu --num_processes N -m tbcm.cli distill
  ...`, which `tbcm distill` runs itself for `distill.processes: N`; without a GPU the same command forms a
  gloo group of N CPU processes, whereas accelerate's `--cpu` flag starts a single process unless MPI is
  set up): `prompts_per_step` is per
  process; each process draws the whole step's prompts and randomness and trains on its slice
  (train_step.py), so P processes of B prompts are one process of P * B prompts.
  `parallel: fsdp` shards the student's weights, gradients and optimiser state over the processes
  (tbcm.sharding, FSDP2) instead of replicating them (DDP): same maths, same launch command.
- `precision: bf16` autocasts the teacher rollout and the student's forward passes (the student's
  weights, optimiser and loss stay fp32; the frozen teacher and text encoder are stored in bf16);
  `gradient_checkpointing` recomputes the student's blocks in the backward pass of its gradient
  forward (the JVP pass runs without grad, so it is never checkpointed);
  `ema_decay` keeps diffusers' EMAModel of the student, and the exported student is then the EMA.
- `optimizer: came` trains with CAME (tbcm.optim), as the official TBCM configuration does: about
  half of AdamW's optimiser memory (2.2 against 4.4 GiB at Sana 0.6B); not with `parallel: fsdp`.
- `offload_frozen` keeps the text encoder and the teacher on the CPU between rollouts (tbcm.offload):
  the student's steps run without them on the device; with `rollout_ahead` K they are copied in once
  per K steps.
- `compile` runs the tangent's JVP (loss.compiled_directional_derivative), the student's gradient pass
  and the teacher's calls under torch.compile (models.compiled_teacher: CUDA graphs on a GPU, unless the
  teacher is offloaded), one transformer block compiled for all 28 where it can (tbcm.regional_jvp,
  models.compiled_student): the same maths, fused kernels (docs/step-cost.md); not with `parallel: fsdp`.
- `rollout_ahead` K rolls the teacher out once for the prompts of K consecutive steps (and encodes
  their prompts in one call), then trains K steps on the pairs: the same pairs as step by step (the
  teacher is frozen; the randomness is drawn in the same order), on K times the teacher's batch.
  Steps rolled out but not yet trained on go into the checkpoint, so a resumed run stays exact.
- `live_dir`: per-step curves for `dvc plots` (tbcm.curves).
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .checkpoint import (Checkpoints, fingerprint, python_rng_state, rng_state, set_python_rng_state,
                         set_rng_state)
from .denoiser import split_condition
from .models.compile_report import compile_stats, describe, set_recompile_limit
from .models.compiled_jvp import split_conv_bias
from .models.compiled_student import compile_gradient_pass
from .models.compiled_teacher import CompiledTeacher, teacher_compile_mode
from .models.jvp_attention import use_jvp_attention
from .models.sana import PromptEncoder, SanaTrigFlowStudent, load_pipeline_parts, sana_denoiser, student_from_teacher
from .offload import FrozenOffload
from .optim import OPTIMIZERS, make_optimizer
from .train_step import MethodConfig, SkipCounter, StepPairs, tbcm_pairs_ahead, train_on_pairs
from .weighting import AdaptiveWeight

PRECISIONS = ("fp32", "bf16")
PARALLEL = ("ddp", "fsdp")  # replicate or shard the student over processes (tbcm.sharding)


@dataclass
class DistillConfig:
    steps: int = 300
    prompts_per_step: int = 4  # per process
    lr: float = 1e-4
    weight_lr: float = 1e-2  # w_phi only tracks log L(t): it may move faster than the student
    adaptive_weight: bool = True  # False: w(t) frozen at 0 (docs/known-answer.md)
    text_max_length: int = 24  # prompt tokens (models.sana.prompt_encoding: 24 for the world, 300 for Sana)
    text_instruction: tuple[str, ...] | None = None  # Sana's complex human instruction before each prompt, if any
    seed: int = 0
    log_every: int = 10
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    gradient_checkpointing: bool = False
    ema_decay: float | None = None  # None: no EMA; else diffusers EMAModel(decay=...), exported instead of the student
    checkpoint_every: int | None = 100  # None: no checkpoints
    checkpoint_keep: int = 2  # newest checkpoints kept per fingerprint
    parallel: str = "ddp"  # ddp | fsdp: how several processes share the student (one process: no difference)
    compile: bool = False  # torch.compile the tangent's JVP, the student's gradient pass and the teacher's calls
    rollout_ahead: int = 1  # steps whose prompts one rollout serves (the teacher's batch x this; the same pairs)
    optimizer: str = "adamw"  # adamw | came (tbcm.optim: the official TBCM config's, about half AdamW's state)
    offload_frozen: bool = False  # text encoder and teacher on the CPU between rollouts (tbcm.offload)
    method: MethodConfig = field(default_factory=MethodConfig)


def check_config(cfg: DistillConfig) -> None:
    """Stop before any work on a value the run cannot use, naming its params.yaml key."""
    def need(ok: bool, key: str, rule: str, value) -> None:
        if not ok:
            raise ValueError(f"distill.{key} must be {rule}, got {value!r}")

    need(isinstance(cfg.steps, int) and cfg.steps >= 1, "steps", "an integer >= 1", cfg.steps)
    need(isinstance(cfg.prompts_per_step, int) and cfg.prompts_per_step >= 1, "prompts_per_step", "an integer >= 1",
         cfg.prompts_per_step)
    need(isinstance(cfg.log_every, int) and cfg.log_every >= 1, "log_every", "an integer >= 1", cfg.log_every)
    need(cfg.precision in PRECISIONS, "precision", f"one of {PRECISIONS}", cfg.precision)
    need(cfg.parallel in PARALLEL, "parallel", f"one of {PARALLEL}", cfg.parallel)
    need(cfg.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}", cfg.optimizer)
    # CAME's row and column means of a weight that FSDP shards by rows are untested
    need(not (cfg.optimizer == "came" and cfg.parallel == "fsdp"), "optimizer", "adamw with parallel: fsdp",
         cfg.optimizer)
    need(isinstance(cfg.gradient_checkpointing, bool), "gradient_checkpointing", "true or false",
         cfg.gradient_checkpointing)
    need(isinstance(cfg.compile, bool), "compile", "true or false", cfg.compile)
    need(isinstance(cfg.offload_frozen, bool), "offload_frozen", "true or false", cfg.offload_frozen)
    need(isinstance(cfg.rollout_ahead, int) and not isinstance(cfg.rollout_ahead, bool) and cfg.rollout_ahead >= 1,
         "rollout_ahead", "an integer >= 1", cfg.rollout_ahead)
    need(cfg.ema_decay is None or (isinstance(cfg.ema_decay, (int, float)) and 0 < cfg.ema_decay < 1), "ema_decay",
         "null or a number in (0, 1)", cfg.ema_decay)
    need(cfg.checkpoint_every is None or (isinstance(cfg.checkpoint_every, int) and cfg.checkpoint_every >= 1),
         "checkpoint_every", "null or an integer >= 1", cfg.checkpoint_every)
    need(isinstance(cfg.checkpoint_keep, int) and cfg.checkpoint_keep >= 1, "checkpoint_keep", "an integer >= 1",
         cfg.checkpoint_keep)
    need(cfg.method.grad_clip > 0, "grad_clip", "> 0", cfg.method.grad_clip)


def read_prompts(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"prompt file not found: {p}")
    prompts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"prompt file {p} holds no prompts")
    return prompts


def default_checkpoint_dir(out: str | Path) -> Path:
    """`<out>.ckpt` beside the output folder (see the module docstring for why not inside it)."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def make_accelerator(cfg: DistillConfig):
    """An accelerate.Accelerator for this run: one process, or the group `accelerate launch` started.

    Mixed precision is ours (`distill.precision`, torch.autocast around the forward passes only), so
    an accelerate config that sets its own is refused rather than silently stacked on top.
    """
    import os

    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    # Without a GPU, cpu=True is what lets a torchrun-style launch (`accelerate launch --multi_gpu`,
    # `torchrun`) form a gloo group; otherwise every process would train alone on the same output.
    acc = Accelerator(cpu=not torch.cuda.is_available())
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != acc.num_processes:
        raise ValueError(f"started as one of WORLD_SIZE={launched} processes but accelerate formed a group of "
                         f"{acc.num_processes}; check the accelerate launch flags")
    if acc.mixed_precision != "no":
        raise ValueError(f"accelerate is configured with mixed_precision={acc.mixed_precision!r}; leave it 'no' and "
                         f"set distill.precision (now {cfg.precision!r}) instead")
    if acc.distributed_type not in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        # Sharding is ours (tbcm.sharding, which says why), chosen in params.yaml like precision.
        raise ValueError(f"accelerate distributed_type {acc.distributed_type} is not supported by tbcm distill; "
                         "launch with --multi_gpu and set distill.parallel: fsdp (now "
                         f"{cfg.parallel!r}) to shard the student")
    return acc


def run_distill(teacher_dir: str | Path, prompts: list[str], black_latent: torch.Tensor | None, out: str | Path,
                cfg: DistillConfig, progress: bool = True, *, checkpoint_dir: str | Path | None = None,
                resume: str | Path | None = None, live_dir: str | Path | None = None, accelerator=None) -> dict:
    """Distil and export; returns the training log (also written to out/train_log.json).

    checkpoint_dir: where checkpoints go (default `<out>.ckpt`); resume: None (start afresh),
    "latest" (this setup's newest checkpoint, or afresh if none) or a checkpoint file/folder;
    live_dir: dvclive folder for per-step curves (None: none); accelerator: an accelerate.Accelerator
    (default: `make_accelerator`).
    """
    check_config(cfg)
    if not prompts:
        raise ValueError("distillation needs at least one prompt")
    if black_latent is not None and not torch.isfinite(black_latent).all():
        raise ValueError("black latent contains NaN or Inf")
    acc = accelerator if accelerator is not None else make_accelerator(cfg)
    device, rank, world, main = acc.device, acc.process_index, acc.num_processes, acc.is_main_process
    ckpts = Checkpoints(checkpoint_dir if checkpoint_dir is not None else default_checkpoint_dir(out),
                        fingerprint(asdict(cfg), teacher_dir, prompts, black_latent, world))
    resume_path = ckpts.resolve(resume)
    state = ckpts.load(resume_path) if resume_path is not None else None
    if state is not None and state["step"] > cfg.steps:
        raise ValueError(f"checkpoint {resume_path} is at step {state['step']}, beyond distill.steps={cfg.steps}")
    if main:
        if resume is not None and state is None:
            print(f"distill: no checkpoint to resume in {ckpts.folder}; starting afresh")
        elif state is not None:
            print(f"distill: resuming from {resume_path} (step {state['step']})")
        if resume == "latest" and ckpts.others():
            print(f"distill: {len(ckpts.others())} checkpoint folder(s) in {ckpts.root} belong to another "
                  "configuration, teacher, prompt set or process count and are ignored")

    teacher_tr, encoder, tokenizer = load_pipeline_parts(teacher_dir)
    teacher_tr.requires_grad_(False)
    student_tr = student_from_teacher(teacher_tr, seed=cfg.seed)  # on the CPU; acc.prepare places it
    if cfg.precision == "bf16":
        # The frozen networks only run under bf16 autocast, so they are stored in bf16 (after the student, which
        # keeps fp32 master weights, is copied): half the device memory and half the offload copies (at Sana 0.6B
        # the teacher 2.2 -> 1.1 GiB; diffusers loads it in fp32 whatever its files hold), as Sana-Sprint's training
        # script keeps them (weight_dtype) and benchmarks/step_cost.py measures them.
        teacher_tr.to(torch.bfloat16)
        encoder.to(torch.bfloat16)
    if cfg.method.tangent_method == "jvp":
        # Fused SDPA has no forward-mode rule; this processor keeps the fused primal and adds an explicit
        # tangent (models/jvp_attention.py). Training forward/backward are bit-identical to stock.
        use_jvp_attention(student_tr)
    frozen = FrozenOffload([encoder, teacher_tr], device, enabled=cfg.offload_frozen)  # each placed around its use
    encode = PromptEncoder(tokenizer, encoder, cfg.text_max_length, cfg.text_instruction)
    weight = AdaptiveWeight(seed=cfg.seed)
    if state is not None:
        student_tr.load_state_dict(state["student"])
        weight.load_state_dict(state["weight"])
    if cfg.gradient_checkpointing:
        student_tr.enable_gradient_checkpointing()
    student_tr.train()
    weight.requires_grad_(cfg.adaptive_weight)
    sharded = cfg.parallel == "fsdp" and world > 1
    if sharded:
        from . import sharding

        sharding.shard([student_tr, weight] if cfg.adaptive_weight else [student_tr], device, world)
        if not cfg.adaptive_weight:
            weight.to(device)  # frozen w_phi: a replica, as with DDP
    # Taken once: after a forward without backward FSDP2 may leave the module's own parameters unsharded.
    student_params = list(student_tr.parameters())
    teacher, student = sana_denoiser(teacher_tr), SanaTrigFlowStudent(student_tr)
    method = cfg.method
    if cfg.compile:
        if sharded:
            raise ValueError("distill.compile with parallel: fsdp is not supported (a compiled forward-mode JVP "
                             "through FSDP2's sharded modules is untested); use parallel: ddp or compile: false")
        # Eager forward-mode AD runs every op's tangent formula as separate kernels; compiled, they fuse into the
        # forward's (docs/step-cost.md). The teacher's rollout calls are small and launch-bound: CUDA graphs on a GPU
        # (unless offloaded: its weights come back at new addresses in every rollout).
        set_recompile_limit()
        compiled_since = compile_stats()
        split_conv_bias(student_tr)
        split_conv_bias(teacher_tr)
        teacher = CompiledTeacher(teacher, teacher_compile_mode(device, offloaded=cfg.offload_frozen),
                                  transformer=teacher_tr)
        method = replace(method, compile_tangent=True)
    groups = [{"params": student_params, "lr": cfg.lr}]
    if cfg.adaptive_weight:
        groups.append({"params": list(weight.parameters()), "lr": cfg.weight_lr})
    opt = make_optimizer(cfg.optimizer, groups)
    params = [p for g_ in groups for p in g_["params"]]
    collective = acc
    if sharded:  # FSDP reduces the gradients; the frozen pass calls the same sharded student
        student_ddp, weight_ddp, collective = student, weight, sharding.ShardedCollective(acc)
        if state is not None:
            sharding.load_full_optimizer_state(opt, state["optimizer"], params)
    else:
        # DDP wraps the modules that receive gradients; the frozen (no-grad JVP) pass calls the plain student.
        if cfg.adaptive_weight:
            student_ddp, weight_ddp, opt = acc.prepare(student, weight, opt)
        else:
            student_ddp, opt = acc.prepare(student, opt)
            weight_ddp = weight.to(device)
        if state is not None:
            opt.load_state_dict(state["optimizer"])
        if cfg.compile:  # the gradient pass (forward, checkpointed backward) fused too: its blocks, in place
            compile_gradient_pass(student)
    ema = None
    if cfg.ema_decay is not None:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(student_params, decay=cfg.ema_decay)
        if state is not None:
            if sharded:
                sharding.load_full_ema_state(ema, state["ema"], student_params)
            else:
                ema.load_state_dict(state["ema"])
        ema.to(device)
    c = teacher_tr.config
    latent_shape = (c.in_channels, c.sample_size, c.sample_size)
    with frozen.on_device(encoder):
        uncond = encode.uncond()  # the empty prompt without the instruction, as SanaPipeline's negative branch
    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if cfg.precision == "bf16"
                else contextlib.nullcontext)

    rng = random.Random(cfg.seed)  # prompt sampler: the same on every process
    g = torch.Generator().manual_seed(cfg.seed)  # routes, guidance, noise, filter: the same on every process
    skips, log, history, start, elapsed = SkipCounter(), [], [], 0, 0.0
    pending: list[StepPairs] = []  # steps rolled out ahead, not yet trained on (distill.rollout_ahead)
    if state is not None:
        set_python_rng_state(rng, state["rng"]["prompt_sampler"])
        g.set_state(state["rng"]["generator"])
        set_rng_state(state["rng"]["processes"][rank])
        pending = [StepPairs.from_state(p, device) for p in state.get("pending", [[]] * world)[rank]]
        skips.counts, log, history = dict(state["skips"]), list(state["curve"]), list(state["history"])
        start, elapsed = int(state["step"]), float(state["seconds"])
    curves = None
    if live_dir is not None and main:
        from .curves import TrainingCurves

        curves = TrainingCurves(live_dir, history)

    def save_checkpoint(next_step: int) -> None:
        mine = (rng_state(), [p.state() for p in pending])
        theirs = [mine]
        if world > 1:  # to the main process alone, which writes them: up to K steps' pairs per process
            theirs = [None] * world if main else None
            torch.distributed.gather_object(mine, theirs, dst=0)
        procs, ahead = ([r for r, _ in theirs], [a for _, a in theirs]) if main else (None, None)
        if sharded:  # collectives: every process gathers, the main one writes
            weights = {"student": sharding.full_state(student_tr, main), "weight": sharding.full_state(weight, main),
                       "optimizer": sharding.full_optimizer_state(opt, main),
                       "ema": sharding.full_ema_state(ema, main) if ema is not None else None}
        elif main:
            weights = {"student": student_tr.state_dict(), "weight": weight.state_dict(), "optimizer": opt.state_dict(),
                       "ema": ema.state_dict() if ema is not None else None}
        if main:
            ckpts.save(next_step, {
                "step": next_step, "config": asdict(cfg), **weights,
                "rng": {"prompt_sampler": python_rng_state(rng), "generator": g.get_state(), "processes": procs},
                "pending": ahead,
                "skips": dict(skips.counts), "curve": log, "history": history, "seconds": time.time() - t0,
            }, cfg.checkpoint_keep)
        acc.wait_for_everyone()

    t0 = time.time() - elapsed
    b = cfg.prompts_per_step
    it = range(start, cfg.steps)
    if progress and main:
        from tqdm import tqdm

        it = tqdm(it, desc=f"distill ({cfg.method.route_scheme} route)", initial=start, total=cfg.steps)
    for step in it:
        if not pending:  # roll out the next min(K, steps left) steps at once
            k = min(cfg.rollout_ahead, cfg.steps - step)
            batches = [[prompts[rng.randrange(len(prompts))] for _ in range(b * world)] for _ in range(k)]  # whole steps'
            mine = [p for batch in batches for p in batch[rank * b:(rank + 1) * b]]
            with frozen.on_device(encoder):
                conds = split_condition(encode(mine), [b] * k)
            with frozen.on_device(teacher_tr):
                pending, _ = tbcm_pairs_ahead(teacher, conds, uncond, latent_shape, method, g, black_latent=black_latent,
                                              device=device, rank=rank, world_size=world, autocast=autocast)
        res = train_on_pairs(student_ddp, weight_ddp, opt, params, pending.pop(0), step, method, collective=collective,
                             autocast=autocast, frozen=student)
        skips.update(res)
        if ema is not None and res.skipped is None:
            ema.step(student_params)
        row = {"step": step, "loss": res.loss, "grad_norm": res.grad_norm, "r": res.r,
               "skipped": 0.0 if res.skipped is None else 1.0, "dropped_prompts": res.n_dropped, **res.stats}
        history.append(row)
        if curves is not None:
            curves.log(row)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            log.append({"step": step, "loss": res.loss, "grad_norm": res.grad_norm, "r": res.r, "skipped": res.skipped,
                        "dropped_prompts": res.n_dropped, **res.stats, "seconds": time.time() - t0})
            if progress and main:
                it.set_postfix(loss=res.loss, r=round(res.r, 3))
        if cfg.checkpoint_every is not None and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            save_checkpoint(step + 1)
    if curves is not None:
        curves.close()
    info = {"steps": cfg.steps, "seconds": time.time() - t0, "skipped": skips.counts, "pairs_per_step":
            cfg.prompts_per_step * world * (cfg.method.route_steps - 1), "num_processes": world, "sharded": sharded,
            "resumed_from": None if state is None else {"path": str(resume_path), "step": int(state["step"])},
            "exported_weights": "ema" if ema is not None else "student", "config": asdict(cfg),
            # graph breaks or recompiles past the limit would leave parts of the run eager (correct, but slower)
            "compile": compile_stats(since=compiled_since) if cfg.compile else None, "curve": log}
    if cfg.compile and info["compile"]["graph_breaks"] and main:
        print(f"distill.compile: parts of the run ran eagerly: {describe(info['compile'])}", file=sys.stderr)
    if ema is not None:
        ema.copy_to(student_params)  # after the last checkpoint, which keeps the online weights
    if sharded:  # gather the weights into an unsharded student of the same architecture, on the CPU, to export it
        full = sharding.full_state(student_tr, main)
        if main:
            from diffusers import SanaTransformer2DModel

            student_tr = SanaTransformer2DModel.from_config(teacher_tr.config, guidance_embeds=True)
            student_tr.load_state_dict(full)
    if main:
        export_student(teacher_dir, student_tr.eval(), out, info)
    acc.wait_for_everyone()
    return info


SHARED_WITH_TEACHER = ("text_encoder", "tokenizer", "vae")


def export_student(teacher_dir: str | Path, student_tr, out: str | Path, info: dict) -> Path:
    """Save a SanaSprintPipeline folder: the student and an SCM scheduler, which diffusers writes, and the
    teacher's text encoder, tokenizer and VAE, copied file for file.

    Copied rather than loaded and saved again by the pipeline: the text encoder is exported exactly as the
    teacher's folder holds it (the distillation may hold it in bf16), and Gemma-2-2B's 5 GiB do not pass
    through host memory once more at the end of a run."""
    import json
    import shutil

    from diffusers import SanaSprintPipeline, SCMScheduler
    from diffusers.utils import logging as diffusers_logging

    from .atomic import atomic_dir, write_json

    teacher_dir, out = Path(teacher_dir), Path(out)
    teacher_index = json.loads((teacher_dir / "model_index.json").read_text())
    pipe = SanaSprintPipeline(transformer=student_tr, scheduler=SCMScheduler(),
                              **{name: None for name in SHARED_WITH_TEACHER})
    with atomic_dir(out) as tmp:
        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # it would warn that the three left as None "cannot be saved"
        try:
            pipe.save_pretrained(tmp)
        finally:
            diffusers_logging.set_verbosity(verbosity)
        index = json.loads((tmp / "model_index.json").read_text())
        for name in SHARED_WITH_TEACHER:
            shutil.copytree(teacher_dir / name, tmp / name)
            index[name] = teacher_index[name]
        write_json(tmp / "model_index.json", index)
        write_json(tmp / "train_log.json", info)
    return out


@torch.no_grad()
def black_latent(vae, resolution: int) -> torch.Tensor:
    """The VAE latent of an all-black image, times the scaling factor: [C, h, w] (§4.3, App. D).
    Black is -1 in the VAE's [-1, 1] input range."""
    x = -torch.ones(1, 3, resolution, resolution)
    return (vae.encode(x).latent * vae.config.scaling_factor)[0]
