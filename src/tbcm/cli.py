"""`tbcm <stage> ...`: one command per pipeline stage, each a thin shell over the library."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path


def _toy2d(args) -> int:
    from .toy2d import Toy2DConfig, run

    out = Path(args.out)
    summary = {}
    for method in args.methods:
        cfg = Toy2DConfig(method=method, steps=args.steps, seed=args.seed, tangent_c=args.tangent_c, lr=args.lr)
        res = run(cfg, out, progress=not args.quiet)
        summary[method] = res["energy_distance"]
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tbcm", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    from .toy2d import Toy2DConfig

    d = {f.name: f.default for f in fields(Toy2DConfig)}
    t = sub.add_parser("toy2d", help="known-answer distillation of a 2-D Gaussian mixture (TBCM vs sCM)",
                       description="Distil the exact velocity of a 2-D Gaussian mixture into a 1-step MLP "
                                   "with TBCM and with forward-sampling sCM; writes <method>.json and .png.")
    t.add_argument("--methods", nargs="+", default=["tbcm", "scm"], choices=["tbcm", "scm"])
    t.add_argument("--steps", type=int, default=d["steps"], help="optimiser steps (default %(default)s)")
    t.add_argument("--lr", type=float, default=d["lr"], help="Adam learning rate (default %(default)s)")
    t.add_argument("--tangent-c", type=float, default=d["tangent_c"], help="tangent normalisation constant c")
    t.add_argument("--seed", type=int, default=d["seed"])
    t.add_argument("--out", default="results/toy2d", help="output folder (default %(default)s)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_toy2d)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # bad input: say what, no traceback
        print(f"tbcm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
