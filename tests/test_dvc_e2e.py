"""DVC end to end on the smoke configuration, in a scratch git repository shaped like a fresh clone.

DVC reads its parameters from params.yaml, as dvc.yaml's stages say; a scratch project runs the smoke
configuration by having workflow/smoke.yaml as its params.yaml (what a user does to try another
configuration), so Snakemake and DVC there read the very same file and run the same commands.

Checked: `dvc repro` builds everything; changing only distill.r_final reruns exactly distill and what
follows it; `dvc metrics diff` shows the student's FID/CLIP moving and the teacher's not;
`dvc exp run -S distill.r_final=...` (the issue's ablation command) does the same (and, params.yaml having
changed, the `dvc_plan` check reruns first, without rerunning anything by itself); `dvc push` to a
local remote and `dvc pull` in a second clone restore every output (workflow/scripts/dvc-pull.sh, what
`make pull` runs, then records them for Snakemake), after which `dvc status`, `dvc repro` and
`snakemake` there all have nothing to do.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("Snakefile", "dvc.yaml", "workflow", "profiles", ".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore")
AFTER_DISTILL = {"dvc_plan", "distill", "evaluate_student", "report"}


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
                GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")


def sh(cwd, *args, timeout=900) -> str:
    out = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def dvc(cwd, *args, **kw) -> str:
    return sh(cwd, sys.executable, "-m", "dvc", *args, **kw)


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", log))


def set_r_final(project: Path, value: float) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["distill"]["r_final"] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A git + DVC project with the smoke configuration as params.yaml, reproduced and committed."""
    repo = tmp_path_factory.mktemp("origin")
    copy_project(repo, PROJECT)
    shutil.copy(ROOT / "workflow" / "smoke.yaml", repo / "params.yaml")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "smoke project")
    log = dvc(repo, "repro")
    stages = set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    assert ran_stages(log) == stages, log[-3000:]
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "reproduced")
    return repo


def _changed_metrics(repo) -> dict:
    diff = json.loads(dvc(repo, "metrics", "diff", "--json"))
    return {(Path(f).stem, k): v for f, d in diff.items() for k, v in d.items() if v.get("diff")}


@pytest.mark.slow
def test_r_final_change_reruns_only_distill_and_after(origin):
    set_r_final(origin, 0.5)
    status = json.loads(dvc(origin, "status", "--json"))  # dvc.yaml's distill stage depends on the distill section
    assert set(status) == {"dvc_plan", "distill"}, status  # dvc_plan: on all of params.yaml
    log = dvc(origin, "repro")
    assert ran_stages(log) == AFTER_DISTILL, log[-3000:]
    changed = _changed_metrics(origin)
    # the student's numbers move (FID and CLIP of its samples), the teacher's do not
    assert any(f == "student" and k.endswith(".fid") for f, k in changed), changed
    assert any(f == "student" and k.endswith(".clip_score") for f, k in changed), changed
    assert not any(f == "teacher" for f, k in changed), changed
    assert "Data and pipelines are up to date" in dvc(origin, "status")
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "commit", "-qm", "r_final 0.5")


@pytest.mark.slow
def test_exp_run_set_param(origin):
    log = dvc(origin, "exp", "run", "-S", "distill.r_final=0.25")
    assert ran_stages(log) == AFTER_DISTILL, log[-3000:]
    assert yaml.safe_load((origin / "params.yaml").read_text())["distill"]["r_final"] == 0.25
    diff = json.loads(dvc(origin, "params", "diff", "--json"))["params.yaml"]
    assert set(diff) == {"distill.r_final"} and diff["distill.r_final"]["new"] == 0.25, diff
    assert _changed_metrics(origin)
    sh(origin, "git", "checkout", "-q", "--", ".")  # back to the committed run for the next test
    dvc(origin, "checkout", "--force")


@pytest.mark.slow
def test_push_pull_restores_everything_without_recomputing(origin, tmp_path):
    remote = tmp_path / "remote"
    dvc(origin, "remote", "add", "-d", "local", str(remote))
    sh(origin, "git", "commit", "-qam", "local remote")
    dvc(origin, "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    log = sh(clone, str(clone / "workflow" / "scripts" / "dvc-pull.sh"), timeout=300)  # what `make pull` runs
    assert "every output restored" in log, log[-2000:]
    outs = [o for st in yaml.safe_load((clone / "dvc.yaml").read_text())["stages"].values()
            for o in st.get("outs", []) + st.get("metrics", [])]
    for o in outs:
        path = next(iter(o)) if isinstance(o, dict) else o
        assert (clone / path).exists(), path
    assert "Data and pipelines are up to date" in dvc(clone, "status")
    log = dvc(clone, "repro")
    assert not ran_stages(log), log[-3000:]
    smk = sh(clone, sys.executable, "-m", "snakemake", "--cores", "2", "--dry-run", timeout=300)
    assert "Nothing to be done" in smk, smk[-3000:]
