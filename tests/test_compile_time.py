"""benchmarks/compile_time.py on the tiny Sana: each (call, way) in its own process, rows for both ways with
the compiled result close to eager, the report written; bad arguments are named."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark as load_script


def load_benchmark():
    return load_script("compile_time")


@pytest.mark.slow
def test_teacher_whole_and_regional_on_the_tiny_sana(tmp_path):
    report = load_benchmark().main(["--tiny", "--device", "cpu", "--calls", "teacher", "--repeats", "1",
                                    "--out", str(tmp_path / "ct")])
    rows = {r["way"]: r for r in report["runs"]}
    assert set(rows) == {"whole", "regional"}
    for row in rows.values():
        assert "error" not in row, row
        assert row["first_call_s"] > row["call_s"] > 0  # the first call compiled
        assert row["rel_diff_vs_eager"] < 2e-2  # bf16 rounding, not another function
    assert json.loads((tmp_path / "ct.json").read_text())["runs"] == report["runs"]
    assert "| teacher | regional |" in (tmp_path / "ct.md").read_text()


@pytest.mark.parametrize("argv, needle", [(["--calls", "jvp,backward"], "backward"), (["--ways", ""], "empty"),
                                          (["--layers", "0"], "--layers")])
def test_bad_arguments_are_named(argv, needle):
    with pytest.raises(SystemExit, match=needle):
        load_benchmark().main(["--tiny", "--device", "cpu", *argv])
