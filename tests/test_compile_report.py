"""models.compile_report: graph breaks are counted and named; past the recompile limit a measurement stops."""

from __future__ import annotations

import pytest
import torch

from tbcm.models.compile_report import compile_stats, describe, set_recompile_limit


def test_graph_breaks_are_counted_and_named():
    def f(x):
        y = x.sin()
        torch._dynamo.graph_break()
        return y.cos()

    torch._dynamo.reset()
    before = compile_stats()
    torch.compile(f, backend="eager")(torch.ones(3))
    stats = compile_stats(since=before)
    assert stats["graphs"] == 2 and stats["graph_breaks"] >= 1
    assert "2 graph(s) compiled" in describe(stats) and "breaks:" in describe(stats)
    whole = compile_stats(since=compile_stats())  # nothing since
    assert (whole["graphs"], whole["graph_breaks"], whole["graph_break_reasons"]) == (0, 0, {})


def test_past_the_recompile_limit_a_measurement_stops_instead_of_running_eagerly():
    f = torch.compile(lambda x: x * 2, backend="eager", dynamic=False)
    with torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=False):
        torch._dynamo.reset()
        set_recompile_limit(2)  # never lowers, never fails
        assert torch._dynamo.config.recompile_limit == 2
        for n in (1, 2, 3):
            f(torch.ones(n))  # the third shape falls back to eager, silently but for a warning
        torch._dynamo.reset()
        set_recompile_limit(2, fail=True)
        f(torch.ones(1)), f(torch.ones(2))
        with pytest.raises(Exception, match="recompile"):
            f(torch.ones(3))
        set_recompile_limit()
        assert torch._dynamo.config.recompile_limit == 16  # one block's forward serves a run's every variant
    torch._dynamo.reset()
    assert torch._dynamo.config.fail_on_recompile_limit_hit is False  # the patch is undone
