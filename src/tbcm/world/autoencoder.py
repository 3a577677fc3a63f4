"""The embedded world's VAE: a tiny `diffusers.AutoencoderDC` (Sana's DC-AE class) trained on the
world's train images, with its `scaling_factor` set from the latent statistics.

TrigFlow assumes data of std sigma_d (0.5), and TrigFlow x0 = sigma_d * (scaled latent) (see
docs/design.md "Units"), so the scaling factor makes the scaled latents unit-variance:
scaling_factor = 1 / std(raw latents) over the train split.

A second phase then makes the decoder robust to imperfect latents (`decoder_noise`): the latents a
guided sampler draws are not the encoder's, and the decoder only ever saw the encoder's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    foreground_weight: float = 10.0  # extra loss weight on the shape and its 1-px rim (foreground_weights)
    # Decoder phase (train_autoencoder): the encoder frozen, the decoder alone trains `decoder_steps` more
    # on latents + u * decoder_noise * std * eps (u ~ U(0, 1) per image, std that of the latents).
    decoder_steps: int = 0
    decoder_noise: float = 0.0
    decoder_lr: float = 5e-4
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


def from_model_space(x: torch.Tensor) -> torch.Tensor:
    """float [N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] (to_model_space's inverse, rounded)."""
    return ((x.float() + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


@torch.no_grad()
def reconstruct(vae: AutoencoderDC, images_uint8: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Encode and decode (in whatever mode `vae` is): float32 [N, 3, H, W] in [-1, 1]."""
    out = []
    for i in range(0, len(images_uint8), batch_size):
        x = to_model_space(images_uint8[i : i + batch_size]).to(vae.dtype)
        out.append(vae.decode(vae.encode(x).latent).sample.clamp(-1, 1).float())
    return torch.cat(out)


def psnr(vae: AutoencoderDC, images_uint8: torch.Tensor, batch_size: int = 256) -> float:
    """Reconstruction PSNR in dB over [0, 255] images (mean over images of per-image PSNR)."""
    vae.eval()
    x = to_model_space(images_uint8)
    mse = ((reconstruct(vae, images_uint8, batch_size) - x) / 2).pow(2).flatten(1).mean(1)  # on [0, 1]
    return float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())


@torch.no_grad()
def latent_std(vae: AutoencoderDC, images_uint8: torch.Tensor, batch_size: int = 256) -> float:
    vae.eval()
    lat = torch.cat([vae.encode(to_model_space(images_uint8[i : i + batch_size])).latent for i in range(0, len(images_uint8), batch_size)])
    return float(lat.std())


def foreground_weights(x: torch.Tensor, alpha: float, threshold: float = 0.15) -> torch.Tensor:
    """Per-pixel loss weights [B, 1, H, W]: 1 + alpha on the shape and a 1-px rim around it, 1 elsewhere.

    Why: a world image is a plain background with one shape; a small shape covers ~7% of a 32-px image,
    so a plain pixel loss spends the tiny VAE on the flat background and rounds small shapes into blobs.
    Measured (docs/world-budget.md, session 5): the judge reads the shape of plain-loss reconstructions
    of held-out images 78% right (small shapes 62%; originals 99.7%), which caps any teacher trained in
    that latent space; alpha = 10 lifts it to 94% (small 91%) and held-out PSNR from 29.0 to 32.3 dB at
    the same steps. The background is the per-channel median of the 1-px border (every shape stays
    inside the image, so the border is background); x is in [-1, 1].
    """
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    shape = ((x - background).abs().sum(1, keepdim=True) > threshold).to(x.dtype)
    return 1 + alpha * F.max_pool2d(shape, kernel_size=3, stride=1, padding=1)


def _reconstruction_loss(rec: torch.Tensor, x: torch.Tensor, foreground_weight: float) -> torch.Tensor:
    w = foreground_weights(x, foreground_weight)
    return (w * ((rec - x).pow(2) + 0.1 * (rec - x).abs())).mean() / w.mean()


def train_autoencoder(images_uint8: torch.Tensor, cfg: AutoencoderConfig, progress: bool = True):
    """Train on uint8 [N, H, W, 3] by MSE + L1 in pixel space, weighted towards the shape
    (`foreground_weights`, normalised by the mean weight); returns (vae, log dict).

    Trains cfg.steps steps, sets `scaling_factor` = 1 / latent std, then runs the decoder phase
    (`train_decoder_on_noisy_latents`) when cfg.decoder_steps > 0.
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
        loss = _reconstruction_loss(vae.decode(vae.encode(x).latent).sample, x, cfg.foreground_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        budget.tick(loss.item())
    std = latent_std(vae, images_uint8[: min(len(images_uint8), 4096)])
    vae.register_to_config(scaling_factor=1.0 / std)
    log = {"steps": budget.step, "seconds": budget.elapsed, "final_loss": budget.last_loss, "latent_std": std}
    if cfg.decoder_steps > 0:
        log["decoder_phase"] = train_decoder_on_noisy_latents(vae, images_uint8, cfg, std, progress)
    return vae.eval(), log


def train_decoder_on_noisy_latents(vae: AutoencoderDC, images_uint8: torch.Tensor, cfg: AutoencoderConfig,
                                   std: float, progress: bool = True) -> dict:
    """Fine-tune the decoder alone (the encoder, hence the latent space and its scaling, stays as is)
    on latents + u * cfg.decoder_noise * std * eps, u ~ U(0, 1) per image, eps ~ N(0, I).

    Why: a teacher sampled with CFG 4.5 in this world overshoots its latents into colour fringes and
    halos that a decoder trained on encoder latents renders faithfully, and the judge reads many of
    them as another shape. Measured (docs/world-budget.md, session 7, same teacher and latents, 500
    held-out prompts spread over the split): shape read right at CFG 4.5 76% with the plain decoder,
    78% after 400 more clean decoder steps, 84% / 87% with noise 0.3 / 0.6. The price is detail the
    noise masks: real images through the VAE read 94% -> 91% / 85% (small shapes round off), PSNR
    32.3 -> 32.9 / 31.7 dB, and CFG 2 samples lose 1 / 5 points (3 / 6 on the pipeline's 500 prompts,
    against the 400 clean steps).
    """
    opt = torch.optim.AdamW(vae.decoder.parameters(), lr=cfg.decoder_lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    budget = StepBudget("decoder", cfg.decoder_steps, progress)
    vae.train()
    try:
        for p in vae.encoder.parameters():
            p.requires_grad_(False)
        while budget.running():
            budget.set_lr(opt, cfg.decoder_lr, warmup_steps=20)
            idx = torch.randint(len(images_uint8), (cfg.batch_size,), generator=g)
            x = to_model_space(images_uint8[idx])
            with torch.no_grad():
                z = vae.encode(x).latent
            u = torch.rand(len(z), 1, 1, 1, generator=g)
            z = z + u * cfg.decoder_noise * std * torch.randn(z.shape, generator=g)
            loss = _reconstruction_loss(vae.decode(z).sample, x, cfg.foreground_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            budget.tick(loss.item())
    finally:
        for p in vae.encoder.parameters():
            p.requires_grad_(True)
    vae.eval()
    return {"steps": budget.step, "seconds": budget.elapsed, "final_loss": budget.last_loss,
            "noise": cfg.decoder_noise}
