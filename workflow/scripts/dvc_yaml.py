#!/usr/bin/env python3
"""Write dvc.yaml from Snakemake's plan of params.yaml, or check that it is that plan.

The Snakefile is the one description of the pipeline; DVC's stages are derived from it: one stage per rule
that `snakemake --dry-run --forceall` plans for params.yaml, with the rule's command (less its log
redirect), inputs (deps) and outputs, the params.yaml keys it reads (workflow/stage_params.yaml), and the
training curves as DVC plots. So `source: world` gives the embedded world's stages and `source: sana` the
real-scale chain (the teacher folder, MJHQ-30k and the prompt file as external deps), from the same rules.

DVC itself cannot choose stages by a parameter, so dvc.yaml is written for the params.yaml at hand, and its
first stage, `dvc_plan`, runs this script with --check whenever params.yaml, the rules or the stages change
(its command carries a digest of them). Every other stage follows it (those that need no other stage's output
depend on its output), so a dvc.yaml left from another source stops `dvc repro` before anything runs, naming
the command that rewrites it. Its output is one constant line (kept in git, like the metrics), so passing the
check never makes another stage rerun.

    python workflow/scripts/dvc_yaml.py            # rewrite dvc.yaml for params.yaml (in the project root)
    python workflow/scripts/dvc_yaml.py --check    # exit 1, naming the differences, when it is stale
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from tbcm.atomic import write_text

STAGE_PARAMS = Path("workflow") / "stage_params.yaml"
PLAN_STAGE, PLAN_OUT = "dvc_plan", "results/dvc_plan.txt"
PLAN_LINE = "dvc.yaml is the plan of params.yaml (workflow/scripts/dvc_yaml.py --check)\n"
# Small outputs kept in git rather than in DVC's cache (.gitignore lets them in): the metrics, which `dvc
# metrics diff` reads, and the report with its plots.
METRICS_DIR = "results/metrics/"
IN_GIT = ("results/report.md", "results/plots")
PLOTS = "results/student_live/plots/metrics/"
HEADER = """\
# Written by workflow/scripts/dvc_yaml.py from Snakemake's plan of params.yaml (source: {source}): one stage
# per rule, with its command, inputs, outputs and the params.yaml keys of workflow/stage_params.yaml. Do not
# edit: change the rules (or params.yaml's source) and run `python workflow/scripts/dvc_yaml.py`.
"""
PLOTS_COMMENT = """\
# Training curves (`dvc plots show`, `dvc plots diff`): one plot per metric (loss, grad_norm, r) against
# step, from the per-metric TSVs dvclive writes under results/student_live/plots/metrics/ (tbcm.curves
# never lets dvclive touch this file). The trailing "/" makes DVC read every file of the folder.
"""


def planned_jobs(root: Path) -> dict[str, dict]:
    """rule -> {"input": [...], "output": [...], "cmd": str}, from Snakemake's dry run of params.yaml in `root`."""
    run = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--printshellcmds", "--forceall",
                          "--cores", "1"], cwd=root, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise SystemExit(f"dvc_yaml: Snakemake cannot plan params.yaml:\n{(run.stdout + run.stderr)[-3000:]}")
    jobs, cur = {}, None
    for line in run.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            cur = jobs.setdefault(m.group(1), {"input": [], "output": [], "cmd": None})
        elif cur is not None and line.startswith("    input: "):
            cur["input"] = [s.strip() for s in line[len("    input: "):].split(",")]
        elif cur is not None and line.startswith("    output: "):
            cur["output"] = [s.strip() for s in line[len("    output: "):].split(",")]
        elif cur is not None and line.startswith("Shell command: "):
            cmd = re.sub(r" > \S+\.log 2>&1$", "", line[len("Shell command: "):]).strip()
            # one way of quoting, whatever the rule's spacing (an empty optional flag leaves two spaces)
            cur["cmd"] = shlex.join(shlex.split(cmd))
    jobs.pop("all", None)
    return jobs


def _scalar(text: str) -> str:
    """`text` as a YAML scalar: plain where YAML reads it back unchanged, else double-quoted (a path with ' #'
    or ': ' would cut a plain command short or break the file)."""
    try:
        if yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text)


def _flow(items) -> str:
    """A YAML flow list, quoting only what YAML would misread (paths with spaces, colons, ...)."""
    return "[" + ", ".join(s if re.fullmatch(r"[\w./-]+", s) else json.dumps(s) for s in items) + "]"


def render(root: Path) -> str:
    """dvc.yaml's text for params.yaml in `root`."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    keys = yaml.safe_load((root / STAGE_PARAMS).read_text())
    jobs = planned_jobs(root)
    unknown = sorted(set(jobs) - set(keys))
    if unknown:
        raise SystemExit(f"dvc_yaml: rule(s) {unknown} have no entry in {STAGE_PARAMS}: list the params.yaml keys "
                         "they read there")
    lines = []
    produced = [o for job in jobs.values() for o in job["output"]]
    made = lambda i: any(i == o or i.startswith(o.rstrip("/") + "/") for o in produced)  # noqa: E731
    # Snakemake prints a job's files joined by ", ", so a path with a comma comes back in pieces. The dry run
    # passed, so every input no rule makes exists: a piece that does not is such a path, and stops here.
    for name, job in jobs.items():
        for i in job["input"]:
            if not made(i) and not (root / i).exists():
                raise SystemExit(f"dvc_yaml: rule {name}: cannot read Snakemake's input list {job['input']}: a path "
                                 "with a comma in it (params.yaml's sana or prompts paths) comes back split; rename it")
    for name in (k for k in keys if k in jobs):
        job = jobs[name]
        lines += [f"  {name}:", f"    cmd: {_scalar(job['cmd'])}"]
        # The check comes first: stages that need no other stage's output wait for it, the rest follow them.
        first = not any(made(i) for i in job["input"])
        lines.append("    deps: " + _flow([*job["input"], *([PLAN_OUT] if first else [])]))
        if keys[name]:
            lines.append("    params: " + _flow(keys[name]))
        outs = [o for o in job["output"] if not o.startswith(METRICS_DIR)]
        metrics = [o for o in job["output"] if o.startswith(METRICS_DIR)]
        if outs:
            lines.append("    outs: [" + ", ".join(f"{o}: {{cache: false}}" if o in IN_GIT else o for o in outs) + "]")
        if metrics:
            lines.append("    metrics: [" + ", ".join(f"{m}: {{cache: false}}" for m in metrics) + "]")
    # The check's command carries a digest of the stages: a dvc.yaml swapped for another (`git checkout`) changes
    # it, so DVC reruns the check even when params.yaml has not changed (DVC refuses dvc.yaml as a dependency).
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    plan = [f"  {PLAN_STAGE}:",
            f"    cmd: python workflow/scripts/dvc_yaml.py --check --stages {digest} --out {PLAN_OUT}",
            "    deps: " + _flow(["Snakefile", "workflow/rules", str(STAGE_PARAMS), "workflow/scripts/dvc_yaml.py"]),
            "    params:", "      - params.yaml:",
            f"    outs: [{PLAN_OUT}: {{cache: false}}]"]
    lines = [HEADER.format(source=params.get("source")).rstrip("\n"), "stages:", *plan, *lines,
             "", PLOTS_COMMENT.rstrip("\n"), "plots:", f"  - {PLOTS}:", "      x: step"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="the project root (default: here)")
    ap.add_argument("--check", action="store_true",
                    help="do not write: exit 1 when dvc.yaml differs from the plan of params.yaml")
    ap.add_argument("--stages", metavar="DIGEST", help="ignored: the digest of the stages that dvc.yaml's check "
                                                          "stage carries in its command, so that DVC reruns it when "
                                                          "the stages change")
    ap.add_argument("--out", type=Path, help="with --check: write one constant line here when it passes "
                                             "(the dvc_plan stage's output)")
    args = ap.parse_args(argv)
    want, path = render(args.root), args.root / "dvc.yaml"
    if not args.check:
        write_text(path, want)
        print(f"dvc_yaml: wrote {path}")
        return 0
    have = path.read_text() if path.exists() else ""
    if have != want:
        diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), "dvc.yaml",
                                            "plan of params.yaml"))
        print(f"dvc_yaml: dvc.yaml is not the plan of params.yaml (written for another source or prompt file, or "
              f"the rules changed): run `python workflow/scripts/dvc_yaml.py`, then `dvc repro` again. An experiment "
              f"(`dvc exp run -S`) cannot change these settings; commit them with dvc.yaml rewritten.\n{diff}",
              file=sys.stderr)
        return 1
    if args.out:
        write_text(args.root / args.out, PLAN_LINE)
    print("dvc_yaml: dvc.yaml is the plan of params.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
