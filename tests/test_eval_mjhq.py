"""MJHQ-30k's layout: loading, bad input named, deterministic subsets."""

import json

import numpy as np
import pytest
from PIL import Image

from tbcm.eval.mjhq import by_category, global_index, image_paths, load_images, load_meta, subset


def _meta(n_per_cat=(5, 3, 1)):
    meta, k = {}, 0
    for c, n in zip(("animals", "food", "people"), n_per_cat):
        for _ in range(n):
            meta[f"{k * 7919 % 1000:04x}"] = {"category": c, "prompt": f"a photo number {k} of {c}"}
            k += 1
    return meta


def _write(root, meta):
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta_data.json").write_text(json.dumps(meta))
    for i, m in meta.items():
        p = root / "imgs" / m["category"] / f"{i}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), len(i), np.uint8)).save(p)
    return root


def test_all_is_every_id_sorted_and_k_per_category_is_deterministic():
    meta = _meta()
    assert subset(meta) == sorted(meta)
    a, b = subset(meta, per_category=2, seed=0), subset(meta, per_category=2, seed=0)
    assert a == b == sorted(a)
    counts = {c: len(v) for c, v in by_category(a, meta).items()}
    assert counts == {"animals": 2, "food": 2, "people": 1}  # a category with fewer keeps all of its ids
    draws = {tuple(subset(meta, per_category=2, seed=s)) for s in range(10)}
    assert len(draws) > 1  # the seed chooses
    # the key order of the JSON does not matter
    shuffled = dict(reversed(list(meta.items())))
    assert subset(shuffled, per_category=2, seed=3) == subset(meta, per_category=2, seed=3)
    assert subset(meta, n=4) == sorted(meta)[:4]
    assert global_index(meta) == {k: i for i, k in enumerate(sorted(meta))}


def test_bad_subset_arguments_are_named():
    with pytest.raises(ValueError, match="per_category"):
        subset(_meta(), per_category=0)
    with pytest.raises(ValueError, match="n must be"):
        subset(_meta(), n=0)


def test_layout_round_trip_and_bad_folders(tmp_path):
    meta = _meta()
    root = _write(tmp_path / "mjhq", meta)
    assert load_meta(root) == meta
    ids = subset(meta, per_category=1)
    assert [p.parent.name for p in image_paths(root, meta, ids)] == [meta[i]["category"] for i in ids]
    assert load_images(root, meta, ids, resolution=16).shape == (len(ids), 16, 16, 3)
    (root / "imgs" / meta[ids[0]]["category"] / f"{ids[0]}.jpg").unlink()
    with pytest.raises(ValueError, match="1 image\\(s\\) missing"):
        image_paths(root, meta, ids)
    with pytest.raises(ValueError, match="no MJHQ-30k meta_data.json"):
        load_meta(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    for bad, msg in (({}, "holds no prompts"), ({"a": {"prompt": "x"}}, "lacks 'category'"),
                     ({"a": {"category": "c", "prompt": " "}}, "empty prompt"),
                     ({"a": {"category": "x/y", "prompt": "p"}}, "unusable category")):
        (tmp_path / "bad" / "meta_data.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=msg):
            load_meta(tmp_path / "bad")
