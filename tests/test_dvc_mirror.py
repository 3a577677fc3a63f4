"""dvc.yaml mirrors the Snakemake rules: same stage names, commands (less Snakemake's log redirect),
inputs and outputs. Fails as soon as either side changes alone."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def snakemake_jobs() -> dict:
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--cores", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs, cur = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            cur = jobs.setdefault(m.group(1), {"input": [], "output": [], "cmd": None})
        elif cur is not None and line.startswith("    input: "):
            cur["input"] = [s.strip() for s in line[len("    input: "):].split(",")]
        elif cur is not None and line.startswith("    output: "):
            cur["output"] = [s.strip() for s in line[len("    output: "):].split(",")]
        elif cur is not None and line.startswith("Shell command: "):
            cur["cmd"] = re.sub(r" > \S+\.log 2>&1$", "", line[len("Shell command: "):]).strip()
    jobs.pop("all", None)
    return jobs


def _paths(entries) -> list[str]:
    return sorted(next(iter(e)) if isinstance(e, dict) else e for e in entries or [])


def test_dvc_stages_mirror_snakemake_rules():
    jobs = snakemake_jobs()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(jobs), f"stage/rule names differ: {set(stages) ^ set(jobs)}"
    for name, st in stages.items():
        job = jobs[name]
        assert " ".join(st["cmd"].split()) == " ".join(job["cmd"].split()), name
        assert _paths(st.get("deps")) == sorted(job["input"]), name
        assert _paths(st.get("outs", []) + st.get("metrics", [])) == sorted(job["output"]), name
