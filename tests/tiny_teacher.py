"""A tiny SanaPipeline teacher folder for distillation tests (builds in about a second, offline)."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ["a", "red", "green", "blue", "circle", "square", "star", "on", "background", "small", "big", "."]
PROMPTS = ["a red circle on a blue background", "a small green square", "a big blue star",
           "a green circle on a red background", "a small red star", "a big green square on a blue background"]


def tiny_vae():
    from diffusers import AutoencoderDC

    return AutoencoderDC(
        in_channels=3, latent_channels=8, encoder_block_types="ResBlock", decoder_block_types="ResBlock",
        encoder_block_out_channels=(8, 16, 16), decoder_block_out_channels=(8, 16, 16),
        encoder_layers_per_block=(1, 1, 1), decoder_layers_per_block=(1, 1, 1),
        encoder_qkv_multiscales=((), (), ()), decoder_qkv_multiscales=((), (), ()), scaling_factor=0.5,
    )


def build_tiny_teacher(folder: Path, sample_size: int = 4) -> Path:
    """Save a SanaPipeline (tiny Gemma-2 encoder, word tokenizer, 1-layer Sana transformer, DC-AE) to `folder`."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel

    from tbcm.models.sana import tiny_sana_config
    from tbcm.world.text import build_text_encoder, build_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tokenizer = build_tokenizer(WORDS)
        encoder = build_text_encoder(len(tokenizer), hidden=32, layers=1, seed=0)
        teacher = SanaTransformer2DModel(**tiny_sana_config(hidden=32, layers=1, heads=1, sample_size=sample_size,
                                                            caption_channels=32)).eval()
        vae = tiny_vae().eval()
    SanaPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=vae, transformer=teacher,
                 scheduler=FlowMatchEulerDiscreteScheduler(shift=2.5)).save_pretrained(folder)
    return folder
