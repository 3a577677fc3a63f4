"""The loss's compiled JVP with and without the products of zero tangents (`tbcm.zero_tangents`), against the
compiled forward, side by side in one process; with --eager, the same uncompiled (`tbcm.skip_zero_tangents`).

    python benchmarks/zero_products.py --device cpu --out docs/zero-products/cpu                # one block
    python benchmarks/zero_products.py --device cpu --layers 28 --out docs/zero-products/cpu-28  # the student
    python benchmarks/zero_products.py --device cuda --out docs/zero-products/h100               # 15 pairs
    python benchmarks/zero_products.py --device cpu --eager --out docs/zero-products/cpu-eager   # uncompiled
    python benchmarks/zero_products.py --tiny                                                    # the tests

The student's as `distill.compile` runs its tangent: Sana-Sprint 0.6B transformer blocks (width 1152, 1024 image
tokens at 1024 px, 300 text tokens) with the JVP attention processor and split convolution biases, fp32 weights
under bf16 autocast, no grad (the JVPs with SDPA pinned to its math backend, as the loss runs them); the tangent flows in the hidden states and the
timestep modulation (`SanaTrigFlowStudent.jvp_regions`), the text carries none. Three calls: the forward, the
JVP as PyTorch's forward-mode rules write it, and the same with `drop_zero_products()`. `--layers 1` (default):
one block, each call one compiled function (`regional_jvp.block_jvp` for the JVPs); more: the whole student,
its forward with the blocks compiled in place, its tangent by `regional_jvp` (eager head and tail around one
compiled block JVP). Compiled afresh (inductor's graph caches off, static shapes). Per call: the first call's
time (compiling), the graphs it compiled, the median time over `--repeats` rounds in which the three calls take
turns (a 2-core machine's slow spells fall on all alike), the matrix products and convolutions in inductor's
generated code; and the tangent's relative distance between the two JVPs (the same sums less some zeros).
Random weights (cost does not depend on weight values).

--eager: the three calls as the loss runs them without `distill.compile` (`loss.directional_derivative` of the block
or the student): the forward, the JVP by PyTorch's rules (`skip_zeros=False`: torch.func.jvp) and the loss's default,
linear layers and convolutions skipping their weights' zero tangents on dual tensors (`skip_zero_tangents.skipping_jvp`);
"products" then counts the ATen matrix products and convolutions the first call ran (`CountProducts`).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import re
import statistics
import sys
import time

import torch


KEPT, DROPPED = "jvp, PyTorch's rules", "jvp, zero products dropped"
SKIPPED = "jvp, zero products skipped"  # --eager


def config(args) -> dict:
    from tbcm.models.reference_shapes import sana_sprint_0p6b_config
    from tbcm.models.sana import tiny_sana_config

    if args.tiny:
        return tiny_sana_config(hidden=32, layers=args.layers, heads=2, sample_size=args.side, caption_channels=32)
    return sana_sprint_0p6b_config() | {"num_layers": args.layers, "sample_size": args.side}


def transformer(cfg: dict, device):
    from diffusers import SanaTransformer2DModel

    from tbcm.models.compiled_jvp import split_conv_bias
    from tbcm.models.jvp_attention import use_jvp_attention
    from tbcm.models.sana import student_from_teacher

    torch.manual_seed(0)
    with torch.device(device):
        tr = student_from_teacher(SanaTransformer2DModel(**cfg)).eval().requires_grad_(False)
    split_conv_bias(tr)  # as distill.compile runs the student
    use_jvp_attention(tr)
    return tr


def block_calls(args, device):
    """One block: its forward and its JVP in (hidden states, timestep modulation), each one compiled function."""
    from tbcm.regional_jvp import block_jvp
    from tbcm.zero_tangents import drop_zero_products

    tr = transformer(config(args), device)
    block = tr.transformer_blocks[0]
    width = tr.config.num_attention_heads * tr.config.attention_head_dim
    side = args.side // tr.config.patch_size
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    B = args.batch
    h, dh, ts, dts, text = r(B, side * side, width), r(B, side * side, width), r(B, 6 * width), r(B, 6 * width), \
        r(B, args.text, width)
    call_args = (h, None, text, None, ts, side, side)

    def forward(h, ts):
        return block(h, *call_args[1:4], ts, *call_args[5:])

    def jvp_kept(*pt):
        return block_jvp(block, pt[:2], pt[2:], call_args, (0, 4))

    def jvp_dropped(*pt):  # the same, a code object of its own (its own compiled graph)
        return block_jvp(block, pt[:2], pt[2:], call_args, (0, 4))

    dual = (h, ts, dh, dts)
    if args.eager:  # the loss's own call on the block
        from tbcm.loss import directional_derivative

        tangent = lambda skip: lambda *a: directional_derivative(forward, a[:2], a[2:], skip_zeros=skip)  # noqa: E731
        return side * side, [("forward", forward, (h, ts)), (KEPT, tangent(False), dual), (SKIPPED, tangent(True), dual)]
    return side * side, [("forward", torch.compile(forward, dynamic=False), (h, ts)),
                         (KEPT, torch.compile(jvp_kept, dynamic=False), dual),
                         (DROPPED, torch.compile(jvp_dropped, dynamic=False, options=drop_zero_products()), dual)]


def model_calls(args, device):
    """The whole student as the loss runs it (`--layers` blocks): its forward with the blocks compiled in place,
    and the tangent by `regional_jvp` (eager head and tail, one compiled block JVP for all blocks)."""
    from tbcm.loss import directional_derivative, ode_tangents
    from tbcm.models.compiled_student import compile_sana_blocks
    from tbcm.models.reference_shapes import random_student_inputs
    from tbcm.models.sana import SanaTrigFlowStudent
    from tbcm.regional_jvp import block_jvp, regional_jvp
    from tbcm.zero_tangents import drop_zero_products

    cfg = config(args)
    tr = transformer(cfg, device)
    student = SanaTrigFlowStudent(tr)
    (x, t, v), cond = random_student_inputs(cfg, args.batch, args.side, args.text, device)
    (x, t), (vx, vt) = ode_tangents(x, t, v)
    fn = lambda a, b: student(a, b, cond)  # noqa: E731
    tokens = (args.side // tr.config.patch_size) ** 2
    if args.eager:  # the loss's own call
        tangent = lambda skip: lambda *a: directional_derivative(fn, a[:2], a[2:], skip_zeros=skip)  # noqa: E731
        return tokens, [("forward", fn, (x, t)), (KEPT, tangent(False), (x, t, vx, vt)),
                        (SKIPPED, tangent(True), (x, t, vx, vt))]
    compile_sana_blocks(tr)

    def kept_block(*a):
        return block_jvp(*a)

    def dropped_block(*a):  # the same, a code object of its own
        return block_jvp(*a)

    kept = torch.compile(kept_block, dynamic=False)
    dropped = torch.compile(dropped_block, dynamic=False, options=drop_zero_products())
    jvp = lambda block_fn: lambda *a: regional_jvp(fn, student.jvp_regions, a[:2], a[2:], block_fn=block_fn)  # noqa: E731
    return tokens, [("forward", fn, (x, t)), (KEPT, jvp(kept), (x, t, vx, vt)), (DROPPED, jvp(dropped), (x, t, vx, vt))]


def products(code: str) -> dict:
    return dict(sorted(collections.Counter(re.findall(r"extern_kernels\.(\w+)", code)).items()))


def first_call(fn, args, device, eager: bool = False):
    """Call `fn` once, compiling what it compiles: (output, seconds, matrix products in the generated code, or, eager,
    the ATen products it ran: counted in a second, untimed call, as the counter's dispatch takes time of its own)."""
    from torch._inductor.utils import run_and_get_code

    from tbcm.skip_zero_tangents import CountProducts

    t0 = time.perf_counter()
    if eager:
        out = fn(*args)
        _sync(device)
        seconds = time.perf_counter() - t0
        with CountProducts() as count:
            fn(*args)
        return out, seconds, {k: v for k, v in sorted(count.ops.items()) if k in CountProducts.PRODUCTS}
    out, code = run_and_get_code(fn, *args)
    _sync(device)
    return out, time.perf_counter() - t0, products("\n".join(code))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_ms(calls: dict, repeats: int, device) -> dict:
    """Median ms of each compiled call over `repeats` rounds, the calls taking turns within a round, so that a
    slow spell of the machine falls on all of them alike."""
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, (fn, args) in calls.items():
            t0 = time.perf_counter()
            fn(*args)
            _sync(device)
            times[name].append(1000 * (time.perf_counter() - t0))
    return {name: statistics.median(ts) for name, ts in times.items()}


def rel(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--batch", type=int, default=None, help="pairs (default: 15 on a GPU, one TBCM step's; 1 on a CPU)")
    ap.add_argument("--side", type=int, default=32, help="latent side (32: 1024 px, 1024 tokens)")
    ap.add_argument("--text", type=int, default=300, help="text tokens")
    ap.add_argument("--repeats", type=int, default=20, help="timing rounds (default %(default)s)")
    ap.add_argument("--layers", type=int, default=1,
                    help="1: one block, each call one compiled function; more: the whole student with that many blocks "
                         "(28: Sana-Sprint 0.6B), as the loss runs its tangent (default %(default)s)")
    ap.add_argument("--eager", action="store_true",
                    help="the calls uncompiled, the zero products skipped by tbcm.skip_zero_tangents")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                    help="bf16: autocast over fp32 weights, as on a GPU (default); fp32: none (a CPU without fast bf16)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model (the tests)")
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json (atomically)")
    args = ap.parse_args(argv)
    for name in ("batch", "side", "text", "repeats", "layers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but no CUDA device is available")
    if args.batch is None:
        args.batch = 15 if device.type == "cuda" else 1
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from tbcm.atomic import write_tables
    from tbcm.machine import device_name
    from tbcm.models.compile_report import compile_stats

    tokens, calls = (block_calls if args.layers == 1 else model_calls)(args, device)
    rows, outs = {}, {}

    def pinned(fn):  # the tangent as the loss takes it: SDPA pinned to its math backend (no forward-mode rule in the
        def call(*a):  # fused kernels; the JVP processor's primal re-enables them), the forward as a forward runs
            with sdpa_kernel(SDPBackend.MATH):
                return fn(*a)
        return call

    calls = [(name, fn if name == "forward" else pinned(fn), a) for name, fn, a in calls]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    with torch.no_grad(), autocast, \
            torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False):
        torch._dynamo.reset()
        for name, fn, a in calls:
            print(f"{name}: {'first call' if args.eager else 'compiling'} ...", file=sys.stderr, flush=True)
            since = compile_stats()
            outs[name], seconds, prods = first_call(fn, a, device, eager=args.eager)
            rows[name] = {"compile_s": seconds, "products": prods, "graphs": compile_stats(since)["graphs"]}
        print(f"timing, {args.repeats} rounds ...", file=sys.stderr, flush=True)
        for name, ms in interleaved_ms({name: (fn, a) for name, fn, a in calls}, args.repeats, device).items():
            rows[name]["ms"] = ms
    kept, dropped = outs[KEPT], outs[SKIPPED if args.eager else DROPPED]
    fwd = rows["forward"]
    for r in rows.values():
        r["over_forward"] = r["ms"] / fwd["ms"]
        r["products_over_forward"] = sum(r["products"].values()) / sum(fwd["products"].values())
    machine = device_name(device)
    report = {"machine": machine, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(["python benchmarks/zero_products.py", *(argv if argv is not None else sys.argv[1:])]),
              "model": f"{'tiny' if args.tiny else 'Sana-Sprint 0.6B'}, {args.layers} block(s)", "batch": args.batch,
              "tokens": tokens, "text": args.text, "repeats": args.repeats, "eager": args.eager,
              "precision": args.precision, "calls": rows, "tangent_distance": rel(dropped[1], kept[1]), "primal_distance": rel(dropped[0], kept[0])}
    how = ("uncompiled; products: the ATen matrix products and convolutions of a call (counted in a second, untimed one)"
           if args.eager else
           "each call compiled afresh (inductor's graph caches off); products: in inductor's code, all graphs")
    lines = [f"# {'Eager' if args.eager else 'Compiled'} JVP with and without the products of zero tangents "
             f"({report['model']})", "",
             f"Machine: **{machine}**. Run {report['date']}: `{report['command']}`.", "",
             f"{args.batch} pair(s), {report['tokens']} image tokens, {args.text} text tokens, "
             f"{'bf16 autocast, ' if args.precision == 'bf16' else ''}fp32 weights, no grad; {how}; median of "
             f"{args.repeats} rounds, the three calls taking turns.", "",
             f"| call | {'first call' if args.eager else 'compile'} s | graphs | ms / call | / forward "
             "| matrix products and convolutions | / forward |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        prods = ", ".join(f"{k} {v}" for k, v in r["products"].items())
        lines.append(f"| {name} | {r['compile_s']:.1f} | {r['graphs']} | {r['ms']:.2f} | {r['over_forward']:.2f}x | {prods} "
                     f"(= {sum(r['products'].values())}) | {r['products_over_forward']:.2f}x |")
    lines += ["", f"Tangent with the zero products {'skipped' if args.eager else 'dropped'} against PyTorch's rules: "
                  f"relative distance "
                  f"{report['tangent_distance']:.1e} (primal {report['primal_distance']:.1e})."]
    text = "\n".join(lines) + "\n"
    print(text)
    write_tables(args.out, report, text)
    return report


if __name__ == "__main__":
    main()
