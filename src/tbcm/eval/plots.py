"""FID and CLIP score against the number of sampling steps, one line per model (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path


def step_rows(metrics: dict) -> list[tuple[int, dict]]:
    """The "<k>_step" rows of one model's metrics, by increasing k."""
    return sorted((int(k.split("_")[0]), v) for k, v in metrics.items() if k.endswith("_step"))


def plot_quality_vs_steps(models: dict[str, dict], path: str | Path, keys=("fid", "clip_score")) -> Path:
    """One panel per metric; each model's rows as a line over its step counts, the real images'
    value (the floor set by the subset) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.3), squeeze=False)
    all_steps = sorted({s for m in models.values() for s, _ in step_rows(m)})
    for ax, key in zip(axes[0], keys):
        real = next((m["real"][key] for m in models.values() if key in m.get("real", {})), None)
        for name, m in models.items():
            pts = [(s, r[key]) for s, r in step_rows(m) if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), "o-", label=name)
        if real is not None:
            ax.axhline(real, ls="--", lw=1, color="gray", label="real images")
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_steps, [str(s) for s in all_steps])
        ax.set_xlabel("sampling steps")
        ax.set_title(key.replace("_", " "))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
