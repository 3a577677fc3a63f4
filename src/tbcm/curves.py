"""Training curves for `dvc plots`: one TSV per metric under <dir>/plots/metrics/, written by dvclive.

The distillation job only writes files. Out of the box dvclive's `Live` opens the enclosing DVC
repository and its Git repo on start-up even with save_dvc_exp=False and dvcyaml=None; inside a Git
repo that is not a DVC repo it runs `dvc init` there (staging .dvc/ in Git), and in a Git repo
without commits it crashes. Neither belongs in a pipeline job, so `_FilesOnlyLive` skips that
start-up (a private dvclive method, hence the pin dvclive>=3.49,<4 and a test that a Git-only
folder is left untouched). Experiment tracking stays with `dvc exp run`, which reads the files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

#: the per-step metrics written, in the training log rows' names
METRICS = ("loss", "grad_norm", "r", "skipped", "dropped_prompts", "mse", "logvar", "tangent_norm")


def _files_only_live_class():
    from dvclive import Live

    class _FilesOnlyLive(Live):
        def _init_dvc(self):  # no DVC/Git repository lookup, no `dvc init`, no experiment
            self._save_dvc_exp = False
            self._dvc_file = self._init_dvc_file()

    return _FilesOnlyLive


class TrainingCurves:
    """Per-step metrics as dvclive plots in `directory` (DVC: `plots: - <directory>/plots/metrics`).

    The directory is rebuilt from scratch with `history` (the rows of the steps already trained, kept
    in every checkpoint), so a resumed run's curves are whole even when the workflow deleted the
    folder of the interrupted job.
    """

    def __init__(self, directory: str | Path, history: Iterable[dict] = ()):
        live_cls = _files_only_live_class()
        self.live = live_cls(dir=str(directory), resume=False, save_dvc_exp=False, dvcyaml=None, report=None,
                             monitor_system=False)
        for row in history:
            self.log(row)

    def log(self, row: dict) -> None:
        """Write one step's row; values that are missing or not finite (a skipped step's loss) are left out."""
        self.live.step = int(row["step"])
        for name in METRICS:
            v = row.get(name)
            if v is not None and math.isfinite(float(v)):
                self.live.log_metric(name, float(v))
        self.live.next_step()

    def close(self) -> None:
        self.live.end()
