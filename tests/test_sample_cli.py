"""`tbcm sample`: a teacher's or student's grid for your own prompts (tbcm.eval.sample)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_teacher import build_tiny_teacher

from tbcm.cli import main as cli_main

SMOKE = str(Path(__file__).resolve().parents[1] / "workflow" / "smoke.yaml")
A, B, C = "a red circle on a blue background", "a big blue star", "a small green square"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tbcm.distill import export_student
    from tbcm.models.sana import load_pipeline_parts, student_from_teacher

    root = tmp_path_factory.mktemp("sample")
    teacher = build_tiny_teacher(root / "teacher", sample_size=8)
    tr, _, _ = load_pipeline_parts(teacher)
    student = student_from_teacher(tr)
    with torch.no_grad():  # an untrained student's guidance embedding adds 0; make the scale matter
        lin2 = student.time_embed.guidance_embedder.linear_2
        lin2.weight.copy_(0.05 * torch.randn(lin2.weight.shape, generator=torch.Generator().manual_seed(1)))
    export_student(teacher, student, root / "student", {})
    return {"teacher": teacher, "student": root / "student"}


def run(*argv) -> int:
    return cli_main(["sample", "--params", SMOKE, *map(str, argv)])


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_student_grid_rows_are_prompts_columns_are_steps(folders, tmp_path):
    out, imgs = tmp_path / "grid.png", tmp_path / "imgs"
    assert run("--model", folders["student"], "--prompt", A, "--prompt", B, "--steps", 1, 2, 4,
               "--out", out, "--images", imgs) == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["kind"] == "student" and info["steps"] == [1, 2, 4] and info["prompts"] == [A, B]
    assert (info["guidance"], info["seed"]) == (4.5, 0)  # smoke.yaml's sample section
    w, h = Image.open(out).size
    assert w == 3 * (128 + 4) + 4 and h > 2 * 128  # three columns of 128 px cells, two rows
    for k in (1, 2, 4):
        for i in (0, 1):
            assert png(imgs / f"{k}_step" / f"{i:03d}.png").shape == (32, 32, 3)  # 8x8 latent, DC-AE f4
    assert (imgs / "prompts.txt").read_text().splitlines() == [A, B]
    # one prompt, one latent: the columns differ by the step count; the rows by the prompt
    assert not np.array_equal(png(imgs / "1_step/000.png"), png(imgs / "2_step/000.png"))
    assert not np.array_equal(png(imgs / "1_step/000.png"), png(imgs / "1_step/001.png"))


def test_a_prompt_keeps_its_images_when_others_are_added(folders, tmp_path):
    run("--model", folders["student"], "--prompt", A, "--prompt", B, "--steps", 2, "--out", tmp_path / "a.png",
        "--images", tmp_path / "a")
    (tmp_path / "more.txt").write_text(f"{C}\n\n")
    run("--model", folders["student"], "--prompt", A, "--prompt", B, "--prompts-file", tmp_path / "more.txt",
        "--steps", 2, "--out", tmp_path / "b.png", "--images", tmp_path / "b")
    for i in (0, 1):
        assert np.array_equal(png(tmp_path / f"a/2_step/{i:03d}.png"), png(tmp_path / f"b/2_step/{i:03d}.png"))
    assert json.loads((tmp_path / "b.json").read_text())["prompts"] == [A, B, C]
    # another guidance scale changes the student's images (its guidance embedding reads it)
    run("--model", folders["student"], "--prompt", A, "--steps", 2, "--guidance", 2.0, "--out", tmp_path / "c.png",
        "--images", tmp_path / "c")
    assert not np.array_equal(png(tmp_path / "a/2_step/000.png"), png(tmp_path / "c/2_step/000.png"))


def test_teacher_defaults_to_its_step_count(folders, tmp_path):
    assert run("--model", folders["teacher"], "--prompt", C, "--out", tmp_path / "t.png") == 0
    info = json.loads((tmp_path / "t.json").read_text())
    assert info["kind"] == "teacher" and info["steps"] == [4]  # smoke.yaml's sample.teacher_steps


@pytest.mark.parametrize("argv, named", [
    (["--prompt", "  "], "prompt 1 of --prompt is empty"),
    ([], "no prompts"),
    (["--prompts-file", "missing.txt"], "prompts file not found: missing.txt"),
    (["--prompt", A, "--steps", 0], "step counts must be integers >= 1, got 0"),
    (["--prompt", A, "--out-override", "grid.jpg"], "--out must be a .png file"),
    (["--prompt", A, "--guidance", "nan"], "guidance must be a finite number"),
])
def test_bad_input_is_named_before_any_model_loads(folders, tmp_path, capsys, monkeypatch, argv, named):
    import tbcm.eval.generate as generate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(generate, "load_generator", lambda *a, **k: pytest.fail("loaded a model"))
    out = "grid.png"
    if "--out-override" in argv:
        out, argv = argv[-1], argv[:-2]
    assert run("--model", folders["student"], *argv, "--out", out) == 2
    assert named in capsys.readouterr().err


def test_a_folder_that_is_no_pipeline_is_named(tmp_path, capsys):
    assert run("--model", tmp_path, "--prompt", A, "--out", tmp_path / "g.png") == 2
    assert "is not a diffusers pipeline folder" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["teacher", "student"])
def test_bf16_holds_the_networks_in_bf16_and_draws_nearly_the_same_images(folders, tmp_path, monkeypatch, model):
    import tbcm.eval.generate as generate

    held, load = [], generate.load_generator

    def spy(*a, **k):
        g = load(*a, **k)
        held.append({p.dtype for m in (g.denoiser, g.encoder, g.vae) for p in m.parameters()})
        return g

    monkeypatch.setattr(generate, "load_generator", spy)
    for precision in ("fp32", "bf16"):
        assert run("--model", folders[model], "--prompt", A, "--prompt", B, "--steps", 2, "--precision", precision,
                   "--out", tmp_path / f"{precision}.png", "--images", tmp_path / precision) == 0
        assert json.loads((tmp_path / f"{precision}.json").read_text())["precision"] == precision
    assert held == [{torch.float32}, {torch.bfloat16}]
    for i in (0, 1):
        a, b = (png(tmp_path / f"{p}/2_step/{i:03d}.png").astype(int) for p in ("fp32", "bf16"))
        assert not np.array_equal(a, b)  # bf16 really ran
        assert np.abs(a - b).mean() < 4  # out of 255 (measured 0.3-0.5; the other prompt's image: ~40): rounding


def test_a_folder_records_its_precision_and_an_older_record_reads_as_fp32(tmp_path):
    from types import SimpleNamespace

    from tbcm.eval.generate import GENERATION_FILE, open_folder

    gen = SimpleNamespace(fingerprint="f", kind="student", text_max_length=24, instruction=None, device="cpu",
                          precision="fp32")
    open_folder(gen, tmp_path, 2, 4.5, 0)
    record = json.loads((tmp_path / GENERATION_FILE).read_text())
    assert record["precision"] == "fp32"
    del record["precision"]  # as written before sample.precision existed: its images were fp32's
    (tmp_path / GENERATION_FILE).write_text(json.dumps(record))
    open_folder(gen, tmp_path, 2, 4.5, 0)
    with pytest.raises(ValueError, match="precision"):
        open_folder(SimpleNamespace(**{**vars(gen), "precision": "bf16"}), tmp_path, 2, 4.5, 0)
