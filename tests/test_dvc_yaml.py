"""dvc.yaml is written from Snakemake's plan (workflow/scripts/dvc_yaml.py) and checked against it.

The committed dvc.yaml is the plan of the committed params.yaml; each stage is its rule (command less the
log redirect, inputs, outputs, the keys of workflow/stage_params.yaml) read here from Snakemake's dry run
independently of the script; `source: sana` gives the real-scale chain with the user's folders as external
deps, which DVC accepts; and a dvc.yaml left from another source stops `dvc repro` before any stage runs.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from project_copy import copy_project, sana_configuration

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ("workflow", "scripts", "dvc_yaml.py")
WORLD_STAGES = {"world_data", "world_vae", "world_judge", "world_teacher"}


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")


def run(cwd, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def dvc_yaml(cwd, *args) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, str(Path(cwd, *SCRIPT)), *args)


def snakemake_jobs(cwd) -> dict:
    out = run(cwd, sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--cores", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    jobs, cur = {}, None
    for line in out.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            cur = jobs.setdefault(m.group(1), {})
        elif cur is not None and line.startswith(("    input: ", "    output: ")):
            key, _, value = line.strip().partition(": ")
            cur[key] = sorted(s.strip() for s in value.split(","))
        elif cur is not None and line.startswith("Shell command: "):
            cur["cmd"] = line[len("Shell command: "):].rsplit(" > ", 1)[0]  # less "> log 2>&1"
    jobs.pop("all", None)
    return jobs


def _paths(entries) -> list[str]:
    return sorted(next(iter(e)) if isinstance(e, dict) else e for e in entries or [])


def check_stages_are_the_rules(cwd) -> dict:
    jobs, keys = snakemake_jobs(cwd), yaml.safe_load((cwd / "workflow" / "stage_params.yaml").read_text())
    stages = yaml.safe_load((cwd / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(jobs) | {"dvc_plan"}, set(stages) ^ set(jobs)
    plan = stages.pop("dvc_plan")
    assert plan["outs"] == [{"results/dvc_plan.txt": {"cache": False}}] and plan["params"] == [{"params.yaml": None}]
    for name, st in stages.items():
        job = jobs[name]
        assert st["cmd"] == shlex.join(shlex.split(job["cmd"])), name
        deps = _paths(st.get("deps"))
        gated = "results/dvc_plan.txt" in deps
        assert sorted(set(deps) - {"results/dvc_plan.txt"}) == job.get("input", []), name
        produced = {o for j in jobs.values() for o in j.get("output", [])}
        assert gated == (not set(job.get("input", [])) & produced), name  # the stages that would run first wait for it
        assert _paths(st.get("outs", []) + st.get("metrics", [])) == job["output"], name
        assert st.get("params", []) == keys[name], name
    return stages


def test_committed_dvc_yaml_is_the_plan_of_params_yaml():
    check = dvc_yaml(ROOT, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    stages = check_stages_are_the_rules(ROOT)
    assert WORLD_STAGES <= set(stages)
    assert stages["evaluate_student"]["metrics"] == [{"results/metrics/student.json": {"cache": False}}]


@pytest.fixture(scope="module")
def sana_project(tmp_path_factory):
    """A project copy whose params.yaml is a `source: sana` configuration, with DVC initialised, and the world's
    dvc.yaml still in place."""
    work = copy_project(tmp_path_factory.mktemp("sana"), ("Snakefile", "workflow", "profiles", "dvc.yaml", ".gitignore"))
    shutil.copy(work / sana_configuration(work), work / "params.yaml")
    for args in (("git", "init", "-q"), (sys.executable, "-m", "dvc", "init", "-q")):
        assert run(work, *args).returncode == 0
    return work


def test_a_dvc_yaml_of_another_source_stops_dvc_repro_before_any_stage(sana_project):
    out = run(sana_project, sys.executable, "-m", "dvc", "repro")
    log = out.stdout + out.stderr
    assert out.returncode != 0 and "failed to reproduce 'dvc_plan'" in log, log[-3000:]
    assert re.findall(r"Running stage '(\w+)'", log) == ["dvc_plan"], log[-3000:]
    assert "dvc.yaml is not the plan of params.yaml" in log and "workflow/scripts/dvc_yaml.py" in log, log[-3000:]
    assert "-    cmd: tbcm world-data" in log, log[-3000:]  # the diff names what would have run
    assert not (sana_project / "results").exists()


def test_sana_source_writes_the_real_scale_chain(sana_project):
    """Rewritten for source: sana: no world stages, the user's folders as deps, the check passes, and DVC reads
    the file (its dag)."""
    assert dvc_yaml(sana_project).returncode == 0
    check = dvc_yaml(sana_project, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    stages = check_stages_are_the_rules(sana_project)
    assert not WORLD_STAGES & set(stages), sorted(stages)
    assert "sana_prompts.txt" in stages["collect_prompts"]["deps"] and "mjhq" in stages["fid_reference"]["deps"]
    assert "sana_teacher" in stages["distill"]["deps"] and stages["evaluate_teacher"]["cmd"].startswith("tbcm evaluate ")
    dag = run(sana_project, sys.executable, "-m", "dvc", "dag", "--md")
    assert dag.returncode == 0 and "dvc_plan" in dag.stdout and "fid_reference" in dag.stdout, dag.stdout + dag.stderr


def test_a_rule_missing_from_stage_params_is_named(tmp_path):
    work = copy_project(tmp_path, ("Snakefile", "params.yaml", "workflow"))
    table = work / "workflow" / "stage_params.yaml"
    keys = yaml.safe_load(table.read_text())
    keys.pop("report")
    table.write_text(yaml.safe_dump(keys, sort_keys=False))
    out = dvc_yaml(work)
    assert out.returncode != 0, out.stdout
    assert "report" in out.stderr + out.stdout and "stage_params.yaml" in out.stderr + out.stdout, out.stderr


def test_a_dvc_yaml_swapped_back_reruns_the_check_though_params_yaml_did_not_change(sana_project):
    """After the check passed for the sana dvc.yaml, the world's file comes back (as `git checkout -- dvc.yaml`
    would): DVC sees the check's command changed (it carries a digest of the stages) and the check stops it."""
    assert dvc_yaml(sana_project).returncode == 0
    assert run(sana_project, sys.executable, "-m", "dvc", "repro", "dvc_plan").returncode == 0
    shutil.copy(ROOT / "dvc.yaml", sana_project / "dvc.yaml")
    status = run(sana_project, sys.executable, "-m", "dvc", "status", "dvc_plan")
    assert "changed command" in status.stdout, status.stdout + status.stderr
    out = run(sana_project, sys.executable, "-m", "dvc", "repro")
    log = out.stdout + out.stderr
    assert out.returncode != 0 and re.findall(r"Running stage '(\w+)'", log) == ["dvc_plan"], log[-3000:]
    assert "dvc.yaml is not the plan of params.yaml" in log


def test_settings_that_change_no_command_leave_dvc_yaml_alone(tmp_path):
    """distill.processes (tbcm distill launches them itself), distill.r_final: `dvc exp run -S` can set them."""
    work = copy_project(tmp_path, ("Snakefile", "params.yaml", "workflow", "dvc.yaml"))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["distill"].update(processes=8, r_final=0.5)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    check = dvc_yaml(work, "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def sana_project_with_mjhq_at(tmp_path, name: str):
    """A project copy whose params.yaml is the `source: sana` one, with its MJHQ-30k folder renamed `name`."""
    work = copy_project(tmp_path, ("Snakefile", "workflow", "profiles", "dvc.yaml", ".gitignore"))
    shutil.copy(work / sana_configuration(work), work / "params.yaml")
    (work / "mjhq").rename(work / name)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sana"]["mjhq"] = name
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def test_paths_yaml_would_misread_are_written_quoted(tmp_path):
    """A folder named with ' #' and ': ' (a comment and a mapping to plain YAML) and spaces: every command reads
    back whole, the quoted paths intact, and DVC reads the file."""
    work = sana_project_with_mjhq_at(tmp_path, "MJHQ #1: the set")
    assert dvc_yaml(work).returncode == 0
    stages = check_stages_are_the_rules(work)
    assert shlex.split(stages["fid_reference"]["cmd"])[4:6] == ["--data", "MJHQ #1: the set"], stages["fid_reference"]
    assert "MJHQ #1: the set" in stages["fid_reference"]["deps"]
    for args in (("git", "init", "-q"), (sys.executable, "-m", "dvc", "init", "-q")):
        assert run(work, *args).returncode == 0
    dag = run(work, sys.executable, "-m", "dvc", "dag", "--md")
    assert dag.returncode == 0 and "fid_reference" in dag.stdout, dag.stdout + dag.stderr


def test_a_path_with_a_comma_stops_instead_of_being_misread(tmp_path):
    """Snakemake prints a job's inputs joined by ', ': a folder named 'MJHQ, 30k' would come back as two
    paths. It stops, naming the rule and the list, and leaves dvc.yaml as it was."""
    work = sana_project_with_mjhq_at(tmp_path, "MJHQ, 30k")
    before = (work / "dvc.yaml").read_text()
    out = dvc_yaml(work)
    assert out.returncode != 0 and re.search(r"rule (fid_reference|evaluate_\w+): .*'MJHQ', '30k'", out.stderr), \
        out.stdout + out.stderr
    assert "comma" in out.stderr and (work / "dvc.yaml").read_text() == before
