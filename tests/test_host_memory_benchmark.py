"""benchmarks/host_memory.py --tiny: each process runs the library's own loading and distillation code in
a fresh interpreter and reports its peak resident set; the folder is built once and reused."""

from __future__ import annotations

import json

from benchmark_scripts import load_benchmark


def test_tiny_runs_measure_each_process_and_write_tables(tmp_path, capsys):
    bench = load_benchmark("host_memory")
    folder, out = tmp_path / "teacher", tmp_path / "table"
    report = bench.main(["--tiny", "--folder", str(folder), "--out", str(out)])
    assert set(report["runs"]) == {"evaluate-fp32", "evaluate-bf16", "distill"}
    for name, r in report["runs"].items():
        assert "error" not in r, (name, r)
        assert 0.1 < r["peak_gb"] < 20 and r["seconds"] > 0, (name, r)  # an imported torch alone is ~0.5 GB
    ev = report["runs"]["evaluate-fp32"]
    assert ev["loaded_gb"] <= ev["read_gb"] <= ev["peak_gb"]  # in the process's order: load, read, CLIP
    split = ev["read_split"]
    assert split["anon_gb"] > 0 and split["file_gb"] >= 0 and split["anon_gb"] + split["file_gb"] <= ev["read_gb"] + 1e-3
    assert report["runs"]["distill"]["skipped"] == {}  # the step trained: AdamW's state exists at the peak
    assert (tmp_path / "teacher-distill" / "student" / "model_index.json").is_file()
    assert json.loads(out.with_suffix(".json").read_text()) == report
    assert "| distill |" in out.with_suffix(".md").read_text()
    capsys.readouterr()
    again = bench.main(["--tiny", "--folder", str(folder), "--runs", "distill"])  # the folder is reused
    assert "reusing" in capsys.readouterr().out and "error" not in again["runs"]["distill"]


def test_a_failing_run_is_reported_not_hidden(tmp_path):
    bench = load_benchmark("host_memory")
    bench.build_folder(tmp_path / "teacher", tiny=True, encoder_dtype=__import__("torch").bfloat16)
    (tmp_path / "teacher" / "vae" / "config.json").unlink()  # load_generator then cannot load the VAE
    r = bench.measure("evaluate-fp32", tmp_path / "teacher", True, tmp_path / "scratch")
    assert set(r) == {"error"} and "rc 1" in r["error"]
