"""The embedded world's VAE: a tiny `diffusers.AutoencoderDC` (Sana's DC-AE class) trained on the
world's train images, with its `scaling_factor` set from the latent statistics.

TrigFlow assumes data of std sigma_d (0.5), and TrigFlow x0 = sigma_d * (scaled latent) (see
docs/design.md "Units"), so the scaling factor makes the scaled latents unit-variance:
scaling_factor = 1 / std(raw latents) over the train split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderDC

from .budget import StepBudget


@dataclass
class AutoencoderConfig:
    latent_channels: int = 8
    channels: tuple[int, ...] = (32, 64, 128)  # 3 stages: 32 px -> 8 x 8 latents
    layers_per_block: int = 1
    lr: float = 1e-3
    batch_size: int = 64
    steps: int = 1100
    seed: int = 0


def build_autoencoder(cfg: AutoencoderConfig) -> AutoencoderDC:
    """ResBlocks only (no attention), pixel (un)shuffle up/down sampling, as DC-AE f32c32 minus depth."""
    n = len(cfg.channels)
    torch.manual_seed(cfg.seed)
    return AutoencoderDC(
        in_channels=3,
        latent_channels=cfg.latent_channels,
        encoder_block_types="ResBlock",
        decoder_block_types="ResBlock",
        encoder_block_out_channels=tuple(cfg.channels),
        decoder_block_out_channels=tuple(cfg.channels),
        encoder_layers_per_block=(cfg.layers_per_block,) * n,
        decoder_layers_per_block=(cfg.layers_per_block,) * n,
        encoder_qkv_multiscales=((),) * n,
        decoder_qkv_multiscales=((),) * n,
        scaling_factor=1.0,
    )


def to_model_space(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1], the range diffusers' VAEs use."""
    return images_uint8.permute(0, 3, 1, 2).float() / 127.5 - 1


def psnr(vae: AutoencoderDC, images_uint8: torch.Tensor, batch_size: int = 256) -> float:
    """Reconstruction PSNR in dB over [0, 255] images (mean over images of per-image PSNR)."""
    vals = []
    vae.eval()
    with torch.no_grad():
        for i in range(0, len(images_uint8), batch_size):
            x = to_model_space(images_uint8[i : i + batch_size])
            rec = vae.decode(vae.encode(x).latent).sample.clamp(-1, 1)
            mse = ((rec - x) / 2).pow(2).flatten(1).mean(1)  # on [0, 1]
            vals.append(-10 * torch.log10(mse.clamp_min(1e-10)))
    return float(torch.cat(vals).mean())


@torch.no_grad()
def latent_std(vae: AutoencoderDC, images_uint8: torch.Tensor, batch_size: int = 256) -> float:
    vae.eval()
    lat = torch.cat([vae.encode(to_model_space(images_uint8[i : i + batch_size])).latent for i in range(0, len(images_uint8), batch_size)])
    return float(lat.std())


def train_autoencoder(images_uint8: torch.Tensor, cfg: AutoencoderConfig, progress: bool = True):
    """Train on uint8 [N, H, W, 3] by MSE + L1 in pixel space; returns (vae, log dict).

    Trains cfg.steps steps, then sets `scaling_factor` = 1 / latent std.
    """
    if len(images_uint8) == 0:
        raise ValueError("no training images for the autoencoder")
    vae = build_autoencoder(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    budget = StepBudget("autoencoder", cfg.steps, progress)
    vae.train()
    while budget.running():
        budget.set_lr(opt, cfg.lr)
        idx = torch.randint(len(images_uint8), (cfg.batch_size,), generator=g)
        x = to_model_space(images_uint8[idx])
        rec = vae.decode(vae.encode(x).latent).sample
        loss = (rec - x).pow(2).mean() + 0.1 * (rec - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        budget.tick(loss.item())
    std = latent_std(vae, images_uint8[: min(len(images_uint8), 4096)])
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae.eval(), {"steps": budget.step, "seconds": budget.elapsed, "final_loss": budget.last_loss, "latent_std": std}
