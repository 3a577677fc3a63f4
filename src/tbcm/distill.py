"""The distillation stage on a diffusers Sana teacher: prompts -> TBCM -> SanaSprintPipeline folder.

Image-free as in the paper: it reads the teacher's transformer, text encoder and tokenizer, the
prompts and the black latent. The VAE is never run here (its folder is only copied into the
exported pipeline). Each step encodes its prompts once and reuses the encoding for all N - 1 pairs
of each prompt's trajectory.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .denoiser import Condition
from .models.sana import (PROMPT_EMBEDS, PROMPT_MASK, SanaTrigFlowStudent, encode_prompts, load_pipeline_parts,
                          sana_denoiser, student_from_teacher)
from .train_step import MethodConfig, SkipCounter, tbcm_step
from .weighting import AdaptiveWeight


@dataclass
class DistillConfig:
    steps: int = 300
    prompts_per_step: int = 4
    lr: float = 1e-4
    weight_lr: float = 1e-2  # w_phi only tracks log L(t): it may move faster than the student
    adaptive_weight: bool = True  # False: w(t) frozen at 0 (docs/known-answer.md)
    text_max_length: int = 24
    seed: int = 0
    log_every: int = 10
    method: MethodConfig = field(default_factory=MethodConfig)


def read_prompts(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"prompt file not found: {p}")
    prompts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"prompt file {p} holds no prompts")
    return prompts


def encoder_fn(tokenizer, encoder, max_length: int):
    def encode(prompts: list[str]) -> Condition:
        e, m = encode_prompts(tokenizer, encoder, prompts, max_length)
        return {PROMPT_EMBEDS: e, PROMPT_MASK: m}

    return encode


def run_distill(teacher_dir: str | Path, prompts: list[str], black_latent: torch.Tensor | None, out: str | Path,
                cfg: DistillConfig, progress: bool = True) -> dict:
    """Distil and export; returns the training log (also written to out/train_log.json)."""
    if cfg.steps < 1 or cfg.prompts_per_step < 1:
        raise ValueError(f"distill.steps and distill.prompts_per_step must be >= 1, got {cfg.steps}, {cfg.prompts_per_step}")
    if not prompts:
        raise ValueError("distillation needs at least one prompt")
    if black_latent is not None and not torch.isfinite(black_latent).all():
        raise ValueError("black latent contains NaN or Inf")
    teacher_tr, encoder, tokenizer = load_pipeline_parts(teacher_dir)
    teacher_tr.requires_grad_(False)
    encode = encoder_fn(tokenizer, encoder, cfg.text_max_length)
    student_tr = student_from_teacher(teacher_tr, seed=cfg.seed).train()
    teacher, student = sana_denoiser(teacher_tr), SanaTrigFlowStudent(student_tr)
    weight = AdaptiveWeight(seed=cfg.seed).requires_grad_(cfg.adaptive_weight)
    groups = [{"params": list(student_tr.parameters()), "lr": cfg.lr}]
    if cfg.adaptive_weight:
        groups.append({"params": list(weight.parameters()), "lr": cfg.weight_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    params = [p for g_ in groups for p in g_["params"]]
    c = teacher_tr.config
    latent_shape = (c.in_channels, c.sample_size, c.sample_size)
    uncond = encode([""])
    rng = random.Random(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    skips, log, t0 = SkipCounter(), [], time.time()
    it = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"distill ({cfg.method.route_scheme} route)")
    for step in it:
        batch = [prompts[rng.randrange(len(prompts))] for _ in range(cfg.prompts_per_step)]
        res = tbcm_step(student, weight, opt, params, teacher, encode(batch), uncond, latent_shape, step, cfg.method, g,
                        black_latent=black_latent)
        skips.update(res)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            log.append({"step": step, "loss": res.loss, "grad_norm": res.grad_norm, "r": res.r, "skipped": res.skipped,
                        "dropped_prompts": res.n_dropped, **res.stats, "seconds": time.time() - t0})
            if progress:
                it.set_postfix(loss=res.loss, r=round(res.r, 3))
    info = {"steps": cfg.steps, "seconds": time.time() - t0, "skipped": skips.counts, "pairs_per_step":
            cfg.prompts_per_step * (cfg.method.route_steps - 1), "config": asdict(cfg), "curve": log}
    export_student(teacher_dir, student_tr.eval(), encoder, tokenizer, out, info)
    return info


def export_student(teacher_dir: str | Path, student_tr, encoder, tokenizer, out: str | Path, info: dict) -> Path:
    """Save a SanaSprintPipeline folder (student + the teacher's text encoder, tokenizer and VAE)."""
    from diffusers import AutoencoderDC, SanaSprintPipeline, SCMScheduler

    from .atomic import atomic_dir, write_json

    teacher_dir, out = Path(teacher_dir), Path(out)
    vae = AutoencoderDC.from_pretrained(teacher_dir / "vae")
    pipe = SanaSprintPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=vae, transformer=student_tr,
                              scheduler=SCMScheduler())
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(tmp)
        write_json(tmp / "train_log.json", info)
    return out


@torch.no_grad()
def black_latent(vae, resolution: int) -> torch.Tensor:
    """The VAE latent of an all-black image, times the scaling factor: [C, h, w] (§4.3, App. D).
    Black is -1 in the VAE's [-1, 1] input range."""
    x = -torch.ones(1, 3, resolution, resolution)
    return (vae.encode(x).latent * vae.config.scaling_factor)[0]
