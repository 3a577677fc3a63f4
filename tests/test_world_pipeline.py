"""The embedded world end to end in a very small configuration: every stage runs for real, each
saved folder loads with the diffusers class named in the issue, and the student samples 1/2/4 steps."""

import json

import pytest
import torch

from tbcm.distill import DistillConfig, black_latent, read_prompts, run_distill
from tbcm.schedules import RSchedule
from tbcm.train_step import MethodConfig
from tbcm.world.autoencoder import AutoencoderConfig
from tbcm.world.build import build_data, build_judge_stage, build_teacher_stage, build_vae
from tbcm.world.evaluate import evaluate_folder
from tbcm.world.judge import JudgeConfig
from tbcm.world.teacher import TeacherConfig
from tbcm.world.text_pretrain import TextPretrainConfig


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_data(root / "data", n_train=256, n_eval=64, seed=0, resolution=32)
    build_vae(root / "data", root / "vae", AutoencoderConfig(channels=(8, 16, 32), steps=3, batch_size=16), n_psnr=16)
    build_judge_stage(root / "data", root / "judge",
                      JudgeConfig(width=32, layers=1, heads_width=16, embed_dim=16, steps=3, batch_size=32), n_eval=16)
    build_teacher_stage(root / "data", root / "vae", root / "teacher", TeacherConfig(steps=3, batch_size=16),
                        dict(hidden=32, layers=1, heads=1), dict(hidden=32, layers=1),
                        text_pretrain=TextPretrainConfig(steps=3, batch_size=16))
    return root


def test_stage_folders_load_with_diffusers(world):
    from diffusers import AutoencoderDC, SanaPipeline

    assert AutoencoderDC.from_pretrained(world / "vae").config.scaling_factor > 0
    pipe = SanaPipeline.from_pretrained(world / "teacher")
    out = pipe("a small red star in the center on a blue background", height=32, width=32, num_inference_steps=2,
               guidance_scale=4.5, output_type="pt", use_resolution_binning=False, complex_human_instruction=None,
               max_sequence_length=24).images
    assert out.shape == (1, 3, 32, 32)
    for stage in ("data", "vae", "judge", "teacher"):
        assert json.loads((world / stage / "metrics.json").read_text())
    text = json.loads((world / "teacher" / "metrics.json").read_text())["text_pretrain"]
    assert text["steps"] == 3 and set(text["heldout_caption_accuracy"]) == {"shape", "color", "background", "size", "position"}


def test_distill_exports_a_sana_sprint_pipeline(world, tmp_path):
    from diffusers import AutoencoderDC, SanaSprintPipeline

    vae = AutoencoderDC.from_pretrained(world / "vae")
    black = black_latent(vae, 32)
    assert black.shape == (8, 8, 8)
    prompts = read_prompts(world / "data" / "train_prompts.txt")
    cfg = DistillConfig(steps=2, prompts_per_step=2, method=MethodConfig(route_steps=4, r=RSchedule(warmup_steps=1)))
    info = run_distill(world / "teacher", prompts, black, tmp_path / "student", cfg, progress=False)
    assert info["steps"] == 2 and info["pairs_per_step"] == 6
    pipe = SanaSprintPipeline.from_pretrained(tmp_path / "student")
    for steps in (1, 2, 4):
        img = pipe("a small red star in the center on a blue background", height=32, width=32,
                   num_inference_steps=steps, intermediate_timesteps=1.3 if steps == 2 else None, output_type="pt",
                   use_resolution_binning=False, complex_human_instruction=None, max_sequence_length=24).images
        assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
    metrics = evaluate_folder(tmp_path / "student", world / "data", world / "judge", [1, 2], 4.5, 8, 0, tmp_path / "grids")
    assert set(metrics) == {"real", "1_step", "2_step"}
    assert (tmp_path / "grids" / "1step.png").is_file()


def test_bad_prompt_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="prompt file not found"):
        read_prompts(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="holds no prompts"):
        read_prompts(tmp_path / "empty.txt")
