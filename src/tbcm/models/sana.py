"""Sana (teacher) and Sana-Sprint (student) as TrigFlow denoisers, on diffusers' SanaTransformer2DModel.

The method only sees F(x / sigma_d, t, cond) (`tbcm.denoiser`). This module is the one place that
knows how diffusers' Sana pipelines call the transformer, so that our samplers and the released
pipelines give the same images. Conventions, read from diffusers 0.42 (method-notes §1, §4, §6, §8):

- Velocity sign. FlowMatchEulerDiscreteScheduler.step does x <- x + (sigma_next - sigma) * v on
  x_sigma = (1 - sigma) x0 + sigma * eps, so v = eps - x0 ("noise minus data"), the v of trigflow.py.
- Teacher time (SanaPipeline). The scheduler's timesteps are sigma * num_train_timesteps (1000) and
  the pipeline multiplies them by `transformer.config.timestep_scale` before the call; the
  transformer itself never reads `timestep_scale`. So the teacher's time embedding sees
  t_FM * 1000 * timestep_scale.
- Student time and guidance (SanaSprintPipeline, and diffusers' Sana-Sprint training script). The
  pipeline wraps the call in Eq. 5-7 itself (x_FM = x / sigma_d * sqrt(t_FM^2 + (1 - t_FM)^2), output
  mapped back to F), passes `timestep = t_FM` in [0, 1] (ignoring `timestep_scale`) and
  `guidance = scale * config.guidance_embeds_scale` (0.1, method-notes §1): exactly
  FlowMatchingAdapter around `SanaVelocity(student)`.
- Hence a student initialised from a teacher equals it only when the teacher's time embedding already
  reads t_FM in [0, 1], i.e. timestep_scale = 1 / num_train_timesteps (Sana-Sprint's dense-time
  teacher). `student_from_teacher` refuses any other teacher rather than build a student that starts
  far from it.

A condition here is {"prompt_embeds": [B, L, C], "prompt_attention_mask": [B, L]} plus, for a student,
"guidance": [B] (the raw CFG scale, e.g. 4.5; the 0.1 embedding scale is applied here).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from diffusers import SanaTransformer2DModel
from torch import nn

from ..denoiser import Condition, FlowMatchingAdapter
from ..regional_jvp import Regions

PROMPT_EMBEDS = "prompt_embeds"
PROMPT_MASK = "prompt_attention_mask"
GUIDANCE = "guidance"
NUM_TRAIN_TIMESTEPS = 1000  # FlowMatchEulerDiscreteScheduler's default, used by every Sana checkpoint


def pipeline_timestep_multiplier(transformer: SanaTransformer2DModel, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> float:
    """What the pipeline that runs this transformer multiplies t_FM by before the call.

    SanaSprintPipeline (guidance-embedding models): 1. SanaPipeline: num_train_timesteps * timestep_scale.
    """
    if transformer.config.guidance_embeds:
        return 1.0
    return float(num_train_timesteps) * float(transformer.config.timestep_scale)


class SanaVelocity(nn.Module):
    """v(x_FM, t_FM, cond) = eps - x0 from a SanaTransformer2DModel, called the way its pipeline calls it.

    `timestep_multiplier` defaults to `pipeline_timestep_multiplier`. Inputs are cast to the model's
    dtype and the output back to the input's, as the pipelines do.
    """

    def __init__(self, transformer: SanaTransformer2DModel, timestep_multiplier: float | None = None):
        super().__init__()
        self.transformer = transformer
        if timestep_multiplier is None:
            timestep_multiplier = pipeline_timestep_multiplier(transformer)
        self.timestep_multiplier = float(timestep_multiplier)

    def forward(self, x_fm: torch.Tensor, t_fm: torch.Tensor, cond: Condition) -> torch.Tensor:
        model = self.transformer
        dtype = model.dtype
        t_fm = torch.as_tensor(t_fm, device=x_fm.device)
        if t_fm.ndim == 0:
            t_fm = t_fm.expand(x_fm.shape[0])
        extra = {}
        if model.config.guidance_embeds:
            if GUIDANCE not in cond:
                raise KeyError("a guidance-embedding (student) Sana model needs cond['guidance'], the CFG scale [B]")
            extra["guidance"] = cond[GUIDANCE].to(device=x_fm.device, dtype=dtype) * model.config.guidance_embeds_scale
        out = model(
            x_fm.to(dtype),
            encoder_hidden_states=cond[PROMPT_EMBEDS].to(dtype),
            encoder_attention_mask=cond[PROMPT_MASK],
            timestep=t_fm * self.timestep_multiplier,
            return_dict=False,
            **extra,
        )[0]
        return out.to(x_fm.dtype)


def sana_denoiser(transformer: SanaTransformer2DModel) -> FlowMatchingAdapter:
    """F(x / sigma_d, t, cond) for a Sana teacher (SanaPipeline's time convention) or student (Sana-Sprint's)."""
    return FlowMatchingAdapter(SanaVelocity(transformer))


class SanaTrigFlowStudent(FlowMatchingAdapter):
    """The student's F, identical to what SanaSprintPipeline computes (its noise_pred before * sigma_d).

    Needs cond["guidance"]. Its parameters are the transformer's, so it can be optimised directly.
    """

    def __init__(self, transformer: SanaTransformer2DModel):
        if not transformer.config.guidance_embeds:
            raise ValueError("a Sana-Sprint student needs guidance_embeds=True (see student_from_teacher)")
        super().__init__(SanaVelocity(transformer, timestep_multiplier=1.0))

    @property
    def transformer(self) -> SanaTransformer2DModel:
        return self.velocity.transformer

    @property
    def jvp_regions(self) -> Regions:
        """The 28 (config.num_layers) blocks for `loss.compiled_directional_derivative`, compiled once: a block
        is called as block(hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask,
        timestep, height, width), and along (x_t, t) only the hidden states and the timestep modulation carry
        a tangent (the text embeddings and masks come from the prompt)."""
        return Regions(self.transformer, "transformer_blocks", dual=(0, 4))


def _teacher_key_to_student(key: str) -> str:
    # AdaLayerNormSingle nests the timestep MLP under `emb.`; SanaCombinedTimestepGuidanceEmbeddings does not.
    return key.replace("time_embed.emb.timestep_embedder.", "time_embed.timestep_embedder.", 1)


@torch.no_grad()
def student_from_teacher(
    teacher: SanaTransformer2DModel, seed: int = 0, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
) -> SanaTransformer2DModel:
    """A guidance-embedding copy of the teacher that equals it at init (method-notes §1, §5).

    All teacher weights are copied. The new guidance MLP (linear_1 -> SiLU -> linear_2) is added to
    the time embedding, so zeroing its last linear (weight and bias) makes it add exactly 0. linear_1
    keeps a random (seeded) init on purpose: diffusers' Sana-Sprint script zeroes both linears, and
    then the hidden activation is SiLU(0) = 0 for every scale, so linear_2.weight never receives a
    gradient and the embedding can only ever learn a guidance-independent bias.
    """
    cfg = teacher.config
    if cfg.guidance_embeds:
        raise ValueError("the teacher already has a guidance embedding")
    multiplier = pipeline_timestep_multiplier(teacher, num_train_timesteps)
    if not math.isclose(multiplier, 1.0, rel_tol=1e-6):
        raise ValueError(
            f"the teacher's time embedding reads t_FM * {multiplier:g} (timestep_scale={cfg.timestep_scale}), "
            "but SanaSprintPipeline feeds the student t_FM in [0, 1]; a student copied from it would not equal "
            f"it. Use a teacher with timestep_scale = 1/{num_train_timesteps} (Sana-Sprint's dense time embedding)."
        )
    student = SanaTransformer2DModel.from_config(cfg, guidance_embeds=True)
    if student.dtype != teacher.dtype or student.device != teacher.device:
        student.to(device=teacher.device, dtype=teacher.dtype)
    state = {_teacher_key_to_student(k): v for k, v in teacher.state_dict().items()}
    missing, unexpected = student.load_state_dict(state, strict=False)
    new_keys = {k for k in student.state_dict() if k.startswith("time_embed.guidance_embedder.")}
    if unexpected or set(missing) != new_keys:
        raise RuntimeError(f"teacher -> student weight mapping failed: missing {missing}, unexpected {unexpected}")
    embedder = student.time_embed.guidance_embedder
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(embedder.linear_1.in_features)  # nn.Linear's default init range
    for p in (embedder.linear_1.weight, embedder.linear_1.bias):
        p.copy_((torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
    embedder.linear_2.weight.zero_()
    embedder.linear_2.bias.zero_()
    student.train(teacher.training)
    return student


def tiny_sana_config(
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    in_channels: int = 8,
    sample_size: int = 8,
    caption_channels: int = 64,
    patch_size: int = 1,
    sincos_positions: bool = True,
) -> dict:
    """Keyword arguments for a tiny SanaTransformer2DModel teacher (constructs in milliseconds).

    Sana-Sprint's layout (method-notes §8) scaled down: cross-attention width = hidden, mlp_ratio 2.5,
    qk_norm rms_norm_across_heads. timestep_scale = 1/1000 so that SanaPipeline's 0-1000 timesteps
    reach the time embedding as t_FM in [0, 1], the convention SanaSprintPipeline feeds the student
    (see the module docstring); sincos positions as in the CPU prototype (environment-notes).
    """
    if hidden % heads:
        raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
    return dict(
        in_channels=in_channels,
        out_channels=in_channels,
        num_attention_heads=heads,
        attention_head_dim=hidden // heads,
        num_layers=layers,
        num_cross_attention_heads=heads,
        cross_attention_head_dim=hidden // heads,
        cross_attention_dim=hidden,
        caption_channels=caption_channels,
        mlp_ratio=2.5,
        sample_size=sample_size,
        patch_size=patch_size,
        interpolation_scale=1.0 if sincos_positions else None,
        qk_norm="rms_norm_across_heads",
        timestep_scale=1.0 / NUM_TRAIN_TIMESTEPS,
    )


def tokenize_prompts(tokenizer, prompts: Sequence[str], max_length: int, prefix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) [B, L] as SanaPipeline.encode_prompt tokenizes (right padding to L).

    Prompts are lower-cased and stripped (SanaPipeline._text_preprocessing, clean_caption=False) before
    `prefix` (the joined complex human instruction) is put in front of them, which keeps its case."""
    texts = [prefix + p.lower().strip() for p in prompts]
    tokenizer.padding_side = "right"
    tokens = tokenizer(texts, padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True,
                       return_tensors="pt")
    return tokens.input_ids, tokens.attention_mask


def encoder_tokens(tokenizer, max_length: int, instruction: Sequence[str] | None = None) -> int:
    """The sequence the text encoder reads: L tokens, or instruction tokens + L - 2 (SanaPipeline's max_length_all)."""
    return len(tokenizer.encode("\n".join(instruction))) + max_length - 2 if instruction else max_length


@torch.no_grad()
def encode_prompts(
    tokenizer, encoder, prompts: Sequence[str], max_length: int, instruction: Sequence[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt_embeds [B, L, C], prompt_attention_mask [B, L]) exactly as SanaPipeline.encode_prompt gives them.

    With `instruction` (Sana's complex human instruction, a list of lines): the lines joined by newlines
    before each prompt, the whole tokenised at (instruction tokens + L - 2), and the embeddings of token 0
    and of the last L - 1 positions kept (the pipeline's select_index): the encoder reads the instruction,
    the denoiser sees L tokens. Without it (the pipeline's negative prompt, or a model trained without
    one), L tokens, where the pipeline's selection is the identity.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    prefix, length = "", max_length
    if instruction:
        prefix = "\n".join(instruction)
        length = encoder_tokens(tokenizer, max_length, instruction)
    ids, mask = tokenize_prompts(tokenizer, prompts, length, prefix)
    device = next(encoder.parameters()).device
    mask = mask.to(device)
    embeds = encoder(ids.to(device), attention_mask=mask)[0]
    mask = mask.to(embeds.device)  # a caller's call-time offload hook (diffusers' model CPU offload) may move it
    if instruction:
        keep = [0] + list(range(length - max_length + 1, length))
        embeds, mask = embeds[:, keep], mask[:, keep]
    return embeds, mask


def complex_human_instruction() -> list[str]:
    """Sana's default instruction prefix (SanaPipeline and SanaSprintPipeline share it), read from the
    installed diffusers pipeline."""
    import inspect

    from diffusers import SanaSprintPipeline

    return list(inspect.signature(SanaSprintPipeline.__call__).parameters["complex_human_instruction"].default)


WORLD_PROMPT_TOKENS = 24  # the embedded world's captions are at most ~16 words
SANA_PROMPT_TOKENS = 300  # SanaPipeline's and SanaSprintPipeline's max_sequence_length


def prompt_encoding(source: str) -> tuple[int, tuple[str, ...] | None]:
    """(prompt tokens, instruction) for params.yaml's `source`, used by the distillation and the evaluation
    alike: the world's text encoder reads 24 plain tokens; a Sana teacher's Gemma-2 reads Sana's complex
    human instruction and 300 prompt tokens, as its pipelines encode by default (method-notes §8)."""
    if source == "world":
        return WORLD_PROMPT_TOKENS, None
    if source == "sana":
        return SANA_PROMPT_TOKENS, tuple(complex_human_instruction())
    raise ValueError(f"source must be 'world' or 'sana', got {source!r}")


class PromptEncoder:
    """A teacher folder's text encoder as its pipeline runs it: `encoder(prompts)` the condition of each
    prompt (with the instruction, if any), `encoder.uncond(n)` the empty prompt's, which SanaPipeline
    encodes without the instruction (its negative branch) for classifier-free guidance."""

    def __init__(self, tokenizer, encoder, max_length: int, instruction: Sequence[str] | None = None):
        self.tokenizer, self.encoder, self.max_length = tokenizer, encoder, int(max_length)
        self.instruction = tuple(instruction) if instruction else None

    def __call__(self, prompts: Sequence[str]) -> dict:
        e, m = encode_prompts(self.tokenizer, self.encoder, prompts, self.max_length, self.instruction)
        return {PROMPT_EMBEDS: e, PROMPT_MASK: m}

    def uncond(self, n: int = 1) -> dict:
        e, m = encode_prompts(self.tokenizer, self.encoder, [""] * n, self.max_length)
        return {PROMPT_EMBEDS: e, PROMPT_MASK: m}


def load_pipeline_parts(folder):
    """(transformer, text_encoder, tokenizer) of a saved SanaPipeline or SanaSprintPipeline folder, in eval
    mode, without loading its VAE; a folder lacking one of them stops here, naming it."""
    from pathlib import Path

    from transformers import AutoModel, AutoTokenizer

    folder = Path(folder)
    for sub in ("transformer", "text_encoder", "tokenizer"):
        if not (folder / sub).is_dir():
            raise ValueError(f"{folder} has no '{sub}' (expected a diffusers SanaPipeline or SanaSprintPipeline folder)")
    transformer = SanaTransformer2DModel.from_pretrained(folder / "transformer").eval()
    encoder = AutoModel.from_pretrained(folder / "text_encoder").eval().requires_grad_(False)
    return transformer, encoder, AutoTokenizer.from_pretrained(folder / "tokenizer")
