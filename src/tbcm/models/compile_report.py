"""What `torch.compile` did in this process: graphs compiled, graph breaks, and no silent eager fallback.

A compiled call that breaks its graph, or a block that recompiles past Dynamo's limit, still runs - partly
or wholly in eager mode, with the same maths and a warning in a log nobody reads. A training run survives
that; a benchmark would report eager speed as compiled speed (the first H100 run did: a graph break at every
cross-attention put the "compiled" tangent at 10x the compiled forward, docs/step-cost.md). So the
benchmark and `distill.compile` record these counts with their results, and the benchmark makes the
recompile limit's fallback an error (`set_recompile_limit(fail=True)`).
"""

from __future__ import annotations

import torch


def set_recompile_limit(limit: int = 16, fail: bool = False) -> None:
    """Raise Dynamo's per-function recompile limit to at least `limit`: one block's forward serves the teacher and
    the student, in each dtype, grad mode and batch shape of a run, legitimately more than the default 8. With
    `fail`, hitting it is an error instead of an eager fallback (`fail_on_recompile_limit_hit`, where this torch
    has it): for a measurement, not for a training run, which the fallback only slows."""
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(int(cfg.recompile_limit), limit)
    if fail and hasattr(cfg, "fail_on_recompile_limit_hit"):
        cfg.fail_on_recompile_limit_hit = True


def compile_stats(since: dict | None = None) -> dict:
    """Dynamo's process-wide counters (graphs compiled, frames compiled, graph breaks by reason), or their growth
    since an earlier `compile_stats()`."""
    from torch._dynamo.utils import counters

    since = since or {"graphs": 0, "frames": 0, "graph_break_reasons": {}}
    breaks = {str(r): int(n) - since["graph_break_reasons"].get(str(r), 0) for r, n in counters["graph_break"].items()}
    breaks = {r: n for r, n in breaks.items() if n}
    return {"graphs": int(counters["stats"]["unique_graphs"]) - since["graphs"],
            "frames": int(counters["frames"]["total"]) - since["frames"],
            "graph_breaks": sum(breaks.values()), "graph_break_reasons": breaks,
            "recompile_limit": int(torch._dynamo.config.recompile_limit)}


def describe(stats: dict) -> str:
    """One line for a report."""
    text = (f"{stats['graphs']} graph(s) compiled, {stats['graph_breaks']} graph break(s); recompile limit "
            f"{stats['recompile_limit']}")
    if stats["graph_break_reasons"]:
        text += " - breaks: " + "; ".join(f"{n}x {r[:160]}" for r, n in stats["graph_break_reasons"].items())
    return text
