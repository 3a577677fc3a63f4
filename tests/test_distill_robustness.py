"""Long-run machinery of `tbcm distill` on a tiny Sana teacher (issue 6): checkpoints and exact resume,
bf16 autocast, gradient checkpointing, EMA, data parallelism with accelerate (replicated or sharded),
dvclive curves."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import tbcm.distill as distill_mod
from tbcm.checkpoint import step_files
from tbcm.cli import main as cli_main
from tbcm.config import load_params, validate
from tbcm.distill import DistillConfig, check_config, run_distill
from tbcm.models.sana import load_pipeline_parts
from tbcm.schedules import RSchedule
from tbcm.train_step import MethodConfig

from tiny_teacher import PROMPTS, build_tiny_teacher

ROOT = Path(__file__).resolve().parents[1]
BLACK = torch.zeros(8, 4, 4)  # the tiny teacher's latents are [8, 4, 4]; threshold 5 drops most prompts


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny") / "teacher")


def config(**kw) -> DistillConfig:
    method = kw.pop("method", {})
    m = MethodConfig(route_steps=4, brightness_threshold=5.0, r=RSchedule(warmup_steps=2))
    return DistillConfig(**{"steps": 6, "prompts_per_step": 2, "text_max_length": 12, **kw},
                         method=dataclasses.replace(m, **method))


def weights(folder: Path) -> dict:
    return load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")


def assert_same_tensors(a, b, where=""):
    """Bitwise equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("ahead,optimizer", [(1, "adamw"), (2, "came")])
def test_killed_run_resumes_bit_exactly(teacher, tmp_path, monkeypatch, ahead, optimizer):
    """rollout_ahead 2 rolls out steps {0, 1}, {2, 3}, {4, 5}: the checkpoint after step 2 holds step 3's pairs."""
    cfg = config(adaptive_weight=True, ema_decay=0.9, checkpoint_every=3, checkpoint_keep=1, rollout_ahead=ahead,
                 optimizer=optimizer)
    # The global RNGs start from different seeds in the two runs: only restoring them makes them agree.
    torch.manual_seed(123), random.seed(123)
    ref = run_distill(teacher, PROMPTS, BLACK, tmp_path / "a", cfg, progress=False, live_dir=tmp_path / "a_live")
    ref_rng = torch.get_rng_state(), random.getstate()

    real_step = distill_mod.train_on_pairs

    def dies_after_step_4(*args, **kw):
        res = real_step(*args, **kw)
        if res.step == 4:  # trained one step past the checkpoint at 3, then killed
            raise KeyboardInterrupt
        return res

    torch.manual_seed(123), random.seed(123)
    monkeypatch.setattr(distill_mod, "train_on_pairs", dies_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        run_distill(teacher, PROMPTS, BLACK, tmp_path / "b", cfg, progress=False, live_dir=tmp_path / "b_live")
    monkeypatch.setattr(distill_mod, "train_on_pairs", real_step)
    assert not (tmp_path / "b").exists()  # no half-written output
    (ckpt_folder,) = [p for p in (tmp_path / "b.ckpt").iterdir()]
    assert [s for s, _ in step_files(ckpt_folder)] == [3]
    assert len(torch.load(step_files(ckpt_folder)[0][1], weights_only=True)["pending"][0]) == ahead - 1

    torch.manual_seed(999), random.seed(999)
    res = run_distill(teacher, PROMPTS, BLACK, tmp_path / "b", cfg, progress=False, resume="latest",
                      live_dir=tmp_path / "b_live")
    assert res["resumed_from"]["step"] == 3 and res["exported_weights"] == "ema"
    assert_same_tensors(weights(tmp_path / "a"), weights(tmp_path / "b"), "exported student")
    assert [(r["step"], r["loss"], r["grad_norm"], r["skipped"]) for r in res["curve"]] == \
           [(r["step"], r["loss"], r["grad_norm"], r["skipped"]) for r in ref["curve"]]
    assert res["skipped"] == ref["skipped"]
    # the final checkpoints (online student, w_phi, AdamW, EMA, every RNG) agree bit for bit
    (a_folder,) = (tmp_path / "a.ckpt").iterdir()
    assert [s for s, _ in step_files(a_folder)] == [6] and [s for s, _ in step_files(ckpt_folder)] == [6]
    a = torch.load(step_files(a_folder)[-1][1], weights_only=True)
    b = torch.load(step_files(ckpt_folder)[-1][1], weights_only=True)
    for key in ("student", "weight", "optimizer", "ema", "rng", "history", "skips"):
        assert_same_tensors(a[key], b[key], key)
    assert not torch.equal(a["student"]["time_embed.guidance_embedder.linear_2.weight"], torch.zeros(1))
    assert torch.equal(torch.get_rng_state(), ref_rng[0]) and random.getstate() == ref_rng[1]
    # the exported EMA is not the online student, and the curves of the resumed run are whole
    online = a["student"]["proj_out.weight"]
    assert not torch.equal(weights(tmp_path / "a")["proj_out.weight"], online)
    for name in ("loss.tsv", "grad_norm.tsv", "r.tsv", "skipped.tsv"):
        live_a = (tmp_path / "a_live" / "plots" / "metrics" / name).read_text()
        assert live_a == (tmp_path / "b_live" / "plots" / "metrics" / name).read_text(), name
    assert len((tmp_path / "a_live" / "plots" / "metrics" / "r.tsv").read_text().splitlines()) == 1 + 6


def test_resume_refuses_another_setup_and_latest_starts_afresh(teacher, tmp_path):
    cfg = config(steps=2, checkpoint_every=2)
    run_distill(teacher, PROMPTS, BLACK, tmp_path / "s", cfg, progress=False)
    (folder,) = (tmp_path / "s.ckpt").iterdir()
    other = dataclasses.replace(cfg, lr=3e-4)
    with pytest.raises(ValueError, match=r"different distill\.lr"):
        run_distill(teacher, PROMPTS, BLACK, tmp_path / "s", other, progress=False, resume=step_files(folder)[-1][1])
    with pytest.raises(ValueError, match="different prompts"):
        run_distill(teacher, PROMPTS[:3], BLACK, tmp_path / "s", cfg, progress=False, resume=folder)
    info = run_distill(teacher, PROMPTS, BLACK, tmp_path / "s", other, progress=False, resume="latest")
    assert info["resumed_from"] is None and len(list((tmp_path / "s.ckpt").iterdir())) == 2
    with pytest.raises(ValueError, match="no such checkpoint file"):
        run_distill(teacher, PROMPTS, BLACK, tmp_path / "s", cfg, progress=False, resume=tmp_path / "nope.pt")


def test_gradient_checkpointing_is_used_outside_the_jvp_and_changes_nothing(teacher, tmp_path, monkeypatch):
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def spy(*args, **kw):
        calls.append(torch.is_grad_enabled())
        return real(*args, **kw)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    cfg = config(steps=2, checkpoint_every=None, method={"brightness_threshold": 0.0})
    run_distill(teacher, PROMPTS, BLACK, tmp_path / "plain", cfg, progress=False)
    assert calls == []
    run_distill(teacher, PROMPTS, BLACK, tmp_path / "gc", dataclasses.replace(cfg, gradient_checkpointing=True),
                progress=False)
    assert calls == [True, True]  # one block, two steps: only the gradient forward, never the no-grad JVP pass
    assert_same_tensors(weights(tmp_path / "plain"), weights(tmp_path / "gc"), "student")


def test_prompts_are_encoded_with_the_instruction_and_uncond_without(teacher, tmp_path, monkeypatch):
    """text_instruction (source: sana) goes before every prompt of the rollout's condition; the empty prompt
    of classifier-free guidance is encoded without it, as SanaPipeline's negative branch."""
    import tbcm.models.sana as sana

    seen = []
    real = sana.encode_prompts

    def spy(tokenizer, encoder, prompts, max_length, instruction=None):
        seen.append((tuple(prompts), max_length, instruction))
        return real(tokenizer, encoder, prompts, max_length, instruction)

    monkeypatch.setattr(sana, "encode_prompts", spy)
    cfg = config(steps=1, checkpoint_every=None, text_instruction=("Given a prompt:", "Prompt:"))
    run_distill(teacher, PROMPTS, BLACK, tmp_path / "out", cfg, progress=False)
    assert seen[0] == (("",), 12, None)  # the uncond, once
    assert len(seen) == 2 and seen[1][1:] == (12, ("Given a prompt:", "Prompt:")) and len(seen[1][0]) == 2


@pytest.mark.slow
def test_compiled_run_trains_the_same_maths(teacher, tmp_path, monkeypatch):
    """distill.compile: the tangent goes through the compiled directional derivative and the teacher through
    torch.compile, and the run ends where the eager one does (to float rounding; about a minute of compiling)."""
    import tbcm.loss as loss_module

    calls = []
    real = loss_module.compiled_directional_derivative

    def spy(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(loss_module, "compiled_directional_derivative", spy)
    compiled_modules, real_compile = [], torch.compile

    def compile_spy(model, *args, **kw):  # nn.Module.compile passes its bound _call_impl
        compiled_modules.append(type(getattr(model, "__self__", model)).__name__)
        return real_compile(model, *args, **kw)

    monkeypatch.setattr(torch, "compile", compile_spy)
    cfg = config(steps=2, checkpoint_every=None, method={"brightness_threshold": 0.0})
    eager = run_distill(teacher, PROMPTS, BLACK, tmp_path / "eager", cfg, progress=False)
    assert calls == []
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = run_distill(teacher, PROMPTS, BLACK, tmp_path / "compiled", dataclasses.replace(cfg, compile=True),
                           progress=False)
    assert len(calls) == 2 and not compiled["skipped"]
    # the teacher's and the student's blocks, in place (and the block JVP's function, compiled once per process)
    layers = len(load_pipeline_parts(teacher)[0].transformer_blocks)
    assert [m for m in compiled_modules if m != "function"] == ["SanaTransformerBlock"] * (2 * layers)
    # three graphs in all, over both steps: the teacher's block, the student's block (training), one block's JVP
    assert counters["stats"]["unique_graphs"] == counters["frames"]["total"] == 3 and not counters["graph_break"]
    assert (compiled["compile"]["graphs"], compiled["compile"]["graph_breaks"]) == (3, 0) and eager["compile"] is None
    for a, b in zip(eager["curve"], compiled["curve"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
    we, wc = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    assert set(we) == set(wc)  # split_conv_bias keeps the state dict's keys
    for k in we:
        torch.testing.assert_close(wc[k], we[k], rtol=1e-4, atol=1e-6)
    # with offload_frozen the compiled teacher finds its weights at new addresses in each of the 2 rollouts: the
    # same graphs as the resident compiled run (none compiled again), the same run
    graphs = counters["stats"]["unique_graphs"]
    again = run_distill(teacher, PROMPTS, BLACK, tmp_path / "again", dataclasses.replace(cfg, compile=True),
                        progress=False)
    graphs, mark = counters["stats"]["unique_graphs"] - graphs, counters["stats"]["unique_graphs"]
    offloaded = run_distill(teacher, PROMPTS, BLACK, tmp_path / "offloaded",
                            dataclasses.replace(cfg, compile=True, offload_frozen=True), progress=False)
    assert counters["stats"]["unique_graphs"] - mark == graphs
    assert [r["loss"] for r in offloaded["curve"]] == [r["loss"] for r in again["curve"]]
    assert_same_tensors(weights(tmp_path / "again"), weights(tmp_path / "offloaded"), "exported student")


def test_rollout_ahead_trains_on_the_same_pairs(teacher, tmp_path, monkeypatch):
    """rollout_ahead 3 over 4 steps: two rollouts (3 steps, then the 1 left) instead of four, and the run ends
    where the step-by-step one does (the same prompts, routes, noise and filter draws; only the teacher's
    batch differs, so to float rounding)."""
    rollouts = []
    real = distill_mod.tbcm_pairs_ahead

    def spy(teacher_, conds, *args, **kw):
        rollouts.append(len(conds))
        return real(teacher_, conds, *args, **kw)

    monkeypatch.setattr(distill_mod, "tbcm_pairs_ahead", spy)
    cfg = config(steps=4, checkpoint_every=None, log_every=1)
    one = run_distill(teacher, PROMPTS, BLACK, tmp_path / "one", cfg, progress=False)
    assert rollouts == [1, 1, 1, 1]
    rollouts.clear()
    ahead = run_distill(teacher, PROMPTS, BLACK, tmp_path / "ahead", dataclasses.replace(cfg, rollout_ahead=3),
                        progress=False)
    assert rollouts == [3, 1]
    assert [r["step"] for r in ahead["curve"]] == [0, 1, 2, 3]
    dropped = [r["dropped_prompts"] for r in one["curve"]]
    # the same prompts dropped by the brightness filter (here: none, both, one)
    assert [r["dropped_prompts"] for r in ahead["curve"]] == dropped and len(set(dropped)) == 3
    assert [r["skipped"] for r in ahead["curve"]] == [r["skipped"] for r in one["curve"]]
    for a, b in zip(one["curve"], ahead["curve"]):
        if a["skipped"] is None:
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    w1, wk = weights(tmp_path / "one"), weights(tmp_path / "ahead")
    for k in w1:
        torch.testing.assert_close(wk[k], w1[k], rtol=1e-5, atol=1e-7)


def test_bf16_autocast_trains_and_differs_from_fp32(teacher, tmp_path, monkeypatch):
    frozen = []  # the dtypes of the frozen models (text encoder, teacher) as the run holds them
    offload = distill_mod.FrozenOffload
    monkeypatch.setattr(distill_mod, "FrozenOffload", lambda models, *a, **k: (
        frozen.append({p.dtype for m in models for p in m.parameters()}), offload(models, *a, **k))[1])
    cfg = config(steps=2, checkpoint_every=None, method={"brightness_threshold": 0.0})
    fp32 = run_distill(teacher, PROMPTS, BLACK, tmp_path / "fp32", cfg, progress=False)
    bf16 = run_distill(teacher, PROMPTS, BLACK, tmp_path / "bf16", dataclasses.replace(cfg, precision="bf16"),
                       progress=False)
    assert frozen == [{torch.float32}, {torch.bfloat16}]
    losses = [r["loss"] for r in bf16["curve"]]
    assert all(torch.isfinite(torch.tensor(x)) for x in losses) and not bf16["skipped"]
    assert losses != [r["loss"] for r in fp32["curve"]]  # autocast really ran
    w = weights(tmp_path / "bf16")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in w.values())  # weights stay fp32
    # the exported text encoder, tokenizer and VAE are the teacher's files (fp32 here), not the run's bf16 copy
    for name in ("text_encoder", "tokenizer", "vae"):
        files = sorted(p.relative_to(teacher / name) for p in (teacher / name).rglob("*") if p.is_file())
        assert files and files == sorted(p.relative_to(tmp_path / "bf16" / name)
                                         for p in (tmp_path / "bf16" / name).rglob("*") if p.is_file())
        assert all((teacher / name / f).read_bytes() == (tmp_path / "bf16" / name / f).read_bytes() for f in files)
    ours, theirs = (json.loads((f / "model_index.json").read_text()) for f in (tmp_path / "bf16", teacher))
    assert ours["_class_name"] == "SanaSprintPipeline"
    assert all(ours[k] == theirs[k] for k in ("text_encoder", "tokenizer", "vae"))


@pytest.mark.parametrize("change,needle", [
    (dict(precision="fp16"), "distill.precision"),
    (dict(ema_decay=1.0), "distill.ema_decay"),
    (dict(checkpoint_every=0), "distill.checkpoint_every"),
    (dict(checkpoint_keep=0), "distill.checkpoint_keep"),
    (dict(gradient_checkpointing="yes"), "distill.gradient_checkpointing"),
    (dict(parallel="zero3"), "distill.parallel"),
    (dict(compile="yes"), "distill.compile"),
    (dict(rollout_ahead=0), "distill.rollout_ahead"),
    (dict(optimizer="sgd"), "distill.optimizer"),
    (dict(offload_frozen="yes"), "distill.offload_frozen"),
])
def test_bad_values_are_named(change, needle):
    with pytest.raises(ValueError, match=needle):
        check_config(dataclasses.replace(DistillConfig(), **change))
    p = copy.deepcopy(load_params(ROOT / "params.yaml"))
    p["distill"].update(change)
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        validate(p)


@pytest.mark.slow
def test_compiled_runs_of_other_shapes_in_one_process(teacher, tmp_path):
    """A second compiled run with more pairs and longer prompts in the same process (a sweep, a test session)
    compiles the gradient pass again for its shapes: left to guess dynamic sizes, inductor failed on this graph
    ("cannot determine truth value of Relational", torch 2.14, CPU)."""
    cfg = config(steps=1, checkpoint_every=None, compile=True, method={"brightness_threshold": 0.0})
    run_distill(teacher, PROMPTS, BLACK, tmp_path / "a", cfg, progress=False)
    other = dataclasses.replace(cfg, prompts_per_step=4, text_max_length=24)
    compiled = run_distill(teacher, PROMPTS, BLACK, tmp_path / "b", other, progress=False)
    eager = run_distill(teacher, PROMPTS, BLACK, tmp_path / "c", dataclasses.replace(other, compile=False), progress=False)
    assert compiled["curve"][0]["loss"] == pytest.approx(eager["curve"][0]["loss"], rel=1e-4)


def test_offloaded_frozen_models_train_the_same_and_are_placed_around_each_use(teacher, tmp_path, monkeypatch):
    """offload_frozen: the text encoder on the device for the uncond's encode and each step group's, the teacher
    for each rollout (here 2 rollouts of 2 steps), nothing else; the run is the resident one's bit for bit (on the
    CPU the device copies are CPU copies: what it saves on a GPU is not measured here)."""
    import tbcm.offload as offload_mod

    placed = []
    real = offload_mod.FrozenOffload.on_device

    def spy(self, model):
        if self.enabled:
            placed.append("teacher" if hasattr(model, "transformer_blocks") else "encoder")
        return real(self, model)

    monkeypatch.setattr(offload_mod.FrozenOffload, "on_device", spy)
    real_init, unplaced_calls = offload_mod.FrozenOffload.__init__, []

    def init_with_checks(self, models, device, enabled=True):  # every call of a model must be inside on_device
        real_init(self, models, device, enabled)
        for m in models:
            m.register_forward_pre_hook(lambda mod, args: unplaced_calls.append(type(mod).__name__)
                                        if self.enabled and id(mod) not in self._placed else None)

    monkeypatch.setattr(offload_mod.FrozenOffload, "__init__", init_with_checks)
    cfg = config(steps=4, checkpoint_every=None, rollout_ahead=2)
    resident = run_distill(teacher, PROMPTS, BLACK, tmp_path / "resident", cfg, progress=False)
    assert placed == []
    offloaded = run_distill(teacher, PROMPTS, BLACK, tmp_path / "offloaded", dataclasses.replace(cfg, offload_frozen=True),
                            progress=False)
    assert placed == ["encoder"] + ["encoder", "teacher"] * 2 and unplaced_calls == []
    assert [r["loss"] for r in offloaded["curve"]] == [r["loss"] for r in resident["curve"]]
    assert_same_tensors(weights(tmp_path / "resident"), weights(tmp_path / "offloaded"), "exported student")
    assert (tmp_path / "offloaded" / "text_encoder").is_dir()


def test_checkpoints_from_before_the_new_options_still_resume(teacher):
    """A checkpoint's fingerprint hashes the training configuration; options added since (rollout_ahead,
    offload_frozen, optimizer at adamw) leave the hash of an earlier run's configuration unchanged."""
    from tbcm.checkpoint import fingerprint

    cfg = dataclasses.asdict(config())
    before = {k: v for k, v in cfg.items() if k not in ("rollout_ahead", "offload_frozen", "optimizer")}
    same = fingerprint(before, teacher, PROMPTS, BLACK, 1)["id"]
    assert fingerprint(cfg, teacher, PROMPTS, BLACK, 1)["id"] == same
    assert fingerprint({**cfg, "rollout_ahead": 4, "offload_frozen": True}, teacher, PROMPTS, BLACK, 1)["id"] == same
    assert fingerprint({**cfg, "optimizer": "came"}, teacher, PROMPTS, BLACK, 1)["id"] != same


def test_came_with_fsdp_is_refused_by_the_config_and_the_schema():
    with pytest.raises(ValueError, match="distill.optimizer must be adamw with parallel: fsdp"):
        check_config(DistillConfig(optimizer="came", parallel="fsdp"))
    p = copy.deepcopy(load_params(ROOT / "params.yaml"))
    p["distill"].update(optimizer="came", parallel="fsdp")
    with pytest.raises(ValueError, match=r"distill\.parallel: 'ddp' was expected"):
        validate(p)
    p["distill"]["parallel"] = "ddp"
    validate(p)


def test_curves_leave_a_git_only_folder_alone(tmp_path, monkeypatch):
    """Plain dvclive would `dvc init` here and stage .dvc/ in Git (and crash: the repo has no commit)."""
    from tbcm.curves import TrainingCurves

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    curves = TrainingCurves("live", [{"step": 0, "loss": 1.5, "r": 0.0, "skipped": 0.0}])
    curves.log({"step": 1, "loss": None, "grad_norm": float("inf"), "r": 0.5, "skipped": 1.0})
    curves.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "live"]
    status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    assert status.splitlines() == ["?? live/"]
    metrics = tmp_path / "live" / "plots" / "metrics"
    assert (metrics / "loss.tsv").read_text().splitlines() == ["step\tloss", "0\t1.5"]
    assert (metrics / "r.tsv").read_text().splitlines() == ["step\tr", "0\t0.0", "1\t0.5"]
    assert not (metrics / "grad_norm.tsv").exists()


def test_cli_names_a_missing_checkpoint(teacher, tmp_path, capsys):
    p = load_params(ROOT / "workflow" / "smoke.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS))
    torch.save(BLACK, tmp_path / "black.pt")
    rc = cli_main(["distill", "--params", str(tmp_path / "params.yaml"), "--teacher", str(teacher), "--prompts",
                   str(tmp_path / "prompts.txt"), "--black-latent", str(tmp_path / "black.pt"), "--out",
                   str(tmp_path / "out"), "--resume", str(tmp_path / "gone.pt"), "--quiet"])
    assert rc == 2 and "gone.pt: no such checkpoint file" in capsys.readouterr().err


@pytest.mark.parametrize("processes,world_size", [(2, "1"), (1, "4")])
def test_cli_stops_when_distill_processes_is_not_what_was_launched(teacher, tmp_path, capsys, monkeypatch,
                                                                   processes, world_size):
    """distill.processes says how many processes train (each takes prompts_per_step prompts): a process of a
    launch of another count stops before loading anything, naming the key. (Not launched, `tbcm distill` launches
    distill.processes itself: tests/test_workflow_smoke.py.)"""
    p = load_params(ROOT / "workflow" / "smoke.yaml")
    p["distill"]["processes"] = processes
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS))
    torch.save(BLACK, tmp_path / "black.pt")
    monkeypatch.setenv("WORLD_SIZE", world_size)
    rc = cli_main(["distill", "--params", str(tmp_path / "params.yaml"), "--teacher", str(teacher), "--prompts",
                   str(tmp_path / "prompts.txt"), "--black-latent", str(tmp_path / "black.pt"), "--out",
                   str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and f"distill.processes is {processes} but this is one of {world_size} processes" in err, err
    assert not (tmp_path / "out").exists()


def launch_two(tmp_path, teacher: Path, out: str, *extra: str, params: str = "p2.yaml") -> None:
    """`tbcm distill --params tmp_path/<params>` under `accelerate launch` with 2 CPU processes (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "tbcm.cli", "distill", "--params", str(tmp_path / params), "--teacher", str(teacher),
           "--prompts", str(tmp_path / "prompts.txt"), "--black-latent", str(tmp_path / "black.pt"),
           "--out", str(tmp_path / out), "--quiet", *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one_process_with_the_doubled_batch(teacher, tmp_path, parallel):
    """`accelerate launch` with 2 CPU processes (gloo) of B = 2 prompts against 1 process of 4 prompts,
    through the CLI, the student replicated (DDP) or sharded (FSDP2): same per-step loss, gradient
    norm and filter drops, same final weights. Sharded, with rollout_ahead 3 (rollouts of steps {0, 1, 2}
    and {3}), a run resumed from its step-2 checkpoint, which holds each process's pairs of step 2, ends
    bit for bit where the uninterrupted one did."""
    ahead = 3 if parallel == "fsdp" else 1
    p = load_params(ROOT / "workflow" / "smoke.yaml")
    p["distill"].update(steps=4, prompts_per_step=2, brightness_threshold=5.0, adaptive_weight=True, ema_decay=0.9,
                        checkpoint_every=2, parallel=parallel, rollout_ahead=ahead, processes=2)
    (tmp_path / "p2.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS))
    torch.save(BLACK, tmp_path / "black.pt")
    launch_two(tmp_path, teacher, "two", "--live", str(tmp_path / "two_live"))
    log = json.loads((tmp_path / "two" / "train_log.json").read_text())
    assert log["num_processes"] == 2 and log["sharded"] == (parallel == "fsdp")

    d = p["distill"]
    cfg = config(steps=4, prompts_per_step=4, adaptive_weight=True, ema_decay=0.9, checkpoint_every=None,
                 text_max_length=24, lr=d["lr"], rollout_ahead=ahead,
                 method={"guidance_scales": tuple(d["guidance_scales"]), "tangent_c": d["tangent"]["c"],
                         "r": RSchedule(d["r"]["schedule"], d["r"]["warmup_steps"], d["r"]["cooldown_start"],
                                        d["r"]["cooldown_steps"], d["r_final"])})
    run_distill(teacher, PROMPTS, BLACK, tmp_path / "one", cfg, progress=False, live_dir=tmp_path / "one_live")

    def table(folder, name):
        rows = (folder / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()[1:]
        return {int(s): float(v) for s, v in (r.split("\t") for r in rows)}

    one, two = table(tmp_path / "one_live", "loss"), table(tmp_path / "two_live", "loss")
    assert sorted(one) == sorted(two) == [0, 1, 2, 3]
    assert max(abs(one[s] - two[s]) for s in one) <= 1e-5
    dropped = table(tmp_path / "two_live", "dropped_prompts")
    assert dropped == table(tmp_path / "one_live", "dropped_prompts")
    assert any(v % 2 == 1 for v in dropped.values())  # the 2 processes kept unequal numbers of prompts
    gn_one, gn_two = table(tmp_path / "one_live", "grad_norm"), table(tmp_path / "two_live", "grad_norm")
    assert max(abs(gn_one[s] - gn_two[s]) / gn_one[s] for s in gn_one) <= 1e-5
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
    if parallel == "ddp":  # a replicated run's checkpoint resumes sharded (e.g. after running out of memory)
        (folder,) = (tmp_path / "two.ckpt").iterdir()
        p["distill"]["parallel"] = "fsdp"
        (tmp_path / "p2_fsdp.yaml").write_text(yaml.safe_dump(p))
        launch_two(tmp_path, teacher, "resharded", "--resume", "latest", "--checkpoint-dir",
                   str(tmp_path / "two.ckpt"), params="p2_fsdp.yaml")
        log = json.loads((tmp_path / "resharded" / "train_log.json").read_text())
        assert log["sharded"] and log["resumed_from"]["step"] == 4  # latest: the finished run's last checkpoint
        launch_two(tmp_path, teacher, "resharded2", "--resume", str(dict(step_files(folder))[2]),
                   params="p2_fsdp.yaml")
        log = json.loads((tmp_path / "resharded2" / "train_log.json").read_text())
        assert log["sharded"] and log["resumed_from"]["step"] == 2
        c = weights(tmp_path / "resharded2")
        assert max(float((b[k] - c[k]).abs().max()) for k in b) <= 1e-5
    if parallel == "fsdp":
        (folder,) = (tmp_path / "two.ckpt").iterdir()
        steps = dict(step_files(folder))
        assert sorted(steps) == [2, 4]
        pending = torch.load(steps[2], weights_only=True)["pending"]
        assert [len(p) for p in pending] == [1, 1]  # step 2's pairs of each process, written by the main one
        assert [p[0]["x_t"].shape[0] for p in pending] == [2 * 3, 2 * 3]  # 2 prompts x 3 pairs (route of 4)
        launch_two(tmp_path, teacher, "resumed", "--resume", str(steps[2]))
        assert json.loads((tmp_path / "resumed" / "train_log.json").read_text())["resumed_from"]["step"] == 2
        assert_same_tensors(weights(tmp_path / "two"), weights(tmp_path / "resumed"), "exported student")
        (again,) = (tmp_path / "resumed.ckpt").iterdir()
        assert [s for s, _ in step_files(again)] == [4]
        x = torch.load(steps[4], weights_only=True)
        y = torch.load(dict(step_files(again))[4], weights_only=True)
        for key in ("student", "weight", "optimizer", "ema", "rng"):
            assert_same_tensors(x[key], y[key], key)
        # whole tensors in the one-process layout: the student's state dict, AdamW's state by index
        assert {k: v.shape for k, v in x["student"].items()} == {k: v.shape for k, v in a.items()}
        ema_shapes = [v.shape for v in x["ema"]["shadow_params"]]
        assert sorted(x["optimizer"]["state"]) == list(range(len(ema_shapes) + 2))  # student, then w_phi's two
        assert [x["optimizer"]["state"][i]["exp_avg"].shape for i in range(len(ema_shapes))] == ema_shapes


@pytest.mark.slow
def test_two_compiled_processes_match_one_compiled_process(teacher, tmp_path):
    """distill.compile under `accelerate launch` with 2 CPU processes (gloo): the compiled gradient pass wraps
    the DDP module; the run matches 1 process of the doubled batch, as the eager one does."""
    p = load_params(ROOT / "workflow" / "smoke.yaml")
    p["distill"].update(steps=2, prompts_per_step=2, brightness_threshold=0.0, checkpoint_every=None,
                        compile=True, processes=2)
    (tmp_path / "p2.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS))
    torch.save(BLACK, tmp_path / "black.pt")
    launch_two(tmp_path, teacher, "two")
    two = json.loads((tmp_path / "two" / "train_log.json").read_text())
    d = p["distill"]
    cfg = config(steps=2, prompts_per_step=4, adaptive_weight=d["adaptive_weight"], checkpoint_every=None,
                 compile=True, text_max_length=24, lr=d["lr"],
                 method={"brightness_threshold": 0.0, "guidance_scales": tuple(d["guidance_scales"]),
                         "tangent_c": d["tangent"]["c"],
                         "r": RSchedule(d["r"]["schedule"], d["r"]["warmup_steps"], d["r"]["cooldown_start"],
                                        d["r"]["cooldown_steps"], d["r_final"])})
    one = run_distill(teacher, PROMPTS, BLACK, tmp_path / "one", cfg, progress=False)
    assert two["num_processes"] == 2 and [r["step"] for r in two["curve"]] == [0, 1]
    for a, b in zip(one["curve"], two["curve"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5


@pytest.mark.slow
def test_sharded_matches_replicated_with_bf16_checkpointing_and_a_frozen_weight(teacher, tmp_path):
    """The settings the test above leaves out, 2 processes each: FSDP against DDP with bf16 autocast,
    gradient checkpointing and w_phi frozen (not sharded). Each process computes the same slice with
    the same weights either way; only how gradients are reduced differs."""
    p = load_params(ROOT / "workflow" / "smoke.yaml")
    p["distill"].update(steps=3, prompts_per_step=2, brightness_threshold=5.0, adaptive_weight=False, precision="bf16",
                        gradient_checkpointing=True, checkpoint_every=None, processes=2)
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS))
    torch.save(BLACK, tmp_path / "black.pt")
    curves = {}
    for parallel in ("ddp", "fsdp"):
        p["distill"]["parallel"] = parallel
        (tmp_path / "p2.yaml").write_text(yaml.safe_dump(p))
        launch_two(tmp_path, teacher, parallel)
        log = json.loads((tmp_path / parallel / "train_log.json").read_text())
        assert log["sharded"] == (parallel == "fsdp") and log["config"]["precision"] == "bf16"
        curves[parallel] = [(r["loss"], r["grad_norm"]) for r in log["curve"]]
    assert len(curves["ddp"]) == len(curves["fsdp"]) == 2  # log_every 10: steps 0 and 2
    for (l1, g1), (l2, g2) in zip(curves["ddp"], curves["fsdp"]):
        assert abs(l1 - l2) <= 1e-5 * abs(l1) and abs(g1 - g2) <= 1e-5 * g1
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "fsdp")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5


def test_cli_stops_when_fewer_gpus_are_visible_than_processes(teacher, tmp_path, capsys, monkeypatch):
    """One process per GPU: distill.processes 2 on a node that shows one GPU stops before launching anything."""
    p = load_params(ROOT / "workflow" / "smoke.yaml")
    p["distill"]["processes"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS))
    torch.save(BLACK, tmp_path / "black.pt")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    rc = cli_main(["distill", "--params", str(tmp_path / "params.yaml"), "--teacher", str(teacher), "--prompts",
                   str(tmp_path / "prompts.txt"), "--black-latent", str(tmp_path / "black.pt"), "--out",
                   str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "distill.processes is 2 (one process per GPU) but 1 GPU(s) are visible" in err, err
    assert "accelerate" not in err and not (tmp_path / "out").exists()
