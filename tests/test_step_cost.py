"""benchmarks/step_cost.py --tiny on the CPU: every piece of both steps is measured, the accounting adds
up, the tangent table covers every JVP method, and the outputs are written. (The numbers themselves are
a GPU run's business, docs/step-cost.md.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark as load_script

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    return load_script("step_cost")


@pytest.fixture(autouse=True)
def dynamo_config_restored():
    """`step_cost.py --compile` makes Dynamo's recompile limit strict for its process; a test is not that process."""
    import torch

    c = torch._dynamo.config
    with c.patch(recompile_limit=c.recompile_limit, fail_on_recompile_limit_hit=c.fail_on_recompile_limit_hit):
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    bench = load_benchmark()
    out = tmp_path_factory.mktemp("step_cost") / "table"
    report = bench.main(["--tiny", "--device", "cpu", "--steps", "1", "--warmup", "1", "--route-steps", "4",
                         "--batch", "2", "--jvp-repeats", "1", "--profile", "--out", str(out)])
    return bench, report, out


def finite_positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_piece_is_measured_and_adds_up(run):
    bench, report, _ = run
    for method, pieces in (("tbcm", bench.TBCM_PIECES), ("scm", bench.SCM_PIECES)):
        r = report[method]
        assert r["pairs"] == 2 * 3  # equal pairs per step: 2 prompts x (4 - 1) vs 6 captioned images
        assert set(r["pieces"]) == set(pieces)
        assert finite_positive(r["step_s"]) and finite_positive(r["peak_bytes"]) and finite_positive(r["resident_bytes"])
        for name, p in r["pieces"].items():
            assert math.isfinite(p["s"]) and p["s"] >= 0, (method, name)
            if name != "other":
                assert finite_positive(p["s"]), (method, name)
                assert math.isfinite(p["extra_peak_bytes"]) and p["extra_peak_bytes"] >= 0, (method, name)
        # pieces are disjoint intervals of the step: what is left over is never negative
        assert sum(p["s"] for p in r["pieces"].values()) == pytest.approx(r["step_s"])
        assert r["peak_bytes"] >= r["resident_bytes"]
    tbcm, scm = report["tbcm"]["pieces"], report["scm"]["pieces"]
    assert tbcm["teacher rollout"]["calls"] == 4  # N teacher calls (CFG in one batch) per rollout
    assert scm["teacher CFG velocity"]["calls"] == 1
    assert tbcm["tangent (JVP of θ⁻)"]["calls"] == scm["tangent (JVP of θ⁻)"]["calls"] == 1
    assert tbcm["student forward"]["calls"] == 1  # the JVP's own forwards count in the tangent, not here


def test_tangent_table_covers_every_method(run):
    bench, report, _ = run
    j = report["jvp_ratios"]
    assert finite_positive(j["forward_s"]) and j["pairs"] == 6
    assert set(j["methods"]) == set(bench.TABLE_METHODS)
    for method, r in j["methods"].items():
        assert "error" not in r, (method, r)
        assert finite_positive(r["s"]) and finite_positive(r["ratio"])
    assert j["methods"]["math"]["rel_diff_vs_math"] == 0
    assert j["methods"]["processor"]["rel_diff_vs_math"] < 1e-5  # float32 on the CPU
    assert j["methods"]["processor_pytorch_rules"]["rel_diff_vs_math"] < 1e-5
    assert j["methods"]["finite_difference"]["rel_diff_vs_math"] < 1e-2


def test_profile_charges_every_kernel_once(run):
    """--profile: one call of the forward and of each tangent method; the operator families add up to the
    call's total, the tangents cost more than the forward, and the table says so."""
    bench, report, out = run
    profiles = report["jvp_ratios"]["profiles"]
    assert list(profiles) == ["forward", *bench.TABLE_METHODS]
    for name, prof in profiles.items():
        assert finite_positive(prof["total_s"]), name
        assert sum(prof["families"].values()) == pytest.approx(prof["total_s"]), name
        assert set(prof["families"]) <= {f for f, _ in bench.OP_FAMILIES} | {"elementwise, norms, reductions, other"}
        assert prof["top"] and prof["top"][0]["s"] >= prof["top"][-1]["s"] > 0
    assert profiles["math"]["total_s"] > profiles["forward"]["total_s"]
    assert profiles["forward"]["families"]["matmul and convolution"] > 0  # the tiny student's linears and convolutions
    md = out.with_suffix(".md").read_text()
    assert "Where the time goes" in md and "Top operators, processor" in md


def test_op_families():
    bench = load_benchmark()
    assert bench.op_family("aten::addmm") == bench.op_family("aten::cudnn_convolution") == "matmul and convolution"
    assert bench.op_family("aten::_scaled_dot_product_flash_attention") == "fused attention"
    assert bench.op_family("aten::copy_") == "dtype casts and copies"
    assert bench.op_family("aten::mul") == "elementwise, norms, reductions, other"


def test_table_only_runs_no_training_step(tmp_path):
    bench = load_benchmark()
    report = bench.main(["--tiny", "--device", "cpu", "--table-only", "--table-methods", "processor",
                         "--route-steps", "3", "--jvp-repeats", "1", "--out", str(tmp_path / "t")])
    assert "tbcm" not in report and "scm" not in report
    assert list(report["jvp_ratios"]["methods"]) == ["processor"]
    md = (tmp_path / "t.md").read_text()
    assert "| processor |" in md and "trained pairs per step" not in md


def test_no_table_runs_only_the_steps(tmp_path):
    bench = load_benchmark()
    report = bench.main(["--tiny", "--device", "cpu", "--no-table", "--steps", "1", "--warmup", "0", "--route-steps", "3",
                         "--out", str(tmp_path / "s")])
    assert report["jvp_ratios"] is None and report["tbcm"]["pairs"] == report["scm"]["pairs"] == 2
    md = (tmp_path / "s.md").read_text()
    assert "trained pairs per step" in md and "Tangent vs forward" not in md
    ratio = report["tbcm"]["pieces"]["tangent (JVP of θ⁻)"]["s"] / report["tbcm"]["pieces"]["student forward"]["s"]
    assert f"the same 2 pairs as the step runs both: TBCM **{ratio:.2f}x**" in md


def test_rollout_ahead_shares_one_rollout_over_k_steps(tmp_path, run):
    """--rollout-ahead 3: one rollout and one text encode per 3 training steps, reported per step; --optimizer came;
    --offload-frozen: TBCM's text encoder and teacher each come to the device once per rollout (sCM's stay)."""
    bench = load_benchmark()
    report = bench.main(["--tiny", "--device", "cpu", "--no-table", "--steps", "1", "--warmup", "0", "--route-steps", "3",
                         "--rollout-ahead", "3", "--optimizer", "came", "--offload-frozen", "--out", str(tmp_path / "k")])
    tbcm, scm = report["tbcm"], report["scm"]
    assert tbcm["steps_per_rollout"] == 3 and scm["steps_per_rollout"] == 1 and tbcm["pairs"] == scm["pairs"] == 2
    pieces = tbcm["pieces"]
    assert pieces["teacher rollout"]["calls"] == 1  # N = 3 teacher calls for 3 steps
    assert pieces["text encode"]["calls"] == pytest.approx(1 / 3)
    # in and out for the encode, in and out for the rollout
    assert pieces[bench.OFFLOAD_PIECE]["calls"] == pytest.approx(4 / 3) and bench.OFFLOAD_PIECE not in scm["pieces"]
    assert pieces["student forward"]["calls"] == pieces["tangent (JVP of θ⁻)"]["calls"] == 1
    assert sum(p["s"] for p in pieces.values()) == pytest.approx(tbcm["step_s"])
    md = (tmp_path / "k.md").read_text()
    assert "rollout serves 3 step(s) (its text encoder and teacher on the CPU between rollouts); optimizer came" in md
    assert f"| {bench.OFFLOAD_PIECE} |" in md and "| of which optimizer state (GiB) |" in md
    # CAME: a first moment and row / column factors against AdamW's two full moments (the run fixture's)
    adamw = run[1]["tbcm"]["optimizer_state_bytes"]
    assert 0 < tbcm["optimizer_state_bytes"] < 0.6 * adamw and scm["optimizer_state_bytes"] == tbcm["optimizer_state_bytes"]


def test_outputs_are_written_and_name_the_device(run):
    bench, report, out = run
    md = out.with_suffix(".md").read_text()
    assert json.loads(out.with_suffix(".json").read_text())["tbcm"]["pairs"] == 6
    assert report["device"] in md and "tiny" in md
    for name in set(bench.TBCM_PIECES) | set(bench.SCM_PIECES) | set(bench.JVP_METHODS):
        assert f"| {name} |" in md, name
    assert "failed" not in md


def test_bad_arguments_stop_before_building_anything():
    bench = load_benchmark()
    with pytest.raises(SystemExit, match="--batch must be >= 1"):
        bench.main(["--tiny", "--batch", "0"])
    with pytest.raises(SystemExit, match="--route-steps must be >= 2"):
        bench.main(["--tiny", "--route-steps", "1"])
    with pytest.raises(SystemExit, match="--rollout-ahead must be >= 1"):
        bench.main(["--tiny", "--rollout-ahead", "0"])
    with pytest.raises(SystemExit, match="--offload-frozen with --compile-teacher reduce-overhead"):
        bench.main(["--tiny", "--offload-frozen", "--compile", "--compile-teacher", "reduce-overhead"])
    with pytest.raises(SystemExit, match="leave nothing to measure"):
        bench.main(["--tiny", "--table-only", "--no-table"])


def test_prompt_encoding_is_sana_pipelines_with_the_instruction_prefix():
    """The benchmark's text encode is SanaPipeline.encode_prompt with the complex human instruction."""
    import torch
    from diffusers import SanaPipeline

    from tbcm.models.reference_shapes import tiny_shapes

    bench = load_benchmark()
    shapes = tiny_shapes()
    stack = bench.build_stack(shapes, torch.device("cpu"), torch.float32, checkpointing=False)
    encode, length = bench.text_encoder_fn(stack, shapes)
    pipe = SanaPipeline(tokenizer=stack["tokenizer"], text_encoder=stack["encoder"], vae=None, transformer=None,
                        scheduler=None)
    prompts = ["a red circle on a blue background", "dark city"]
    embeds, mask, *_ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, device=torch.device("cpu"),
                                          max_sequence_length=shapes.prompt_tokens,
                                          complex_human_instruction=shapes.instruction)
    ours = encode(prompts)
    assert length > shapes.prompt_tokens  # the encoder reads the prefix too
    assert ours["prompt_embeds"].shape[1] == shapes.prompt_tokens
    assert torch.equal(ours["prompt_embeds"], embeds) and torch.equal(ours["prompt_attention_mask"], mask)


def test_real_stack_shapes_on_the_meta_device():
    """The Sana-Sprint 0.6B stack built from its configs (meta tensors: no memory, no compute): published
    sizes, matching interfaces, and the JVP processor's forward-mode pass at the real shape."""
    import torch
    from diffusers import AutoencoderDC, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    from tbcm.models.jvp_attention import use_jvp_attention
    from tbcm.models.reference_shapes import sana_sprint_0p6b_shapes

    s = sana_sprint_0p6b_shapes()
    with torch.device("meta"):
        transformer = SanaTransformer2DModel(**s.transformer)
        text = Gemma2Model(Gemma2Config(**s.text_encoder))
        vae = AutoencoderDC(**s.vae)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert round(count(transformer) / 1e9, 2) == 0.59  # "0.6B"
    assert round(count(text) / 1e9, 2) == 2.61  # gemma-2-2b
    assert s.transformer["caption_channels"] == s.text_encoder["hidden_size"]
    assert len(s.instruction) > 1 and s.prompt_tokens == 300
    assert use_jvp_attention(transformer) == 28
    with torch.device("meta"), torch.no_grad():
        assert vae.encode(torch.randn(1, 3, s.resolution, s.resolution)).latent.shape == (1, *s.latent_shape)
        x = torch.randn(2, *s.latent_shape)
        fn = lambda y: transformer(y, encoder_hidden_states=torch.randn(2, 300, 2304), timestep=torch.ones(2),  # noqa: E731
                                   encoder_attention_mask=torch.ones(2, 300)).sample
        out, tangent = torch.func.jvp(fn, (x,), (torch.randn_like(x),))
    assert out.shape == tangent.shape == x.shape


def device_script_runs() -> tuple[list[str], dict[str, list[str]]]:
    """The default run names of benchmarks/step_cost_device.sh and each run's step_cost.py arguments."""
    import re
    import shlex

    text = (ROOT / "benchmarks" / "step_cost_device.sh").read_text().replace("\\\n", " ")
    default = re.search(r'for r in "\$\{@:-([^}]*)\}"', text).group(1).split()
    runs = {}
    for line in text.splitlines():  # "run NAME LIMIT ARGS ;;", after a case label or alone on its line
        command = re.sub(r"^[a-z-]+\)", "", line.strip()).strip()
        if command.startswith("run "):
            words = shlex.split(command.split(";;")[0])
            runs[words[1]] = words[3:]
    return default, runs


@pytest.mark.slow
def test_the_device_scripts_default_runs_go_through_on_the_tiny_stack(tmp_path):
    """The prepared GPU call's default runs (their exact flags, with 3 steps per rollout on a route of 4 so that
    the teacher's batch is sCM's, as 15 on Sana's 16), on the CPU in bf16 as on a GPU: both steps measured, and
    with --compile five graphs, each one transformer block: the tangent's block JVP and the student's block in
    the gradient pass, each twice (the fp32 student's first block gets the bf16 embedding, the others its blocks'
    fp32 outputs), and the offloaded teacher's block; none compiled again (neither for sCM, nor for the first
    block's strides, nor when the teacher's weights come back at new addresses) and no graph break."""
    import torch
    from torch._dynamo.utils import counters

    default, runs = device_script_runs()
    assert default == ["levers", "ahead-offload"] and set(default) <= set(runs)
    for name in default:
        args = runs[name]
        args[args.index("--rollout-ahead") + 1] = "3"
        torch._dynamo.reset()
        counters.clear()
        report = load_benchmark().main(["--tiny", "--device", "cpu", "--precision", "bf16", "--route-steps", "4",
                                        *args, "--out", str(tmp_path / name)])
        assert report["tbcm"]["steps_per_rollout"] == 3 and report["tbcm"]["pairs"] == report["scm"]["pairs"] == 3
        assert report["offload_frozen"] and report["optimizer"] == "came"
        if "--compile" in args:
            assert counters["frames"]["total"] == counters["stats"]["unique_graphs"] == 5
            assert not counters["graph_break"]
            # the report says so itself (the device's output is read, not its process's counters)
            assert (report["dynamo"]["graphs"], report["dynamo"]["graph_breaks"]) == (5, 0)
            assert "torch.compile: 5 graph(s) compiled, 0 graph break(s)" in (tmp_path / f"{name}.md").read_text()
        else:
            assert report["dynamo"] is None
            # the eager table of the processor with and without the zero-tangent products (tbcm.skip_zero_tangents)
            methods = report["jvp_ratios"]["methods"]
            assert set(methods) == {"processor", "processor_pytorch_rules"}
            assert all("error" not in r and r["rel_diff_vs_math"] < 2e-2 for r in methods.values())  # bf16
