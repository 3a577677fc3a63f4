"""results/report.md: the metrics of every evaluated model side by side, plots of quality against
the number of steps and of the training curve, and links to the sample grids."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_path, write_text

COLUMNS = ("fid", "clip_score", "shape_accuracy", "color_accuracy", "n")


def _plot_steps(student: dict, teacher: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(int(k.split("_")[0]) for k in student if k.endswith("_step"))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key in zip(axes, ("fid", "shape_accuracy")):
        ax.plot(steps, [student[f"{s}_step"][key] for s in steps], "o-", label="student")
        for k, v in teacher.items():
            if k.endswith("_step"):
                ax.axhline(v[key], ls="--", lw=1, color="gray" if k != "1_step" else "red", label=f"teacher {k.replace('_', ' ')}")
        ax.set_xlabel("sampling steps")
        ax.set_title(key)
        ax.set_xticks(steps)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _plot_curve(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(c["step"], c["loss"]) for c in curve if c.get("loss") is not None]
    fig, ax = plt.subplots(figsize=(5, 3))
    if pts:
        ax.plot(*zip(*pts))
    ax.set_xlabel("step")
    ax.set_ylabel("sCM loss (with adaptive weight)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def write_report(teacher_json: Path, student_json: Path, train_log: Path, out: Path) -> Path:
    teacher, student = json.loads(Path(teacher_json).read_text()), json.loads(Path(student_json).read_text())
    log = json.loads(Path(train_log).read_text()) if Path(train_log).is_file() else {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots = out.parent / "plots"
    plots.mkdir(exist_ok=True)
    _plot_steps(student, teacher, plots / "quality_vs_steps.png")
    if log.get("curve"):
        _plot_curve(log["curve"], plots / "training_curve.png")
    rows = [("real held-out images", teacher.get("real", {}))]
    rows += [(f"teacher, {k.replace('_', ' ')}", v) for k, v in teacher.items() if k.endswith("_step")]
    rows += [(f"student, {k.replace('_', ' ')}", v) for k, v in student.items() if k.endswith("_step")]
    lines = ["# tbcm report", "", "| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, m in rows:
        cells = [f"{m[c]:.4g}" if isinstance(m.get(c), float) else str(m.get(c, "")) for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "FID is computed in the evaluator's feature space (the world's judge, or Inception-v3 on MJHQ-30k);",
              "accuracies are zero-shot from the caption grammar (embedded world only).", ""]
    if log:
        lines += [f"Distillation: {log.get('steps')} steps, {log.get('pairs_per_step')} pairs per step, "
                  f"{log.get('seconds', 0):.0f} s, skipped steps: {log.get('skipped') or 'none'}.", ""]
    lines += ["![quality vs steps](plots/quality_vs_steps.png)", ""]
    if log.get("curve"):
        lines += ["![training curve](plots/training_curve.png)", ""]
    for d in ("teacher", "student"):
        grid_dir = out.parent / "grids" / d
        for png in sorted(grid_dir.glob("*.png")) if grid_dir.is_dir() else []:
            lines += [f"![{png.stem}](grids/{d}/{png.name})", ""]
    write_text(out, "\n".join(lines))
    return out
