"""`source: sana` end to end, as a user at real scale runs it, with tiny stand-ins for what they bring.

The teacher folder is a tiny SanaPipeline (the embedded world's teacher: diffusers' Sana classes, a DC-AE,
a Gemma-2 text encoder), MJHQ-30k is 8 captioned images in its layout, the prompts are a plain file and the
CLIP weights a tiny open_clip architecture described by a config beside them; all live outside the project,
named by absolute paths with spaces in params.yaml. dvc.yaml is rewritten for that params.yaml
(workflow/scripts/dvc_yaml.py) and `dvc repro` runs every stage for real: the prompts with Sana's complex
human instruction and 300 tokens, the black latent from the teacher's DC-AE, TBCM, the FID reference by
Inception-v3 (the offline copy) and both evaluations with CLIP, the report. Snakemake, on the same
project, plans exactly the jobs DVC ran (their commands are its planned ones: tests/test_dvc_yaml.py).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from eval_helpers import TINY_CLIP, mjhq_layout_set, tiny_open_clip
from project_copy import copy_project
from tbcm.eval.mjhq import load_meta
from tbcm.world.autoencoder import AutoencoderConfig
from tbcm.world.build import build_data, build_teacher_stage, build_vae
from tbcm.world.teacher import TeacherConfig

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("Snakefile", "workflow", "profiles", "dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore")
SANA_STAGES = {"dvc_plan", "collect_prompts", "black_latent", "distill", "fid_reference", "evaluate_teacher",
               "evaluate_student", "report"}


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
                OMP_NUM_THREADS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                GIT_COMMITTER_EMAIL="t@t")


def sh(cwd, *args, timeout=900) -> str:
    out = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, args))} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """What a user brings, outside the project: a SanaPipeline teacher, an MJHQ-layout set, prompts, CLIP weights."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("user files")  # a space in every path, as user folders may have
    world = root / "world"
    build_data(world / "data", n_train=64, n_eval=32, seed=0, resolution=32)
    build_vae(world / "data", world / "vae", AutoencoderConfig(channels=(8, 16, 32), steps=3, batch_size=16), n_psnr=8)
    build_teacher_stage(world / "data", world / "vae", root / "sana teacher", TeacherConfig(steps=3, batch_size=16),
                        dict(hidden=32, layers=1, heads=1), dict(hidden=32, layers=1))
    mjhq = root / "MJHQ-30k"
    ids = mjhq_layout_set(world / "data" / "eval", mjhq)
    shutil.copy(world / "data" / "train_prompts.txt", root / "prompts.txt")
    (root / "clip").mkdir()
    weights = tiny_open_clip(root / "clip")  # its architecture's config beside it, where the stages look
    return dict(teacher=root / "sana teacher", mjhq=mjhq, prompts=root / "prompts.txt", weights=weights,
                n_images=len(ids), categories={m["category"] for m in load_meta(mjhq).values()})


@pytest.fixture(scope="module")
def project(tmp_path_factory, user_files):
    """The project (a git + DVC repository) with a `source: sana` params.yaml and dvc.yaml rewritten for it."""
    repo = copy_project(tmp_path_factory.mktemp("sana_project"), PROJECT)
    p = yaml.safe_load((ROOT / "workflow" / "smoke.yaml").read_text())
    p.update(source="sana", sana={"teacher": str(user_files["teacher"]), "mjhq": str(user_files["mjhq"])})
    p["prompts"].update(file=str(user_files["prompts"]), limit=16)
    p["distill"].update(steps=2)
    p["sample"].update(steps=[1, 2])
    p["evaluate"].update(n=None, resolution=64, batch_size=3, fid_features="inception",
                         weights_dir=str(user_files["weights"].parent), clip_model=TINY_CLIP,
                         clip_weights=user_files["weights"].name)
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    sh(repo, sys.executable, "workflow/scripts/dvc_yaml.py")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "sana project")
    return repo


@pytest.mark.slow
def test_dvc_repro_runs_the_sana_chain_and_snakemake_plans_the_same_jobs(project, user_files):
    log = sh(project, sys.executable, "-m", "dvc", "repro", timeout=1500)
    assert set(re.findall(r"Running stage '(\w+)'", log)) == SANA_STAGES, log[-4000:]
    res = project / "results"
    distill_log = json.loads((res / "student" / "train_log.json").read_text())
    assert distill_log["config"]["text_max_length"] == 300 and distill_log["config"]["text_instruction"]
    for who, rows in (("teacher", {"real", "1_step", "4_step"}), ("student", {"real", "1_step", "2_step"})):
        m = json.loads((res / "metrics" / f"{who}.json").read_text())
        assert set(m) == rows, m  # the teacher at its own 4 steps and, for comparison, at 1
        for row in m.values():
            assert row["n"] == user_files["n_images"] and set(row["per_category"]) == user_files["categories"], row
            assert row["feature_extractor"].startswith("inception-v3"), row
            assert row["clip_model"].startswith(f"open_clip {TINY_CLIP}"), row
        assert abs(m["real"]["fid"]) < 1e-3  # the set against its own reference
    assert (res / "report.md").read_text().startswith("# tbcm report")
    assert "Data and pipelines are up to date" in sh(project, sys.executable, "-m", "dvc", "status")

    # Snakemake plans, from the same params.yaml, exactly the jobs DVC ran (less DVC's own check), with the
    # commands DVC ran (tests/test_dvc_yaml.py: dvc.yaml is that plan)
    plan = sh(project, sys.executable, "-m", "snakemake", "--dry-run", "--forceall", "--cores", "1")
    planned = set(re.findall(r"^(?:local)?rule (\w+):", plan, re.M)) - {"all"}
    assert planned == SANA_STAGES - {"dvc_plan"}, sorted(planned)


@pytest.mark.slow
def test_two_evaluation_processes_make_the_same_images_and_metrics(project):
    """evaluate.processes: 2 with evaluate.decode_workers: 2 reruns no stage (any counts make the same images
    and scores, so neither is a stage parameter); forced, the student's evaluation runs as two processes under
    accelerate launch (gloo, CPU), each making its share of the images and reading them back with two forked
    DataLoader workers, and gives the one-process run's images bit for bit and its metrics exactly."""
    sh(project, sys.executable, "-m", "dvc", "repro", timeout=1500)  # the chain above (nothing, if it ran)
    res = project / "results"
    one_metrics = json.loads((res / "metrics" / "student.json").read_text())
    samples = res / "samples" / "student"
    one_images = {p.relative_to(samples): p.read_bytes() for p in samples.rglob("*.png")}
    assert len(one_images) == 2 * one_metrics["1_step"]["n"]  # 1 and 2 steps
    params = project / "params.yaml"
    p = yaml.safe_load(params.read_text())
    p["evaluate"]["processes"] = 2
    p["evaluate"]["decode_workers"] = 2
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    log = sh(project, sys.executable, "-m", "dvc", "repro")
    assert set(re.findall(r"Running stage '(\w+)'", log)) == {"dvc_plan"}, log[-4000:]  # its check only
    shutil.rmtree(samples)
    stage_log = sh(project, sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "evaluate_student",
                   timeout=900)
    assert "evaluate.processes 2: " in stage_log and "accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --main_process_port 0" in stage_log
    n = one_metrics["1_step"]["n"]  # 7 or 8 images in batches of 3: process 1 makes the 1st and 3rd, process 2 the 2nd
    for k, made in ((1, n - 3), (2, 3)):
        assert f"student process {k}/2: generated {made} at 1 step(s), {made} at 2 step(s)" in stage_log, stage_log[-3000:]
    assert f"student_1 step(s): {n} generated, 0 already there (2 processes)" in stage_log, stage_log[-3000:]
    assert "student: reading the images back with 2 decode worker(s) per process" in stage_log, stage_log[-3000:]
    assert {p.relative_to(samples): p.read_bytes() for p in samples.rglob("*.png")} == one_images
    assert json.loads((res / "metrics" / "student.json").read_text()) == one_metrics
