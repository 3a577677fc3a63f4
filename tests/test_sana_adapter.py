"""The Sana adapters against diffusers' own pipelines, on tiny offline components.

What must hold for the method to be run on Sana and its results served by diffusers:
- our text encoding == SanaPipeline.encode_prompt;
- our teacher sampler on FlowMatchingAdapter(SanaVelocity(teacher)) == SanaPipeline (flow-Euler with
  CFG is DDIM, and so is the exact TrigFlow step of Eq. 9, so the two agree to float precision);
- the student made from the teacher equals it at init, and its guidance embedding can learn;
- our consistency sampler on the student == SanaSprintPipeline for the same noise;
- forward-mode AD goes through the student (math SDPA backend).
"""

from __future__ import annotations

import copy
import math

import dataclasses

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from diffusers import (
    AutoencoderDC,
    FlowMatchEulerDiscreteScheduler,
    SanaPipeline,
    SanaSprintPipeline,
    SanaTransformer2DModel,
    SCMScheduler,
)

from tbcm import trigflow
from tbcm.denoiser import FlowMatchingAdapter
from tbcm.loss import directional_derivative
from tbcm.models.sana import (
    SanaTrigFlowStudent,
    SanaVelocity,
    sana_denoiser,
    student_from_teacher,
    tiny_sana_config,
)
from tbcm.sampler import consistency_sample, consistency_times, teacher_sample
from tbcm.models.sana import encode_prompts
from tbcm.world.text import build_text_encoder, build_tokenizer

SD = trigflow.SIGMA_DATA
MAX_LEN = 12
PROMPTS = ["A red circle on a blue background", "a small green square."]
WORDS = ["a", "red", "green", "blue", "circle", "square", "on", "background", "small", "big", "."]
PX = 32  # image side; the tiny DC-AE compresses 4x, so latents are [B, 8, 8, 8]
COMMON = dict(height=PX, width=PX, use_resolution_binning=False, complex_human_instruction=None,
              max_sequence_length=MAX_LEN)


def tiny_vae() -> AutoencoderDC:
    return AutoencoderDC(
        in_channels=3,
        latent_channels=8,
        encoder_block_types="ResBlock",
        decoder_block_types="ResBlock",
        encoder_block_out_channels=(16, 32, 64),
        decoder_block_out_channels=(16, 32, 64),
        encoder_layers_per_block=(1, 1, 1),
        decoder_layers_per_block=(1, 1, 1),
        encoder_qkv_multiscales=((), (), ()),
        decoder_qkv_multiscales=((), (), ()),
        scaling_factor=0.5,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tokenizer = build_tokenizer(WORDS)
        encoder = build_text_encoder(len(tokenizer), hidden=64, layers=2, seed=0)
        teacher = SanaTransformer2DModel(**tiny_sana_config()).eval()
        vae = tiny_vae().eval()
    student = student_from_teacher(teacher).eval()
    with torch.no_grad():  # give the student's guidance embedding something to do in the pipeline tests
        lin2 = student.time_embed.guidance_embedder.linear_2
        lin2.weight.copy_(0.05 * torch.randn(lin2.weight.shape, generator=torch.Generator().manual_seed(1)))
    folder = tmp_path_factory.mktemp("sana")
    pipe = SanaPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=vae, transformer=teacher,
                        scheduler=FlowMatchEulerDiscreteScheduler(shift=2.5))
    pipe.save_pretrained(folder / "teacher")
    sprint = SanaSprintPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=vae, transformer=student,
                                scheduler=SCMScheduler())
    sprint.save_pretrained(folder / "student")
    loaded = SanaPipeline.from_pretrained(folder / "teacher")
    loaded_sprint = SanaSprintPipeline.from_pretrained(folder / "student")
    for p in (pipe, sprint, loaded, loaded_sprint):
        p.set_progress_bar_config(disable=True)
    return dict(tokenizer=tokenizer, encoder=encoder, teacher=teacher, student=student, pipe=pipe,
                sprint=sprint, loaded=loaded, loaded_sprint=loaded_sprint)


def cond_of(world, prompts):
    embeds, mask = encode_prompts(world["tokenizer"], world["encoder"], prompts, MAX_LEN)
    return {"prompt_embeds": embeds, "prompt_attention_mask": mask}


def eps(seed, batch=2):
    return torch.randn(batch, 8, PX // 4, PX // 4, generator=torch.Generator().manual_seed(seed))


def test_tokenizer_and_encoder_match_sana_pipeline(world):
    tok = world["tokenizer"]
    ids = tok("A red, circle!").input_ids
    assert ids[0] == tok.bos_token_id and tok.convert_ids_to_tokens(ids[1:]) == ["a", "red", "<unk>", "circle", "<unk>"]
    ours = encode_prompts(tok, world["encoder"], PROMPTS, MAX_LEN)
    theirs = world["loaded"].encode_prompt(PROMPTS, do_classifier_free_guidance=True, negative_prompt="",
                                           max_sequence_length=MAX_LEN, complex_human_instruction=None)
    uncond = encode_prompts(tok, world["encoder"], [""] * 2, MAX_LEN)
    for a, b in zip((*ours, *uncond), theirs):
        assert a.shape == b.shape and torch.equal(a, b)
    assert ours[1][:, 0].all() and uncond[1].sum(1).tolist() == [1, 1]  # <bos>: never an all-masked prompt


def test_sana_pipeline_saves_loads_and_samples(world):
    kw = dict(prompt=PROMPTS, num_inference_steps=4, guidance_scale=4.5, output_type="pt", **COMMON)
    a = world["pipe"](generator=torch.Generator().manual_seed(0), **kw).images
    b = world["loaded"](generator=torch.Generator().manual_seed(0), **kw).images
    assert a.shape == (2, 3, PX, PX) and torch.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)


def test_teacher_sampler_matches_sana_pipeline(world):
    """Flow-Euler with v = eps - x0 is DDIM in FM space; Eq. 9 is DDIM in TrigFlow space; the Reference
    Route is the scheduler's shifted sigmas: same final latents (ours / sigma_d = pipeline's)."""
    noise = eps(3)
    theirs = world["loaded"](prompt=PROMPTS, num_inference_steps=4, guidance_scale=4.5, latents=noise,
                             output_type="latent", **COMMON).images
    teacher = FlowMatchingAdapter(SanaVelocity(world["teacher"]))
    ours = teacher_sample(teacher, cond_of(world, PROMPTS), cond_of(world, [""]), SD * noise, 4.5, steps=4, shift=2.5) / SD
    assert theirs.abs().max() > 0.1
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_evaluation_samples_the_teacher_with_its_own_scheduler_shift(world, tmp_path):
    """tbcm's evaluation generator reads the teacher folder's scheduler shift and draws the same images as
    SanaPipeline with that scheduler and the same initial latents (a shift other than the default 2.5)."""
    from tbcm.eval.generate import generate, load_generator, prompt_noise, scheduler_shift

    p = world["pipe"]
    SanaPipeline(tokenizer=p.tokenizer, text_encoder=p.text_encoder, vae=p.vae, transformer=p.transformer,
                 scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0)).save_pretrained(tmp_path / "t")
    gen = load_generator(tmp_path / "t", text_max_length=MAX_LEN, device="cpu")
    assert gen.shift == scheduler_shift(tmp_path / "t") == 5.0
    ours = generate(gen, PROMPTS, [0, 1], steps=4, guidance=4.5).float()
    pipe = SanaPipeline.from_pretrained(tmp_path / "t")
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt=PROMPTS, num_inference_steps=4, guidance_scale=4.5, output_type="pt",
                  latents=prompt_noise(0, [0, 1], gen.latent_shape), **COMMON).images  # [0, 1]
    theirs = (theirs * 255).permute(0, 2, 3, 1)
    assert ours.std() > 5  # not a flat image
    assert (ours - theirs).abs().max() <= 1.01  # uint8 rounding only
    other = generate(dataclasses.replace(gen, shift=2.5),
                     PROMPTS, [0, 1], steps=4, guidance=4.5).float()
    assert (other - theirs).abs().max() > 2  # the shift matters at this size, so the check above can fail


def test_velocity_conventions(world):
    """Teacher: the transformer sees 1000 * timestep_scale * t_FM (SanaPipeline); student: t_FM (Sana-Sprint)."""
    teacher, student = world["teacher"], world["student"]
    assert SanaVelocity(teacher).timestep_multiplier == pytest.approx(1.0)  # 1000 * 1e-3
    assert SanaVelocity(student).timestep_multiplier == 1.0
    cond = cond_of(world, PROMPTS)
    x, t_fm = eps(4), torch.tensor([0.9, 0.2])
    direct = teacher(x, encoder_hidden_states=cond["prompt_embeds"], encoder_attention_mask=cond["prompt_attention_mask"],
                     timestep=1000 * t_fm * teacher.config.timestep_scale, return_dict=False)[0]
    torch.testing.assert_close(SanaVelocity(teacher)(x, t_fm, cond), direct)
    with pytest.raises(KeyError, match="guidance"):
        SanaVelocity(student)(x, t_fm, cond)


def test_student_equals_teacher_at_init_and_its_guidance_embedding_can_learn(world):
    teacher = world["teacher"]
    student = student_from_teacher(teacher)
    cond = cond_of(world, PROMPTS)
    x = eps(5)
    F_teacher = sana_denoiser(teacher)
    F_student = SanaTrigFlowStudent(student)
    for t in ([math.pi / 2, 1.2], [0.05, 0.7]):
        t = torch.tensor(t)
        ref = F_teacher(x, t, cond)
        for g in (1.0, 4.5):
            out = F_student(x, t, {**cond, "guidance": torch.full((2,), g)})
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    # the zeroed last linear still gets a guidance-dependent gradient (linear_1 is not zeroed)
    out = F_student(x, torch.tensor([1.0, 0.5]), {**cond, "guidance": torch.tensor([4.0, 5.0])})
    out.square().mean().backward()
    assert student.time_embed.guidance_embedder.linear_2.weight.grad.abs().sum() > 0
    # a teacher whose time embedding reads 0-1000 cannot be turned into a Sana-Sprint student
    with pytest.raises(ValueError, match="timestep_scale"):
        student_from_teacher(SanaTransformer2DModel(**{**tiny_sana_config(), "timestep_scale": 1.0}))


def test_sana_sprint_pipeline_samples_and_matches_consistency_sampler(world):
    sprint = world["loaded_sprint"]
    for steps in (1, 2, 4):
        out = sprint(prompt=PROMPTS, num_inference_steps=steps, intermediate_timesteps=1.3 if steps == 2 else None,
                     guidance_scale=4.5, generator=torch.Generator().manual_seed(0), output_type="pt", **COMMON).images
        assert out.shape == (2, 3, PX, PX) and torch.isfinite(out).all()
        # the SCM scheduler's times are ours (pipeline starts at its max_timesteps = 1.57080)
        times = consistency_times(steps).float()
        times[0] = 1.57080
        torch.testing.assert_close(sprint.scheduler.timesteps, times)
    noise = eps(6)
    theirs = sprint(prompt=PROMPTS, num_inference_steps=1, intermediate_timesteps=None, max_timesteps=math.pi / 2,
                    guidance_scale=4.5, latents=noise, output_type="latent", **COMMON).images
    student = SanaTrigFlowStudent(sprint.transformer)
    cond = {**cond_of(world, PROMPTS), "guidance": torch.full((2,), 4.5)}
    ours = consistency_sample(student, cond, SD * noise, consistency_times(1)) / SD
    assert theirs.abs().max() > 0.1
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # and the saved student is the one we built
    torch.testing.assert_close(student(noise, torch.tensor([1.0, 0.3]), cond),
                               SanaTrigFlowStudent(world["student"])(noise, torch.tensor([1.0, 0.3]), cond))


def test_jvp_through_student_matches_finite_difference(world):
    student = SanaTrigFlowStudent(copy.deepcopy(world["student"]).double())
    cond = {k: v.double() if v.is_floating_point() else v for k, v in cond_of(world, PROMPTS).items()}
    cond["guidance"] = torch.tensor([4.0, 5.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 8, 8, 8, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.4, 1.2], dtype=torch.float64)
    vx = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    vt = torch.tensor([0.3, -0.5], dtype=torch.float64)

    def fn(x_, t_):
        return student(x_, t_, cond)

    with torch.no_grad():
        out, tangent = directional_derivative(fn, (x, t), (vx, vt), method="jvp")
        # h balances two O(h) and O(eps_fp32 / h) errors: the ReLU kinks of Sana's linear attention, and
        # diffusers' float32 casts inside it and the timestep embedding (measured: 4e-5 at h = 1e-3).
        h = 1e-3
        fd = (fn(x + h * vx, t + h * vt) - fn(x - h * vx, t - h * vt)) / (2 * h)
    torch.testing.assert_close(out, fn(x, t))
    rel = (tangent - fd).norm() / fd.norm()
    assert rel < 1e-4, rel
    # and exactly (to fp32-inside precision) the reverse-mode directional derivative (double-vjp trick)
    with sdpa_kernel(SDPBackend.MATH):
        _, reverse = torch.autograd.functional.jvp(fn, (x, t), (vx, vt))
    assert (tangent - reverse).norm() / reverse.norm() < 1e-6
