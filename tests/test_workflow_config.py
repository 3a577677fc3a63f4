"""Bad configuration stops the workflow before any job, naming the key or the path.

Each case is the smoke configuration with one thing broken, given to `snakemake --dry-run`: the run
must fail at parse time (no job planned, nothing written under results/) with a message that names it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from project_copy import copy_project, sana_configuration

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    work = tmp_path_factory.mktemp("config")
    copy_project(work)
    (work / "blank.txt").write_text("\n   \n\t\n")
    (work / "long.txt").write_text("a prompt with far too many words for the filter\n")
    (work / "p.csv").write_text("id,text\n1,a red star\n")
    return work


def _dry_run(work: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--cores", "1", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)


def _with(work: Path, name: str, change) -> Path:
    params = yaml.safe_load((work / "workflow" / "smoke.yaml").read_text())
    change(params)
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


CASES = {
    "unknown_key": (lambda p: p["distill"].update(stepz=3), ["stepz"]),
    "wrong_type": (lambda p: p["distill"].update(lr="fast"), ["'fast' is not of type 'number'", "lr"]),
    "wrong_type_r_final": (lambda p: p["distill"].update(r_final="half"), ["r_final"]),
    "old_nested_r_final": (lambda p: p["distill"]["r"].update(final=0.5), ["final"]),
    "missing_section": (lambda p: p.pop("sample"), ["'sample' is a required property"]),
    "missing_prompt_file": (lambda p: p["prompts"].update(file="prompts/nowhere.txt"),
                            ["prompts.file", "prompt source not found: prompts/nowhere.txt"]),
    "empty_prompt_set": (lambda p: p["prompts"].update(file="blank.txt"), ["prompts.file", "no prompts left from blank.txt"]),
    "all_filtered_out": (lambda p: p["prompts"].update(file="long.txt", max_words=3),
                         ["prompts.file", "no prompts left from long.txt"]),
    "missing_column": (lambda p: p["prompts"].update(file="p.csv"), ["prompts.file", "no column 'prompt'"]),
    "world_evaluate_processes": (lambda p: p["evaluate"].update(processes=2), ["processes", "1 was expected"]),
    "sana_without_its_section": (lambda p: p.update(source="sana"), ["'sana' is a required property"]),
    "sana_without_prompt_file": (lambda p: p.update(source="sana", sana={"teacher": "t", "mjhq": "m"}),
                                 ["prompts.file", "source sana needs a prompt file"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_configuration_stops_the_dry_run_naming_it(project, case):
    change, needles = CASES[case]
    run = _dry_run(project, "--configfile", str(_with(project, case, change)))
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-2000:]
    for needle in needles:
        assert needle in out, (needle, out[-2000:])
    assert "Job stats" not in out and not (project / "results").exists()


def test_good_prompt_file_passes(project):
    run = _dry_run(project, "--configfile", str(_with(project, "good", lambda p: p["prompts"].update(file="p.csv", column="text"))))
    assert run.returncode == 0, (run.stdout + run.stderr)[-2000:]


def test_partial_configfile_and_config_overrides_are_refused(project):
    partial = project / "partial.yaml"
    partial.write_text("distill: {steps: 7}\n")
    run = _dry_run(project, "--configfile", str(partial))
    assert run.returncode != 0 and "partial.yaml" in run.stdout + run.stderr
    run = _dry_run(project, "--configfile", "workflow/smoke.yaml", "--config", "source=sana")
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "configuration differs from" in out and "smoke.yaml" in out, out[-2000:]
    assert "smoke.yaml, the file every stage reads, in source:" in out, out[-2000:]
    # a complete file of an older version, without a key params.yaml has: the key is named
    old = _with(project, "older", lambda p: p["evaluate"].pop("processes"))
    run = _dry_run(project, "--configfile", str(old))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "older.yaml, the file every stage reads, in evaluate.processes:" in out, out[-2000:]


def _planned(out: str) -> dict:
    """rule -> its shell command, from a `--dry-run --printshellcmds` plan."""
    jobs, rule = {}, None
    for line in out.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("Shell command: ") and rule:
            jobs[rule] = line[len("Shell command: "):]
    return jobs


def _blocks(out: str) -> dict:
    """rule -> its block (resources, threads, command) of a dry-run plan."""
    return {b.split(":", 1)[0].split()[-1]: b for b in re.split(r"\n(?=(?:local)?rule )", out) if "rule " in b[:10]}


def test_sana_source_plans_the_reference_and_evaluation_on_mjhq(project):
    """source: sana: no world stages; the FID reference of the MJHQ-30k folder (Inception-v3, as eval-reference
    does without --judge) is planned once, and both models are scored by `tbcm evaluate` against it."""
    run = _dry_run(project, "--printshellcmds", "--configfile", str(sana_configuration(project)))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-2000:]
    jobs = _planned(out)
    assert not any(r.startswith("world_") for r in jobs), sorted(jobs)
    assert re.match(r"tbcm eval-reference --params \S*sana\.yaml --data mjhq --ref-dir results/fid_reference >",
                    jobs["fid_reference"]), jobs["fid_reference"]
    for who, model in (("teacher", "sana_teacher"), ("student", "results/student")):
        cmd = jobs[f"evaluate_{who}"]
        assert cmd.startswith("tbcm evaluate ") and f"--model {model} --data mjhq " in cmd, cmd
        assert "--ref-dir results/fid_reference --ref-cached " in cmd and "--judge" not in cmd, cmd
    assert "--vae sana_teacher/vae" in jobs["black_latent"] and "--teacher sana_teacher" in jobs["distill"]


def test_several_processes_ask_slurm_for_that_many_gpus_on_one_node(project):
    """distill.processes: 4 plans the same `tbcm distill` command (which launches the 4 processes) and asks for
    4 GPUs on one node (what the Slurm executor submits as --gpus=4 --nodes=1), and the host memory of 4 loads;
    the other GPU rules still ask for one."""
    run = _dry_run(project, "--printshellcmds", "--configfile",
                   str(_with(project, "four", lambda p: p["distill"].update(processes=4))))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-2000:]
    assert _planned(out)["distill"].startswith("tbcm distill --params ")
    blocks = _blocks(out)
    assert re.search(r"resources: .*gpu=4, nodes=1, mem_mb=96000", blocks["distill"]), blocks["distill"]
    assert re.search(r"resources: .*gpu=1\b", blocks["evaluate_student"]), blocks["evaluate_student"]


def test_several_evaluation_processes_ask_for_that_many_gpus_and_rerun_nothing(project):
    """source: sana, evaluate.processes: 4 plans the same `tbcm evaluate` commands (which launch the 4 processes)
    on 4 GPUs of one node with 4 model loads of host memory, and with evaluate.decode_workers: 3, 4 CPUs per
    process (1 + 3; the FID reference, one process: 4) and the workers' two batches of 1.1 MB images each in
    shared memory. Neither count is a stage parameter (they change no image
    or score), and every other evaluate key is one, for Snakemake (params) and DVC (dvc.yaml) alike."""
    sana = project / sana_configuration(project)
    base = _dry_run(project, "--printshellcmds", "--cores", "64", "--configfile", str(sana))
    four = project / "sana_four.yaml"
    p = yaml.safe_load(sana.read_text())
    p["evaluate"]["processes"] = 4
    p["evaluate"]["decode_workers"] = 3
    four.write_text(yaml.safe_dump(p))
    run = _dry_run(project, "--printshellcmds", "--cores", "64", "--configfile", str(four))  # threads above 1 shown
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-2000:]
    blocks = _blocks(out)
    workers_mb = 3 * (22 * p["evaluate"]["batch_size"] + 9) // 10
    for who in ("teacher", "student"):
        rule = f"evaluate_{who}"
        assert _planned(out)[rule] == _planned(base.stdout + base.stderr)[rule].replace("sana.yaml", "sana_four.yaml")
        assert re.search(rf"resources: .*gpu=4, nodes=1, mem_mb={4 * (16000 + workers_mb)}\b", blocks[rule]), blocks[rule]
        assert re.search(r"threads: 16\b", blocks[rule]), blocks[rule]
        assert re.search(r"threads: 2\b", _blocks(base.stdout + base.stderr)[rule])  # 0 workers: 2 per process
    assert re.search(r"threads: 4\b", blocks["fid_reference"]), blocks["fid_reference"]
    assert re.search(rf"resources: .*gpu=1, mem_mb={16000 + workers_mb}\b", blocks["fid_reference"]), blocks["fid_reference"]
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text())
    keys = {f"evaluate.{k}" for k in schema["properties"]["evaluate"]["properties"]}
    listed = yaml.safe_load((ROOT / "workflow" / "stage_params.yaml").read_text())
    for rule in ("evaluate_teacher", "evaluate_student"):
        assert set(listed[rule]) == {"sample"} | keys - {"evaluate.processes", "evaluate.decode_workers"}, listed[rule]
