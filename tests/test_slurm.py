"""The smoke chain through a real single-node Slurm cluster, with the project's profile as users type it.

tests/slurm/start_cluster.sh starts slurmctld and slurmd on localhost (Debian's slurm-wlm + munge); the
workflow then runs as `snakemake --profile slurm` from a copy of the project root, with one test-only
profile layered on top (tests/slurm/profile: squeue status checks every 5 s, Slurm logs kept). That
layer changes how Snakemake watches Slurm, not what the jobs request: the GPU rules really submit
`--gpus=1`, which this GPU-less cluster schedules on a stand-in GPU (a gres backed by /dev/null) while
the jobs compute on the CPU.

Skipped when Slurm is not installed (or not root, which slurmd needs); CI sets TBCM_REQUIRE_SLURM=1
(.ci/run, after installing slurm-wlm and munge), where either turns into a failure instead.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from project_copy import WORKFLOW_FILES, copy_project, sana_configuration

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "slurm"
GPU_RULES = {"distill", "evaluate_teacher", "evaluate_student"}  # sampling and scoring included
# source: sana adds its FID reference: Inception-v3 over MJHQ-30k's 30k images (the world's is CPU-sized)
SANA_GPU_RULES = GPU_RULES | {"fid_reference"}
HARD_TIMEOUT = 900  # s; the plugin can hang ignoring SIGTERM, so a run past this is killed with SIGKILL


def _why_not() -> str | None:
    if shutil.which("slurmctld") is None or shutil.which("slurmd") is None:
        return "Slurm is not installed (Debian: apt-get install -y slurm-wlm munge; .ci/run does this)"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    return None


def _env() -> dict:
    # the rules' `tbcm` command lives next to this interpreter; Slurm jobs inherit this environment
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def _run_hard(args, cwd, log: Path, timeout: float) -> tuple[int, str]:
    """Run with output to `log`; past `timeout` kill the whole process group with SIGKILL."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    text = log.read_text()
    if rc is None:
        pytest.fail(f"snakemake still running after {timeout} s, killed; log tail:\n{text[-4000:]}")
    return rc, text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _why_not()
    if why:
        if os.environ.get("TBCM_REQUIRE_SLURM") == "1":
            pytest.fail(f"TBCM_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm")
    try:
        start = subprocess.run([str(SCRIPTS / "start_cluster.sh"), str(state)], capture_output=True, text=True,
                               timeout=120)
        assert start.returncode == 0, start.stdout + start.stderr
        yield state
    finally:
        subprocess.run([str(SCRIPTS / "stop_cluster.sh"), str(state)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """The smoke configuration through `snakemake --profile slurm` in a copy of the project root."""
    work = tmp_path_factory.mktemp("slurm_work")
    copy_project(work, WORKFLOW_FILES + ("slurm",))
    args = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--profile", str(SCRIPTS / "profile"),
            "--configfile", "workflow/smoke.yaml"]
    t0 = time.monotonic()
    rc, log = _run_hard(args, work, work / "snakemake.log", HARD_TIMEOUT)
    seconds = time.monotonic() - t0
    print(f"\nsmoke chain through Slurm: {seconds:.0f} s")
    assert rc == 0, log[-4000:]
    return {"work": work, "log": log, "args": args, "seconds": seconds}


def _planned_jobs(log: str) -> dict[str, int]:
    """Snakemake's own plan: the 'Job stats' table it prints before running anything."""
    table = log.split("Job stats:", 1)[1].split("\ntotal", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _slurm_jobs() -> dict[str, dict]:
    """Every job the controller knows (it keeps finished ones for MinJobAge), as field dicts."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    jobs = {}
    for line in out.stdout.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        jobs[fields["JobId"]] = fields
    return jobs


@pytest.mark.slow
def test_every_planned_job_ran_as_a_slurm_job(run):
    log, work = run["log"], run["work"]
    planned = _planned_jobs(log)
    local = set(re.findall(r"^localrule (\w+):", log, re.M))
    assert local == {"all"}, f"rules run outside Slurm: {local - {'all'}}"
    remote = {r: n for r, n in planned.items() if r not in local}
    assert len(remote) >= 9 and "distill" in remote and "report" in remote, planned

    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    slurm = {j: f for j, f in _slurm_jobs().items() if f.get("JobName") == run_id}
    # one Slurm job per planned job, and the controller saw exactly those
    assert len(submitted) == sum(remote.values())
    assert {j for j, _ in submitted} == set(slurm)
    ran = {}
    for jobid, logfile in submitted:
        f = slurm[jobid]
        rule = f["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        assert f["JobState"] == "COMPLETED" and f["ExitCode"] == "0:0", (rule, f["JobState"], f["ExitCode"])
        # the job's own Slurm log shows the rule ran inside the allocation
        text = Path(logfile).read_text()
        assert f"(Rule: {rule})" in text and f"rule_{rule}" in logfile, (rule, logfile)
        ran[rule] = ran.get(rule, 0) + 1
    assert ran == remote
    busy = sum((datetime.fromisoformat(f["EndTime"]) - datetime.fromisoformat(f["StartTime"])).total_seconds()
               for f in slurm.values())
    print(f"{len(slurm)} Slurm jobs, {busy:.0f} s inside jobs in all, chain {run['seconds']:.0f} s")

    # GPUs: requested by the GPU rules through the profile, by no other rule
    gpu = {f["Comment"].removeprefix("rule_") for f in slurm.values() if "gpu" in f.get("TresPerJob", "")}
    assert gpu == GPU_RULES

    for name in ("teacher", "student"):
        metrics = json.loads((work / "results" / "metrics" / f"{name}.json").read_text())
        assert metrics and all("fid" in v for k, v in metrics.items() if k == "real" or k.endswith("_step"))
    assert (work / "results" / "report.md").is_file()


@pytest.mark.slow
def test_second_run_submits_nothing(run):
    rc, log = _run_hard([*run["args"], "--dry-run"], run["work"], run["work"] / "again.log", 300)
    assert rc == 0 and "Nothing to be done" in log, log[-2000:]


def test_profile_asks_gpus_for_the_gpu_rules_only():
    """Without a cluster: the profile is Slurm's, sets no GPU for every rule, and exactly the GPU rules
    declare one (what the cluster test above then sees in each job's Slurm record)."""
    profile = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert not {"gpu", "gres", "gpu_model"} & set(profile.get("default-resources", {}))
    assert _gpu_rules(ROOT) == GPU_RULES


def test_sana_source_asks_a_gpu_for_its_fid_reference_too(tmp_path):
    copy_project(tmp_path)
    assert _gpu_rules(tmp_path, "--configfile", str(sana_configuration(tmp_path))) == SANA_GPU_RULES


def _gpu_rules(cwd: Path, *args) -> set[str]:
    """The rules whose planned jobs declare gpu=1 (`snakemake --dry-run` of every rule)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "2", *args], cwd=cwd,
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    gpu, rule = set(), None
    for line in out.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        rule = m.group(1) if m else rule
        if line.strip().startswith("resources:") and re.search(r"\bgpu=1\b", line):
            gpu.add(rule)
    return gpu
