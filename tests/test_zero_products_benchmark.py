"""benchmarks/zero_products.py on a tiny block: the three compiled calls side by side, the report written."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark


@pytest.mark.parametrize("layers", [1, 2])
def test_tiny_report(tmp_path, layers):
    """One block (each call one compiled function) and a 2-block student (the loss's regional JVP)."""
    report = load_benchmark("zero_products").main(["--tiny", "--device", "cpu", "--side", "8", "--text", "5",
                                                   "--layers", str(layers), "--repeats", "1",
                                                   "--out", str(tmp_path / "zp")])
    calls = report["calls"]
    fwd, kept, dropped = (calls[k] for k in ("forward", "jvp, PyTorch's rules", "jvp, zero products dropped"))
    n = {k: sum(c["products"].values()) for k, c in calls.items()}
    assert n["jvp, PyTorch's rules"] > n["jvp, zero products dropped"] > n["forward"] > 0
    assert dropped["products_over_forward"] < kept["products_over_forward"]
    assert report["tangent_distance"] < 1e-6 and report["primal_distance"] < 1e-6
    assert all(c["compile_s"] > 0 and c["ms"] > 0 and c["graphs"] >= 1 for c in (fwd, kept, dropped))
    assert report["model"] == f"tiny, {layers} block(s)"
    assert json.loads((tmp_path / "zp.json").read_text())["calls"] == json.loads(json.dumps(calls))
    assert "| jvp, zero products dropped |" in (tmp_path / "zp.md").read_text()


@pytest.mark.parametrize("layers", [1, 2])
def test_tiny_eager_report(tmp_path, layers):
    """--eager: the same three calls uncompiled, the products counted as they run; the tangent the same."""
    report = load_benchmark("zero_products").main(["--tiny", "--device", "cpu", "--side", "8", "--text", "5", "--eager",
                                                   "--layers", str(layers), "--repeats", "1", "--precision", "fp32",
                                                   "--out", str(tmp_path / "zp")])
    calls = report["calls"]
    n = {k: sum(c["products"].values()) for k, c in calls.items()}
    assert n["jvp, PyTorch's rules"] > n["jvp, zero products skipped"] > n["forward"] > 0
    assert calls["jvp, PyTorch's rules"]["products"]["convolution"] == 3 * calls["forward"]["products"]["convolution"]
    assert calls["jvp, zero products skipped"]["products"]["convolution"] == 2 * calls["forward"]["products"]["convolution"]
    assert report["tangent_distance"] < 1e-6 and report["primal_distance"] == 0
    assert all(c["graphs"] == 0 for c in calls.values())  # nothing compiled
    md = (tmp_path / "zp.md").read_text()
    assert md.startswith("# Eager JVP") and "| jvp, zero products skipped |" in md


@pytest.mark.parametrize("flag", ["--batch", "--repeats", "--side", "--layers"])
def test_bad_sizes_are_named(flag):
    with pytest.raises(SystemExit, match=flag):
        load_benchmark("zero_products").main(["--tiny", "--device", "cpu", flag, "0"])
