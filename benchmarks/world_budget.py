"""Wall time of each stage of a finished Snakemake run of the embedded default, from Snakemake's own
log (job start and finish stamps), with the machine named; writes a Markdown table.

    python benchmarks/world_budget.py [.snakemake/log/<run>.snakemake.log] [--out table.md]

Run `make run` on an idle machine first: the numbers are the pipeline's real wall times, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from datetime import datetime
from pathlib import Path

from tbcm.atomic import write_text
from tbcm.machine import cpu_model

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")


def parse(log: Path) -> list[tuple[str, datetime, datetime]]:
    """(rule, start, finish) of every job but `all`, in order of finishing."""
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
                rows.append((name, t0, current_time))
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
    t0 = min(a for _, a, _ in rows)
    # Stages overlap (Snakemake runs independent jobs side by side), so spans are measured from the
    # first start: the world is built when its last stage finishes, everything after that is the rest.
    world_end = max((b for n, _, b in rows if n.startswith("world_")), default=t0)
    end = max(b for _, _, b in rows)
    sec = lambda a, b: (b - a).total_seconds()
    lines = [f"Machine: {machine()}. Log: `{log.name}`.", "",
             "| stage | starts at s | wall s |", "|---|---|---|"]
    lines += [f"| {n} | {sec(t0, a):.0f} | {sec(a, b):.0f} |" for n, a, b in sorted(rows, key=lambda r: r[1])]
    lines += [f"| **world build (data, VAE, judge, teacher): first start to last world stage** | | **{sec(t0, world_end):.0f}** |",
              f"| **then: distillation, sampling, evaluation, report** | | **{sec(world_end, end):.0f}** |",
              f"| **total (first start to last finish)** | | **{sec(t0, end):.0f}** |"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_text(args.out, text + "\n")  # atomically: a table half-written is never read as a result


if __name__ == "__main__":
    main()
