"""Compile time of `distill.compile`'s three calls, the whole call against one block compiled for all.

    python benchmarks/compile_time.py --device cuda --out docs/compile-time-h100     # Sana-Sprint 0.6B, 1024 px
    python benchmarks/compile_time.py --device cpu --side 4 --text 16 --batch 2      # the same width, few tokens
    python benchmarks/compile_time.py --tiny --device cpu                            # seconds, for the tests

The calls, as `tbcm.distill` makes them (bf16 autocast; the student's weights fp32, the teacher's bf16):
- `jvp`: the loss's tangent of the frozen student (`loss.compiled_directional_derivative`, JVP processor),
  whole (one torch.compile of the call) or block by block (`tbcm.regional_jvp`);
- `grad`: the student's gradient pass, forward and checkpointed backward of a mean square, whole
  (`torch.compile(student)`) or its blocks in place (`models.compiled_student.compile_gradient_pass`);
- `teacher`: one no-grad teacher call, whole or its blocks in place (`models.compiled_teacher`, default mode).

Each (call, way) runs in a fresh process with inductor's caches off (`TORCHINDUCTOR_FORCE_DISABLE_CACHES`), so
the first compiled call pays the whole compile. Per run: one eager call (the reference), the first compiled
call, then the mean of `--repeats` compiled calls, and the compiled result's relative distance to the eager
one (bf16: rounding). Random weights (compile time and cost do not depend on weight values).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

CALLS = ("jvp", "grad", "teacher")
WAYS = ("whole", "regional")


def build(args, device):
    from diffusers import SanaTransformer2DModel

    from tbcm.models.compiled_jvp import split_conv_bias
    from tbcm.models.jvp_attention import use_jvp_attention
    from tbcm.models.reference_shapes import random_student_inputs, sana_sprint_0p6b_config
    from tbcm.models.sana import GUIDANCE, student_from_teacher, tiny_sana_config

    if args.tiny:
        cfg = tiny_sana_config(hidden=32, layers=args.layers, heads=2, in_channels=8, sample_size=args.side,
                               caption_channels=32)
    else:
        cfg = sana_sprint_0p6b_config() | {"num_layers": args.layers, "sample_size": args.side}
    torch.manual_seed(0)
    with torch.device(device):
        teacher = SanaTransformer2DModel(**cfg).eval().requires_grad_(False)
    student = student_from_teacher(teacher)
    teacher.to(torch.bfloat16)
    for model in (teacher, student):
        split_conv_bias(model)  # as distill.compile does (torch 2.11's inductor)
    use_jvp_attention(student)
    xtv, scond = random_student_inputs(cfg, args.batch, args.side, args.text, device)
    cond = {k: v for k, v in scond.items() if k != GUIDANCE}  # the teacher's: no guidance embedding
    return teacher, student, xtv, cond, scond


def one(args) -> dict:
    """One (call, way) in this process: eager reference, first compiled call, then timed calls."""
    import tbcm.loss as L
    from tbcm.models.compiled_student import compile_gradient_pass, compile_sana_blocks
    from tbcm.models.sana import SanaTrigFlowStudent, sana_denoiser

    device = torch.device(args.device)
    teacher_tr, student_tr, (x, t, v), cond, scond = build(args, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    student = SanaTrigFlowStudent(student_tr)
    if args.call == "jvp":
        student_tr.eval().requires_grad_(False)
        primals, tangents = L.ode_tangents(x, t, v)
        fn = lambda a, b: student(a, b, scond)  # noqa: E731
        regions = student.jvp_regions if args.way == "regional" else None

        def call(compiled):
            with torch.no_grad(), autocast:
                if not compiled:
                    return L.directional_derivative(fn, primals, tangents)[1]
                return L.compiled_directional_derivative(fn, primals, tangents, "jvp", regions=regions)[1]
    elif args.call == "grad":
        student_tr.train().enable_gradient_checkpointing()
        whole = torch.compile(student, dynamic=False) if args.way == "whole" else student

        def call(compiled):
            with autocast:
                out = (whole if compiled else student)(x, t, scond)
            out.float().square().mean().backward()
            grad = torch.cat([p.grad.flatten() for p in student_tr.parameters() if p.grad is not None])
            student_tr.zero_grad(set_to_none=True)
            return grad
    else:
        teacher = sana_denoiser(teacher_tr)
        whole = torch.compile(teacher, dynamic=False) if args.way == "whole" else teacher

        def call(compiled):
            with torch.no_grad(), autocast:
                return (whole if compiled else teacher)(x, t, cond)

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    eager_s, ref = timed(lambda: call(False))
    if args.way == "regional" and args.call == "grad":  # in place, so only after the eager reference
        compile_gradient_pass(student)
    elif args.way == "regional" and args.call == "teacher":
        compile_sana_blocks(teacher_tr)
    first_s, out = timed(lambda: call(True))
    runs = [timed(lambda: call(True))[0] for _ in range(args.repeats)]
    rel = float((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30))
    return {"call": args.call, "way": args.way, "eager_s": eager_s, "first_call_s": first_s,
            "call_s": sum(runs) / len(runs), "rel_diff_vs_eager": rel}


def markdown(report: dict) -> str:
    lines = [f"Compile time, {report['shape']}, on {report['device']} ({report['date']}), inductor caches off:", "",
             "| call | way | first compiled call s | compiled call ms | eager call ms | distance to eager |",
             "|---|---|---|---|---|---|"]
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"| {r['call']} | {r['way']} | {r['error']} | | | |")
            continue
        lines.append(f"| {r['call']} | {r['way']} | {r['first_call_s']:.1f} | {1000 * r['call_s']:.1f} | "
                     f"{1000 * r['eager_s']:.1f} | {r['rel_diff_vs_eager']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    ap.add_argument("--tiny", action="store_true",
                    help="the tests' tiny Sana (hidden 32) instead of Sana-Sprint 0.6B's width")
    ap.add_argument("--layers", type=int, default=None, help="transformer blocks (default 28; --tiny: 2)")
    ap.add_argument("--batch", type=int, default=1, help="pairs per call (default 1)")
    ap.add_argument("--side", type=int, default=None, help="latent side (default 32, 1024 px; --tiny: 4)")
    ap.add_argument("--text", type=int, default=None, help="prompt tokens (default 300; --tiny: 8)")
    ap.add_argument("--calls", default=",".join(CALLS), help=f"comma-separated, some of {list(CALLS)}")
    ap.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, some of {list(WAYS)}")
    ap.add_argument("--repeats", type=int, default=3, help="timed compiled calls after the first (default 3)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per (call, way) process (default 900)")
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json (atomically)")
    ap.add_argument("--call", choices=CALLS, help=argparse.SUPPRESS)  # one run, in a child process
    ap.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for name, tiny, real in (("layers", 2, 28), ("side", 4, 32), ("text", 8, 300)):
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else real)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    for name in ("layers", "batch", "side", "text", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.call:
        print(json.dumps(one(args)), flush=True)
        return {}
    calls, ways = [c for c in args.calls.split(",") if c], [w for w in args.ways.split(",") if w]
    bad = sorted(set(calls) - set(CALLS)) + sorted(set(ways) - set(WAYS))
    if bad or not calls or not ways:
        raise SystemExit(f"--calls / --ways: unknown or empty {bad}; expected some of {list(CALLS)} / {list(WAYS)}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from step_cost import publish

    from tbcm.machine import device_name

    env = {**os.environ, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}
    shape = (f"{'tiny Sana' if args.tiny else 'Sana-Sprint 0.6B width'}, {args.layers} blocks, batch {args.batch}, "
             f"{args.side}x{args.side} latent, {args.text} prompt tokens, bf16 autocast")
    report = {"shape": shape, "device": device_name(args.device),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": []}
    child = [sys.executable, __file__, "--device", args.device, "--layers", str(args.layers), "--batch",
             str(args.batch), "--side", str(args.side), "--text", str(args.text), "--repeats", str(args.repeats)]
    child += ["--tiny"] if args.tiny else []
    for call in calls:
        for way in ways:
            cmd = [*child, "--call", call, "--way", way]
            print(f"{call} {way} ...", file=sys.stderr, flush=True)
            try:
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
                lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
                row = json.loads(lines[-1]) if res.returncode == 0 and lines else {
                    "call": call, "way": way, "error": f"exit {res.returncode}: {res.stderr.strip().splitlines()[-1:]}"}
            except subprocess.TimeoutExpired:
                row = {"call": call, "way": way, "error": f"cut at {args.timeout} s"}
            report["runs"].append(row)
            print(f"  {row}", file=sys.stderr, flush=True)
    publish(report, markdown(report), args.out)
    return report


if __name__ == "__main__":
    main()
