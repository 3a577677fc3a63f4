"""params.yaml validation and prompt collection: bad input stops with a message naming the thing."""

import copy
from pathlib import Path

import pytest

from tbcm.config import load_params, validate
from tbcm.prompts import collect_prompts

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_and_smoke_config_are_valid():
    load_params(ROOT / "params.yaml")
    load_params(ROOT / "workflow" / "smoke.yaml")


@pytest.mark.parametrize("mutate,needle", [
    (lambda p: p["distill"].update(stepz=3), "'stepz' was unexpected"),
    (lambda p: p["distill"].update(lr="fast"), "distill.lr: 'fast' is not of type 'number'"),
    (lambda p: p["distill"]["route"].update(scheme="euler"), "distill.route.scheme"),
    (lambda p: p["world"]["data"].update(resolution=30), "world.data.resolution"),
    (lambda p: p.pop("sample"), "'sample' is a required property"),
    (lambda p: p["sample"].update(precision="fp16"), "sample.precision: 'fp16' is not one of ['fp32', 'bf16']"),
    # MJHQ-30k's FID needs a fixed evaluation size; null (native) is for the world's 32-px judge only
    (lambda p: (p.update(source="sana", sana={"teacher": "t", "mjhq": "m"}), p["evaluate"].update(resolution=None)),
     "evaluate.resolution: None is not of type 'integer'"),
])
def test_bad_configuration_is_named(mutate, needle):
    p = copy.deepcopy(load_params(ROOT / "params.yaml"))
    mutate(p)
    with pytest.raises(ValueError) as e:
        validate(p)
    assert needle in str(e.value)


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_collect_cleans_dedupes_filters_and_shuffles_by_seed(tmp_path):
    src = tmp_path / "p.txt"
    src.write_text("a red star\n  a red   star \n\nblue\n" + "word " * 200 + "\ngreen circle on white\n")
    out = tmp_path / "out.txt"
    n = collect_prompts(src, out, min_words=1, max_words=120, seed=0)
    kept = out.read_text().splitlines()
    assert n == 3 and sorted(kept) == ["a red star", "blue", "green circle on white"]
    collect_prompts(src, tmp_path / "again.txt", seed=0)
    assert (tmp_path / "again.txt").read_text() == out.read_text()
    assert collect_prompts(src, tmp_path / "short.txt", min_words=2, limit=1) == 1


def test_csv_column_and_empty_sets_are_named(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("id,text\n1,a cat\n")
    with pytest.raises(ValueError, match="no column 'prompt'"):
        collect_prompts(csv, tmp_path / "o.txt")
    assert collect_prompts(csv, tmp_path / "o.txt", column="text") == 1
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="no prompts left"):
        collect_prompts(tmp_path / "empty.txt", tmp_path / "o2.txt")
    with pytest.raises(ValueError, match="prompt source not found"):
        collect_prompts(tmp_path / "missing.txt", tmp_path / "o3.txt")
