"""The Sana-Sprint 0.6B stack's shapes, to build it with random weights (no download), and a tiny stand-in.

Compute and memory do not depend on weight values, so a cost benchmark can run the real architecture
from configs alone (method-notes §8, §9). Values read from diffusers 0.42 (`SanaTransformer2DModel`,
`AutoencoderDC`, `scripts/convert_sana_to_diffusers.py` for "SanaSprint_600M_P1_D28",
`scripts/convert_dcae_to_diffusers.py` for "dc-ae-f32c32-sana-1.0") and transformers 5
(`Gemma2Config()`'s defaults are gemma-2-2b's):

- transformer: 28 layers, 36 heads x 32 (hidden 1152), cross-attention 16 x 72, caption channels 2304,
  mlp_ratio 2.5, patch 1, no positional embedding at 1024 px (interpolation_scale None),
  attention_bias False, qk_norm rms_norm_across_heads; latents [32, 32, 32] at 1024 px;
- text encoder: Gemma-2-2B's decoder stack (`Gemma2Model`, 26 layers, hidden 2304), 300 prompt tokens
  after Sana's complex-human-instruction prefix, which the pipeline encodes with the prompt;
- DC-AE f32c32: 6 stages (128, 256, 512, 512, 1024, 1024), ResBlock x 3 then EfficientViT x 3 with
  multi-scale 5 attention, conv downsampling, scaling factor 0.41407.

`timestep_scale` is 1/1000 (a dense-time teacher) so that `models.sana.student_from_teacher` accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .sana import (GUIDANCE, NUM_TRAIN_TIMESTEPS, PROMPT_EMBEDS, PROMPT_MASK, complex_human_instruction,
                   tiny_sana_config)

MAX_SEQUENCE_LENGTH = 300  # Sana's prompt tokens (after the instruction prefix is cut off again)


def sana_sprint_0p6b_config() -> dict:
    """SanaTransformer2DModel kwargs of the Sana-Sprint 0.6B teacher at 1024 px (no guidance embedding)."""
    return dict(
        in_channels=32,
        out_channels=32,
        num_attention_heads=36,
        attention_head_dim=32,
        num_layers=28,
        num_cross_attention_heads=16,
        cross_attention_head_dim=72,
        cross_attention_dim=1152,
        caption_channels=2304,
        mlp_ratio=2.5,
        attention_bias=False,
        sample_size=32,
        patch_size=1,
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        interpolation_scale=None,
        qk_norm="rms_norm_across_heads",
        timestep_scale=1.0 / NUM_TRAIN_TIMESTEPS,
    )


def gemma2_2b_config() -> dict:
    """transformers.Gemma2Config kwargs of gemma-2-2b(-it), spelled out rather than trusted to defaults."""
    return dict(
        vocab_size=256000,
        hidden_size=2304,
        intermediate_size=9216,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=8192,
        rms_norm_eps=1e-6,
        query_pre_attn_scalar=256,
        sliding_window=4096,
        final_logit_softcapping=30.0,
        attn_logit_softcapping=50.0,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )


def dc_ae_f32c32_config() -> dict:
    """diffusers.AutoencoderDC kwargs of dc-ae-f32c32-sana-1.0 (32x spatial compression, 32 channels)."""
    blocks = ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3
    channels = (128, 256, 512, 512, 1024, 1024)
    return dict(
        in_channels=3,
        latent_channels=32,
        attention_head_dim=32,
        encoder_block_types=blocks,
        decoder_block_types=blocks,
        encoder_block_out_channels=channels,
        decoder_block_out_channels=channels,
        encoder_layers_per_block=(2, 2, 2, 3, 3, 3),
        decoder_layers_per_block=(3, 3, 3, 3, 3, 3),
        encoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
        decoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )


@dataclass
class StackShapes:
    """Everything a cost measurement builds: transformer, text encoder, autoencoder, image side, tokens."""

    name: str
    transformer: dict
    text_encoder: dict
    vae: dict
    resolution: int
    prompt_tokens: int  # embeddings the transformer sees per prompt
    instruction: list[str] = field(default_factory=list)  # prefix encoded with every prompt (Sana's CHI)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.transformer["sample_size"] * self.transformer["patch_size"]
        return (self.transformer["in_channels"], side, side)


def sana_sprint_0p6b_shapes() -> StackShapes:
    return StackShapes("Sana-Sprint 0.6B, 1024 px", sana_sprint_0p6b_config(), gemma2_2b_config(),
                       dc_ae_f32c32_config(), resolution=1024, prompt_tokens=MAX_SEQUENCE_LENGTH,
                       instruction=complex_human_instruction())


def tiny_shapes() -> StackShapes:
    """The same classes and block types, small enough for a CPU test (32 px, 4x compression)."""
    blocks = ("ResBlock", "ResBlock", "EfficientViTBlock")
    vae = dict(in_channels=3, latent_channels=8, attention_head_dim=8, encoder_block_types=blocks,
               decoder_block_types=blocks, encoder_block_out_channels=(8, 16, 16),
               decoder_block_out_channels=(8, 16, 16), encoder_layers_per_block=(1, 1, 1),
               decoder_layers_per_block=(1, 1, 1), encoder_qkv_multiscales=((), (), (5,)),
               decoder_qkv_multiscales=((), (), (5,)), downsample_block_type="conv",
               upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu",
               scaling_factor=0.5)
    text = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, max_position_embeddings=64,
                sliding_window=64, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    transformer = tiny_sana_config(hidden=32, layers=2, heads=2, in_channels=8, sample_size=8, caption_channels=32)
    return StackShapes("tiny (CPU test)", transformer, text, vae, resolution=32, prompt_tokens=12,
                       instruction=["Describe:"])


def random_student_inputs(cfg: dict, batch: int, side: int, text: int, device, seed: int = 1):
    """Random inputs of a student built from transformer kwargs `cfg`, for the cost benchmarks: latents x,
    TrigFlow times t in (0.05, 1.45), an ODE direction v (each [batch, C, side, side] or [batch]), and the
    condition (random prompt embeddings of `text` tokens, a full mask, guidance 4.5)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg["in_channels"], side, side, generator=g).to(device)
    t = (torch.rand(batch, generator=g) * 1.4 + 0.05).to(device)
    v = torch.randn(x.shape, generator=g).to(device)
    cond = {PROMPT_EMBEDS: torch.randn(batch, text, cfg["caption_channels"], generator=g).to(device),
            PROMPT_MASK: torch.ones(batch, text, dtype=torch.long, device=device),
            GUIDANCE: torch.full((batch,), 4.5, device=device)}
    return (x, t, v), cond
