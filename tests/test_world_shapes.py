import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tbcm.world import shapes as S


def _files(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in (root / "imgs").glob("*/*.jpg")}


def test_same_seed_writes_identical_bytes(tmp_path):
    a = S.write_split(tmp_path / "a", 60, seed=3, progress=False)
    b = S.write_split(tmp_path / "b", 60, seed=3, progress=False)
    for name in ("meta_data.json", "attributes.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys() and len(fa) == 60
    for key, path in fa.items():
        assert path.relative_to(a) == fb[key].relative_to(b)
        assert path.read_bytes() == fb[key].read_bytes()
    c = S.write_split(tmp_path / "c", 60, seed=4, progress=False)
    assert (c / "meta_data.json").read_bytes() != (a / "meta_data.json").read_bytes()


def test_mjhq_layout(tmp_path):
    root = S.write_split(tmp_path / "split", 200, seed=0, resolution=32, progress=False)
    meta = json.loads((root / "meta_data.json").read_text())
    attrs = json.loads((root / "attributes.json").read_text())
    files = _files(root)
    assert set(meta) == set(files) == set(attrs)
    assert sorted(meta) == [f"{i:08d}" for i in range(200)]
    assert {m["category"] for m in meta.values()} == set(S.SHAPES)
    for key, m in meta.items():
        assert files[key].parent.name == m["category"]
        assert S.parse_caption(m["prompt"]) == S.Attributes(**attrs[key])
        assert attrs[key]["shape"] == m["category"]
    with Image.open(files["00000000"]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    # atomic write: nothing but the split is left next to it
    assert [p.name for p in tmp_path.iterdir()] == ["split"]


def test_existing_split_needs_overwrite_and_failed_write_leaves_nothing(tmp_path, monkeypatch):
    root = S.write_split(tmp_path / "s", 10, seed=0, progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        S.write_split(root, 10, seed=1, progress=False)
    S.write_split(root, 12, seed=1, overwrite=True, progress=False)
    assert len(json.loads((root / "meta_data.json").read_text())) == 12 and len(_files(root)) == 12

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(S, "_dump_json", boom)
    with pytest.raises(RuntimeError):
        S.write_split(tmp_path / "t", 10, seed=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_every_caption_round_trips_and_names_all_attributes():
    vocab = set(S.vocabulary())
    seen = set()
    for a in S.all_attributes():
        for t in range(S.N_TEMPLATES):
            text = S.caption(a, t)
            assert S.parse_caption(text) == a
            assert text not in seen
            seen.add(text)
            words = text.replace(",", " ").split()
            assert set(words) <= vocab
            for value in (a.shape, a.color, a.background, a.size, *a.position.split()):
                assert value in words
    assert len(S.all_attributes()) == 10 * 28 * 2 * 5
    assert "," in vocab and all(w == "," or w.isalpha() for w in vocab)
    assert S.parse_caption("  Small RED star ,  top left, blue background ") == S.Attributes(
        "star", "red", "blue", "small", "top left"
    )
    assert S.parse_caption("a small red star") is None
    assert S.parse_caption("a small red star in the top left corner on a red background") is None
    with pytest.raises(ValueError, match="template_idx"):
        S.caption(S.all_attributes()[0], S.N_TEMPLATES)


def test_train_and_eval_captions_are_disjoint(tmp_path):
    paths = S.write_world_data(tmp_path / "world", n_train=40, n_eval=30, seed=0, progress=False)
    train_lines = paths["train_prompts"].read_text().splitlines()
    assert train_lines == sorted(set(train_lines))
    train_set = set(train_lines)
    train_meta = json.loads((paths["train"] / "meta_data.json").read_text())
    eval_meta = json.loads((paths["eval"] / "meta_data.json").read_text())
    assert {m["prompt"] for m in train_meta.values()} <= train_set
    assert not {m["prompt"] for m in eval_meta.values()} & train_set

    train, evals = S.split_attributes()
    assert not set(train) & set(evals) and len(train) + len(evals) == len(S.all_attributes())
    assert len(train_lines) == S.N_TEMPLATES * len(train)
    assert all(S.parse_caption(m["prompt"]) in set(evals) for m in eval_meta.values())
    per_shape = {s: sum(a.shape == s for a in evals) for s in S.SHAPES}
    assert set(per_shape.values()) == {28}  # 10% of each shape's 280 tuples
    with pytest.raises(FileExistsError):
        S.write_world_data(tmp_path / "world", 40, 30, seed=0, progress=False)


def test_shape_colour_never_equals_background():
    assert all(a.color != a.background for a in S.all_attributes())
    assert all(a.color != a.background for a in S.sample_attributes(500, seed=1))
    with pytest.raises(ValueError, match="background"):
        S.Attributes("star", "blue", "blue", "small", "center")
    with pytest.raises(ValueError, match="shape"):
        S.Attributes("hexagon", "red", "blue", "small", "center")


def _mask(a: S.Attributes, resolution: int = 32, rng=None) -> np.ndarray:
    img = S.render(a, resolution, rng).astype(int)
    return np.abs(img - np.array(S.COLORS[a.background])).sum(-1) > 100  # mostly-shape pixels


def test_renders_differ_across_shapes_sizes_and_positions():
    masks = {s: _mask(S.Attributes(s, "white", "black", "large", "center")) for s in S.SHAPES}
    for i, s in enumerate(S.SHAPES):
        assert 40 < masks[s].sum() < 400, s
        for t in S.SHAPES[i + 1 :]:
            assert (masks[s] ^ masks[t]).sum() >= 10, (s, t)
        small = _mask(S.Attributes(s, "white", "black", "small", "center"))
        assert small.sum() < 0.7 * masks[s].sum(), s
    for pos in S.POSITIONS:
        ys, xs = np.nonzero(_mask(S.Attributes("square", "red", "white", "small", pos)))
        cy, cx = ys.mean() / 32, xs.mean() / 32
        assert (cy < 0.4) == pos.startswith("top") and (cy > 0.6) == pos.startswith("bottom"), pos
        assert (cx < 0.4) == pos.endswith("left") and (cx > 0.6) == pos.endswith("right"), pos


def test_colour_survives_jpeg(tmp_path):
    root = S.write_split(tmp_path / "s", 40, seed=5, progress=False)
    attrs = json.loads((root / "attributes.json").read_text())
    names = list(S.COLORS)
    palette = np.array([S.COLORS[c] for c in names])
    for key, path in _files(root).items():
        img = np.asarray(Image.open(path)).astype(int)
        corner = img[0, 0] if "left" not in attrs[key]["position"] else img[-1, -1]
        assert names[np.argmin(((palette - corner) ** 2).sum(-1))] == attrs[key]["background"]
        diff = np.abs(img - np.array(S.COLORS[attrs[key]["background"]])).sum(-1)
        shape_rgb = img[diff >= 0.8 * diff.max()].mean(0)
        assert names[np.argmin(((palette - shape_rgb) ** 2).sum(-1))] == attrs[key]["color"]


def test_jitter_is_small_seeded_and_batch_equals_single():
    a = S.sample_attributes(30, seed=2)
    batch = S.render_many(a, 32, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    assert np.array_equal(batch, np.stack([S.render(x, 32, rng) for x in a]))
    same = S.Attributes("star", "red", "white", "large", "center")
    r1, r2 = (S.render(same, 32, np.random.default_rng(k)) for k in (0, 1))
    assert not np.array_equal(r1, r2)
    assert (_mask(same, 32, np.random.default_rng(0)) ^ _mask(same)).mean() < 0.1
    assert S.render(same, 64).shape == (64, 64, 3) and S.render(same).dtype == np.uint8


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n_is_named(tmp_path, n):
    with pytest.raises(ValueError, match="^n must"):
        S.write_split(tmp_path / "x", n, seed=0, progress=False)
    with pytest.raises(ValueError, match="^n must"):
        S.sample_attributes(n, seed=0)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("resolution", [8, 12, 20, 33, 32.0])
def test_bad_resolution_is_named(tmp_path, resolution):
    with pytest.raises(ValueError, match="resolution"):
        S.write_split(tmp_path / "x", 5, seed=0, resolution=resolution, progress=False)
    with pytest.raises(ValueError, match="resolution"):
        S.render(S.all_attributes()[0], resolution)
    with pytest.raises(ValueError, match="resolution"):
        S.write_world_data(tmp_path / "w", 5, 5, seed=0, resolution=resolution, progress=False)


def test_world_counts_are_named(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        S.write_world_data(tmp_path / "w", 0, 5, seed=0, progress=False)
    with pytest.raises(ValueError, match="n_eval"):
        S.write_world_data(tmp_path / "w", 5, -1, seed=0, progress=False)
    assert not (tmp_path / "w").exists()
