"""benchmarks/image_io.py on small images: both writing loops run and write the same pixels, the read-back
rows (PNG and JPEG) are there, a folder is read back with 0 and 1 decode workers (the same numbers), and the table is written."""

from benchmark_scripts import load_benchmark


def test_small_table(tmp_path):
    table = load_benchmark("image_io").main(["--images", "5", "--batch", "2", "--side", "256", "--noise", "2",
                                                  "--sample-ms", "1", "--workers", "0", "1",
                                                  "--out", str(tmp_path / "t.md")])
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 4, table  # the loops side by side, one image at either level, one read back per file type
    before, now = (float(x) for x in rows[0][2:4])
    assert before > 0 and now > 0
    assert all(float(x) > 0 for x in rows[1][1:]), table
    # decode and CLIP input may round to 0 ms at 256 px on a fast core; Inception's two resizes do not
    assert [r[1].strip() for r in rows[2:]] == ["PNG", "JPEG"] and all(float(x) >= 0 for r in rows[2:] for x in r[2:]), table
    assert all(float(r[3]) > 0 for r in rows[2:]), table
    read = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert [r[0].strip() for r in read] == ["0", "1"] and all(float(x) > 0 for r in read for x in r[1:3]), table
    assert (tmp_path / "t.md").read_text() == table
