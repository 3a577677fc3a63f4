"""The whole Snakemake chain on the smoke configuration, in a scratch copy of the workflow."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]


def _snakemake(cwd, *args, timeout=600):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "workflow/smoke.yaml", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    copy_project(work)
    run = _snakemake(work)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return work


@pytest.mark.slow
def test_chain_leaves_metrics_grids_and_report(smoke):
    res = smoke / "results"
    for name in ("teacher", "student"):
        m = json.loads((res / "metrics" / f"{name}.json").read_text())
        assert all("fid" in v for k, v in m.items() if k == "real" or k.endswith("_step"))
        if name == "teacher":  # the judge on real images through the VAE: accuracies only
            assert set(m["vae_reconstructions"]) == {"shape_accuracy", "color_accuracy", "n"}
    assert set(json.loads((res / "metrics" / "student.json").read_text())) == {"real", "1_step", "2_step", "4_step"}
    report = (res / "report.md").read_text()
    assert report.startswith("# tbcm report")
    psnr = json.loads((res / "world" / "vae" / "metrics.json").read_text())["psnr_eval_db"]
    assert "## The embedded world" in report and f"| {psnr:.2f} |" in report  # the world's own quality
    assert "| text encoder | attributes read from held-out captions" in report and "position_accuracy" in report
    assert "| DC-AE decoder | trained on latents + noise up to 0.45" in report
    assert len(list((res / "grids" / "student").glob("*.png"))) == 3


@pytest.mark.slow
def test_fid_reference_is_computed_once_and_read_by_both_evaluations(smoke):
    res = smoke / "results"
    (ref,) = (res / "fid_reference").glob("*px.npz")
    (clip,) = (res / "fid_reference").glob("*_clip.npz")
    made = (res / "logs" / "fid_reference.log").read_text()
    assert f"FID reference: {ref.relative_to(smoke)} (64 images, computed)" in made
    assert f"real CLIP scores: {clip.relative_to(smoke)} (64 images, computed)" in made
    for name in ("teacher", "student"):
        log = (res / "logs" / f"evaluate_{name}.log").read_text()
        assert f"FID reference: {ref.relative_to(smoke)} (64 images, cached)" in log, log[-2000:]
        assert f"real CLIP scores: {clip.relative_to(smoke)} (64 images, cached)" in log, log[-2000:]
        metrics = json.loads((res / "metrics" / f"{name}.json").read_text())
        assert {row["reference"] for k, row in metrics.items() if k != "vae_reconstructions"} == {ref.name}
        assert metrics["real"]["clip_reference"] == clip.name
    # last written inside the fid_reference job (whose log ends after the files are saved), not by the evaluations
    for f in (ref, clip):
        assert f.stat().st_mtime_ns <= (res / "logs" / "fid_reference.log").stat().st_mtime_ns
    assert sorted(p.name for p in (res / "fid_reference").iterdir() if p.name != ".snakemake_timestamp") \
        == sorted([ref.name, clip.name])


@pytest.mark.slow
def test_second_run_does_nothing(smoke):
    run = _snakemake(smoke, "-n")
    assert run.returncode == 0 and "Nothing to be done" in run.stdout + run.stderr


def test_bad_configuration_stops_before_any_job(tmp_path):
    copy_project(tmp_path)
    smoke = (tmp_path / "workflow" / "smoke.yaml").read_text()
    (tmp_path / "workflow" / "smoke.yaml").write_text(smoke.replace("steps: 3\n", "steps: three\n"))
    run = _snakemake(tmp_path, timeout=120)
    assert run.returncode != 0
    assert "steps" in run.stdout + run.stderr and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_two_processes_rerun_distill_under_accelerate_and_what_follows(smoke):
    """distill.processes: 2 (last in this module: it changes the finished project). Only the distillation and
    what reads it rerun; the same `tbcm distill` command launches 2 processes with accelerate (gloo on the CPU),
    one of the rule's 2 threads each, which train together (the run's log records 2 processes) and export a
    student the evaluation scores."""
    config = smoke / "workflow" / "smoke.yaml"
    config.write_text(config.read_text().replace("  processes: 1\n", "  processes: 2\n", 1))
    res = smoke / "results"
    before = (res / "metrics" / "teacher.json").stat().st_mtime_ns
    run = _snakemake(smoke, "-p")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    ran = set(re.findall(r"^(?:local)?rule (\w+):", out, re.M)) - {"all"}
    assert ran == {"distill", "evaluate_student", "report"}, sorted(ran)
    launch = (res / "logs" / "distill.log").read_text()
    assert re.search(r"accelerate\.commands\.launch --multi_gpu --num_processes 2 --num_machines 1 .*"
                     r"--num_cpu_threads_per_process 1 -m tbcm\.cli distill --params ", launch), launch[:2000]
    log = json.loads((res / "student" / "train_log.json").read_text())
    assert log["num_processes"] == 2
    assert set(json.loads((res / "metrics" / "student.json").read_text())) == {"real", "1_step", "2_step", "4_step"}
    assert (res / "metrics" / "teacher.json").stat().st_mtime_ns == before
