"""results/report.md: the metrics of every evaluated model side by side, plots of quality against
the number of steps and of the training curve, and links to the sample grids."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_path, write_text
from .plots import plot_quality_vs_steps

# The embedded world's rows add zero-shot attribute accuracies; a column no row has is left out.
COLUMNS = ("fid", "clip_score", "shape_accuracy", "color_accuracy", "background_accuracy", "size_accuracy",
           "position_accuracy", "n")
SETTINGS = ("seed", "precision", "resolution", "feature_extractor", "clip_model", "reference", "clip_reference")


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)


def _per_category(rows: list[tuple[str, dict]], key: str) -> list[str]:
    """A table: one line per model row, one column per category, the per-category `key`."""
    cats = sorted({c for _, m in rows for c in m.get("per_category", {})})
    if not cats:
        return []
    lines = [f"| {key} by category | " + " | ".join(cats) + " |", "|---" * (len(cats) + 1) + "|"]
    for name, m in rows:
        if "per_category" not in m:  # e.g. the VAE-reconstruction row: accuracies only
            continue
        per = m["per_category"]
        lines.append(f"| {name} | " + " | ".join(_cell(per.get(c, {}).get(key)) for c in cats) + " |")
    return lines + [""]


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


def world_lines(world: Path) -> list[str]:
    """The embedded world's own quality (issue 3's bar: VAE PSNR >= 28 dB, judge >= 95% shape and
    colour on real held-out images), read from each stage's metrics.json."""
    m = {k: json.loads((Path(world) / k / "metrics.json").read_text()) for k in ("vae", "judge", "teacher")}
    cell = lambda v, f: "" if v is None else format(v, f)
    dec = m["vae"].get("decoder_phase")  # the decoder trained on noisy latents after the DC-AE (world.autoencoder)
    lines = ["## The embedded world", "",
             "| model | measure | value | train steps | train s |", "|---|---|---|---|---|",
             f"| DC-AE | held-out PSNR (dB) | {cell(m['vae'].get('psnr_eval_db'), '.2f')} | {m['vae'].get('steps')} | {cell(m['vae'].get('seconds'), '.0f')} |",
             *([f"| DC-AE decoder | trained on latents + noise up to {dec.get('noise')} x their std "
                f"(PSNR above is after it) | | {dec.get('steps')} | {cell(dec.get('seconds'), '.0f')} |"] if dec else []),
             f"| judge | zero-shot shape / colour accuracy, real held-out | "
             f"{cell(m['judge'].get('zero_shot_shape_accuracy'), '.3f')} / {cell(m['judge'].get('zero_shot_color_accuracy'), '.3f')} "
             f"| {m['judge'].get('steps')} | {cell(m['judge'].get('seconds'), '.0f')} |",
             f"| teacher | flow-matching loss (EMA) | {cell(m['teacher'].get('loss_ema'), '.4f')} | {m['teacher'].get('steps')} "
             f"| {cell(m['teacher'].get('seconds'), '.0f')} |"]
    text = m["teacher"].get("text_pretrain")
    if text:  # the text encoder taught the grammar before it was frozen (tbcm.world.text_pretrain)
        acc = text["heldout_caption_accuracy"]
        lines.append(f"| text encoder | attributes read from held-out captions (worst of {len(acc)}) | "
                     f"{cell(min(acc.values()), '.3f')} | {text.get('steps')} | {cell(text.get('seconds'), '.0f')} |")
    return lines + [""]


def write_report(teacher_json: Path, student_json: Path, train_log: Path, out: Path, world: Path | None = None) -> Path:
    teacher, student = json.loads(Path(teacher_json).read_text()), json.loads(Path(student_json).read_text())
    log = json.loads(Path(train_log).read_text()) if Path(train_log).is_file() else {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots = out.parent / "plots"
    plots.mkdir(exist_ok=True)
    keys = ("fid", "clip_score") + (("shape_accuracy",) if "shape_accuracy" in student.get("real", {}) else ())
    plot_quality_vs_steps({"teacher": teacher, "student": student}, plots / "quality_vs_steps.png", keys)
    if log.get("curve"):
        _plot_curve(log["curve"], plots / "training_curve.png")
    rows = [("real held-out images", teacher.get("real", {}))]
    if "vae_reconstructions" in teacher:  # the embedded world: what the judge reads through the VAE alone
        rows += [("real held-out images through the VAE", teacher["vae_reconstructions"])]
    rows += [(f"teacher, {k.replace('_', ' ')}", v) for k, v in teacher.items() if k.endswith("_step")]
    rows += [(f"student, {k.replace('_', ' ')}", v) for k, v in student.items() if k.endswith("_step")]
    columns = [c for c in COLUMNS if any(c in m for _, m in rows)]
    lines = ["# tbcm report", "", "| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(m.get(c)) for c in columns) + " |")
    first = next((m for _, m in rows if m), {})
    lines += ["", "FID is computed in the evaluator's feature space (the world's judge, or Inception-v3 on MJHQ-30k)",
              "against the real images of the whole set; \"real held-out images\" is the floor set by the number of",
              "prompts evaluated. Accuracies are zero-shot from the caption grammar (embedded world only).", ""]
    n = first.get("n")
    if "shape_accuracy" in columns and n:  # the error of one accuracy, to weigh differences between rows by
        se = {key: [m[f"{key}_accuracy_se"] for _, m in rows if f"{key}_accuracy_se" in m] for key in ("shape", "color")}
        if se["shape"]:
            tuples = first.get("attribute_tuples")
            lines += [f"Standard errors of the accuracies, clustered by attribute tuple (prompts differing only in "
                      f"wording are drawn and read alike; these {n} prompts hold {tuples} tuples; tbcm.eval.stderr): "
                      f"shape {min(se['shape']):.3f}-{max(se['shape']):.3f}, colour "
                      f"{min(se['color']):.3f}-{max(se['color']):.3f} over the rows above (as if the prompts were "
                      f"independent: at most {0.5 / n ** 0.5:.3f})."]
        else:
            lines += [f"An accuracy p over n = {n} prompts has a standard error of at least sqrt(p (1 - p) / n), up to "
                      f"{0.5 / n ** 0.5:.3f} here; more, as prompts sharing an attribute tuple are read alike."]
        lines += ["The judge adds its own error: judges trained with other seeds read the same generated images' "
                  "shapes up to ~13 points apart, about +-5 around their mean (docs/world-budget.md, session 8).", ""]
    # each setting as the first row holding it has it (precision: the generated rows only)
    settings = {k: next(m[k] for _, m in rows if k in m) for k in SETTINGS if any(k in m for _, m in rows)}
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in settings.items()] + [""]
    lines += _per_category(rows, "fid") + _per_category(rows, "clip_score")
    if world is not None:
        lines += world_lines(world)
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
