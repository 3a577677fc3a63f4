"""One transformer block's compiled JVP with and without the products of zero tangents (`tbcm.zero_tangents`),
against the block's compiled forward, side by side in one process.

    python benchmarks/zero_products.py --device cpu --out docs/zero-products/cpu       # Sana-Sprint 0.6B width
    python benchmarks/zero_products.py --device cuda --out docs/zero-products/h100
    python benchmarks/zero_products.py --tiny                                           # seconds, for the tests

The block is the student's as `distill.compile` runs its tangent: a Sana-Sprint 0.6B transformer block (width
1152, 1024 image tokens at 1024 px, 300 text tokens) with the JVP attention processor and split convolution
biases, fp32 weights under bf16 autocast, no grad; the tangent flows in the hidden states and the timestep
modulation (`SanaTrigFlowStudent.jvp_regions`), the text carries none. Three calls, each compiled afresh
(inductor's caches off, static shapes): the forward, `regional_jvp.block_jvp` as PyTorch's forward-mode rules
write it, and the same with `drop_zero_products()`. Per call: compile time (first call), the median time over
`--repeats` rounds in which the three take turns (a 2-core machine's slow spells fall on all alike), and the matrix products and convolutions in inductor's generated code; the JVP's tangent's
relative distance between the two ways (they compute the same sums less some zeros: rounding only). Random
weights (cost does not depend on weight values).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import platform
import re
import statistics
import sys
import time

import torch


def build(args, device):
    from diffusers import SanaTransformer2DModel

    from tbcm.models.compiled_jvp import split_conv_bias
    from tbcm.models.jvp_attention import use_jvp_attention
    from tbcm.models.reference_shapes import sana_sprint_0p6b_config
    from tbcm.models.sana import tiny_sana_config

    if args.tiny:
        cfg = tiny_sana_config(hidden=32, layers=1, heads=2, sample_size=args.side, caption_channels=32)
    else:
        cfg = sana_sprint_0p6b_config() | {"num_layers": 1, "sample_size": args.side}
    torch.manual_seed(0)
    with torch.device(device):
        tr = SanaTransformer2DModel(**cfg).eval().requires_grad_(False)
    split_conv_bias(tr)
    use_jvp_attention(tr)
    block = tr.transformer_blocks[0]
    width = tr.config.num_attention_heads * tr.config.attention_head_dim
    side = args.side // tr.config.patch_size
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    B = args.batch
    h, dh, ts, dts, text = r(B, side * side, width), r(B, side * side, width), r(B, 6 * width), r(B, 6 * width), \
        r(B, args.text, width)
    return block, (h, None, text, None, ts, side, side), (h, ts), (dh, dts)


def products(code: str) -> dict:
    return dict(sorted(collections.Counter(re.findall(r"extern_kernels\.(\w+)", code)).items()))


def first_call(fn, args, device, options=None):
    """Compile `fn` (a code object of its own, so that the three calls keep their own compiled graphs) and call it
    once: (compiled, output, compile seconds, matrix products in the generated code)."""
    from torch._inductor.utils import run_and_get_code

    compiled = torch.compile(fn, dynamic=False, options=options)
    t0 = time.perf_counter()
    out, code = run_and_get_code(compiled, *args)
    _sync(device)
    return compiled, out, time.perf_counter() - t0, products("\n".join(code))


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
    ap.add_argument("--tiny", action="store_true", help="a tiny block (the tests)")
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json (atomically)")
    args = ap.parse_args(argv)
    for name in ("batch", "side", "text", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but no CUDA device is available")
    if args.batch is None:
        args.batch = 15 if device.type == "cuda" else 1
    from tbcm.atomic import write_json, write_text
    from tbcm.machine import cpu_model
    from tbcm.regional_jvp import block_jvp
    from tbcm.zero_tangents import drop_zero_products

    block, call_args, primals, tangents = build(args, device)

    def forward(h, ts):
        return block(h, *call_args[1:4], ts, *call_args[5:])

    def jvp_kept(*pt):
        return block_jvp(block, pt[:2], pt[2:], call_args, (0, 4))

    def jvp_dropped(*pt):  # the same, a code object of its own
        return block_jvp(block, pt[:2], pt[2:], call_args, (0, 4))

    rows, compiled, outs = {}, {}, {}
    dual = (*primals, *tangents)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16), \
            torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False):
        torch._dynamo.reset()
        for name, fn, a, options in (("forward", forward, primals, None),
                                     ("jvp, PyTorch's rules", jvp_kept, dual, None),
                                     ("jvp, zero products dropped", jvp_dropped, dual, drop_zero_products())):
            print(f"{name}: compiling ...", file=sys.stderr, flush=True)
            fn_c, outs[name], seconds, prods = first_call(fn, a, device, options)
            compiled[name] = (fn_c, a)
            rows[name] = {"compile_s": seconds, "products": prods}
        print(f"timing, {args.repeats} rounds ...", file=sys.stderr, flush=True)
        for name, ms in interleaved_ms(compiled, args.repeats, device).items():
            rows[name]["ms"] = ms
    kept, dropped = outs["jvp, PyTorch's rules"], outs["jvp, zero products dropped"]
    fwd = rows["forward"]
    for r in rows.values():
        r["over_forward"] = r["ms"] / fwd["ms"]
        r["products_over_forward"] = sum(r["products"].values()) / sum(fwd["products"].values())
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        machine = f"{p.name}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    else:
        machine = f"{cpu_model(platform.processor() or 'CPU')}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    report = {"machine": machine, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(["python benchmarks/zero_products.py", *(argv if argv is not None else sys.argv[1:])]),
              "block": "tiny" if args.tiny else "Sana-Sprint 0.6B", "batch": args.batch,
              "tokens": primals[0].shape[1], "text": args.text, "repeats": args.repeats,
              "calls": rows, "tangent_distance": rel(dropped[1], kept[1]), "primal_distance": rel(dropped[0], kept[0])}
    lines = [f"# One block's compiled JVP, with and without the products of zero tangents ({report['block']})", "",
             f"Machine: **{machine}**. Run {report['date']}: `{report['command']}`.", "",
             f"{args.batch} pair(s), {report['tokens']} image tokens, {args.text} text tokens, bf16 autocast, fp32 "
             f"weights, no grad; each call compiled afresh (inductor's graph caches off); median of {args.repeats} "
             f"rounds, the three calls taking turns.", "",
             "| call | compile s | ms / call | / forward | matrix products and convolutions | / forward |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        prods = ", ".join(f"{k} {v}" for k, v in r["products"].items())
        lines.append(f"| {name} | {r['compile_s']:.1f} | {r['ms']:.2f} | {r['over_forward']:.2f}x | {prods} "
                     f"(= {sum(r['products'].values())}) | {r['products_over_forward']:.2f}x |")
    lines += ["", f"Tangent with the zero products dropped against PyTorch's rules: relative distance "
                  f"{report['tangent_distance']:.1e} (primal {report['primal_distance']:.1e})."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_json(f"{args.out}.json", report)
        write_text(f"{args.out}.md", text)
    return report


if __name__ == "__main__":
    main()
