"""Wall time of each stage of a finished Snakemake run of the embedded default, from Snakemake's own
log (job start and finish stamps), with the machine named; writes a Markdown table.

    python benchmarks/world_budget.py [.snakemake/log/<run>.snakemake.log] [--out docs/world-budget.md]

Run `make run` on an idle machine first: the numbers are the pipeline's real wall times, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from datetime import datetime
from pathlib import Path

from tbcm.machine import cpu_model

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")


def parse(log: Path) -> list[tuple[str, float]]:
    starts, rows, current_time, pending = {}, [], None, None
    for line in log.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            current_time = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^\s+jobid: (\d+)", line)
        if m and pending:
            starts[m.group(1)] = (pending, current_time)
            pending = None
            continue
        m = re.match(r"^Finished jobid: (\d+)", line) or re.match(r"^Finished job (\d+)\.", line)
        if m and m.group(1) in starts:
            name, t0 = starts.pop(m.group(1))
            if name != "all":
                rows.append((name, (current_time - t0).total_seconds()))
    return rows


def machine() -> str:
    cpu = cpu_model()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", nargs="?", help="Snakemake log (default: the newest in .snakemake/log)")
    ap.add_argument("--out", default=None, help="write the Markdown table here")
    args = ap.parse_args()
    log = Path(args.log) if args.log else max(Path(".snakemake/log").glob("*.snakemake.log"), key=os.path.getmtime)
    rows = parse(log)
    world = sum(s for n, s in rows if n.startswith("world_"))
    rest = sum(s for n, s in rows if not n.startswith("world_"))
    lines = [f"Machine: {machine()}. Log: `{log.name}` (stages run one at a time with `--cores 2`).", "",
             "| stage | wall s |", "|---|---|"] + [f"| {n} | {s:.0f} |" for n, s in rows]
    lines += [f"| **world build (data, VAE, judge, teacher)** | **{world:.0f}** |",
              f"| **distillation, sampling, evaluation, report** | **{rest:.0f}** |",
              f"| **total** | **{world + rest:.0f}** |"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
