"""Generating evaluation images from a saved diffusers folder: a SanaPipeline teacher (N-step ODE
sampling with CFG along the Reference Route) or a SanaSprintPipeline student (consistency sampling).

Sampling goes through the project's own samplers on the same denoisers as training (they agree with
diffusers' pipelines to float precision, tests/test_sana_adapter.py) so that the noise of each prompt
is a function of (seed, prompt index) alone, whatever the batch size: seed s, prompt i draws its
initial latent from torch.Generator().manual_seed(s * 1_000_003 + i).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.sana import (GUIDANCE, PROMPT_EMBEDS, PROMPT_MASK, SanaTrigFlowStudent, encode_prompts, load_pipeline_parts,
                          sana_denoiser)
from ..sampler import consistency_sample, consistency_times, teacher_sample
from ..trigflow import SIGMA_DATA


@dataclass
class Generator:
    kind: str  # "teacher" | "student"
    denoiser: object
    tokenizer: object
    encoder: object
    vae: object
    latent_shape: tuple
    text_max_length: int = 24

    def encode(self, prompts):
        e, m = encode_prompts(self.tokenizer, self.encoder, list(prompts), self.text_max_length)
        return {PROMPT_EMBEDS: e, PROMPT_MASK: m}


def load_generator(folder: str | Path, text_max_length: int = 24) -> Generator:
    from diffusers import AutoencoderDC

    folder = Path(folder)
    index = folder / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{folder} is not a diffusers pipeline folder (no model_index.json)")
    cls = json.loads(index.read_text())["_class_name"]
    tr, encoder, tokenizer = load_pipeline_parts(folder)
    if cls == "SanaPipeline":
        kind, den = "teacher", sana_denoiser(tr)
    elif cls == "SanaSprintPipeline":
        kind, den = "student", SanaTrigFlowStudent(tr)
    else:
        raise ValueError(f"{folder}: unsupported pipeline class {cls} (expected SanaPipeline or SanaSprintPipeline)")
    c = tr.config
    return Generator(kind, den, tokenizer, encoder, AutoencoderDC.from_pretrained(folder / "vae").eval(),
                     (c.in_channels, c.sample_size, c.sample_size), text_max_length)


def prompt_noise(seed: int, indices, shape) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed * 1_000_003 + int(i)))
                        for i in indices])


@torch.no_grad()
def generate(gen: Generator, prompts: list[str], indices: list[int], steps: int, guidance: float = 4.5,
             seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """uint8 [N, H, W, 3] images for `prompts` (with their global indices, which fix the noise)."""
    out = []
    uncond = gen.encode([""]) if gen.kind == "teacher" else None
    for i in range(0, len(prompts), batch_size):
        p, idx = prompts[i : i + batch_size], indices[i : i + batch_size]
        cond = gen.encode(p)
        noise = prompt_noise(seed, idx, gen.latent_shape) * SIGMA_DATA
        if gen.kind == "teacher":
            x0 = teacher_sample(gen.denoiser, cond, uncond, noise, guidance, steps)
        else:
            cond[GUIDANCE] = torch.full((len(p),), float(guidance))
            g = torch.Generator().manual_seed(seed * 7919 + i)
            x0 = consistency_sample(gen.denoiser, cond, noise, consistency_times(steps), g)
        lat = x0 / SIGMA_DATA / gen.vae.config.scaling_factor
        img = gen.vae.decode(lat.to(next(gen.vae.parameters()).dtype)).sample.clamp(-1, 1)
        out.append(((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1))
    return torch.cat(out)
