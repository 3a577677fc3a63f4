"""The evaluation on a tiny embedded world: FID and CLIP score behave as metrics must, per-category
numbers exist, generation resumes exactly, and the world-eval command writes the metrics layout the
report and `dvc metrics diff` read."""

import dataclasses
import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageFilter

from eval_helpers import TINY_CLIP, mjhq_layout_set, no_network, tiny_open_clip  # noqa: F401 (fixture)
from tbcm.distill import DistillConfig, read_prompts, run_distill
from tbcm.eval.clip_score import clip_scores
from tbcm.eval.fid import fid, file_features, keep_size, resize_to
from tbcm.eval.generate import fill_folder, generate_folder, load_generator, open_folder
from tbcm.eval.mjhq import global_index, image_paths, load_images, load_meta, subset
from tbcm.eval.processes import Group
from tbcm.schedules import RSchedule
from tbcm.train_step import MethodConfig
from tbcm.world.autoencoder import AutoencoderConfig
from tbcm.world.build import build_data, build_judge_stage, build_teacher_stage, build_vae, load_judge
from tbcm.world.evaluate import evaluate_folder, judge_extractor, judge_scorer
from tbcm.world.judge import JudgeConfig
from tbcm.world.teacher import TeacherConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evalworld")
    build_data(root / "data", n_train=512, n_eval=120, seed=0, resolution=32)
    build_vae(root / "data", root / "vae", AutoencoderConfig(channels=(8, 16, 32), steps=3, batch_size=16), n_psnr=16)
    # 60 steps (a few seconds) separate matching from shuffled captions by > 40 CLIP points over judge
    # seeds 0-3 (measured); 3 steps, as in the pipeline test, do not
    build_judge_stage(root / "data", root / "judge",
                      JudgeConfig(width=32, layers=1, heads_width=16, embed_dim=16, resnet_width=16, steps=60,
                                  batch_size=32), n_eval=16)
    build_teacher_stage(root / "data", root / "vae", root / "teacher", TeacherConfig(steps=3, batch_size=16),
                        dict(hidden=32, layers=1, heads=1), dict(hidden=32, layers=1))
    cfg = DistillConfig(steps=1, prompts_per_step=2, method=MethodConfig(route_steps=4, r=RSchedule(warmup_steps=1)))
    run_distill(root / "teacher", read_prompts(root / "data" / "train_prompts.txt"), None, root / "student", cfg,
                progress=False)
    return root


@pytest.fixture(scope="module")
def judged(world):
    judge, tok, cfg = load_judge(world / "judge")
    ev = world / "data" / "eval"
    meta = load_meta(ev)
    ids = sorted(meta)
    return dict(judge=judge, tok=tok, cfg=cfg, ev=ev, meta=meta, ids=ids, paths=image_paths(ev, meta, ids),
                prompts=[meta[i]["prompt"] for i in ids], extractor=judge_extractor(judge, cfg, world / "judge"),
                scorer=judge_scorer(judge, tok, cfg, world / "judge"))


def _degrade(paths, out: Path, kind: str, level: float) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    files = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        if kind == "blur":
            im = im.filter(ImageFilter.GaussianBlur(level))
        else:
            a = np.asarray(im, np.float64) + rng.normal(0, level, (im.height, im.width, 3))
            im = Image.fromarray(a.clip(0, 255).round().astype(np.uint8))
        files.append(out / f"{p.stem}.png")
        im.save(files[-1])
    return files


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_blur_and_noise(judged, tmp_path):
    ext = judged["extractor"]
    every = file_features(judged["paths"], ext, None, progress=False)
    assert abs(fid(every, every)) < 1e-6
    # one set against itself degraded; monotone over judge seeds 0-4 (measured), the clean-vs-clean
    # value being 0 rather than a subset's sampling floor
    part = judged["paths"][:60]
    ref = file_features(part, ext, None, progress=False)
    for kind, levels in (("blur", (0, 1, 2, 3)), ("noise", (0, 20, 40, 80))):
        vals = [fid(file_features(_degrade(part, tmp_path / f"{kind}{lv}", kind, lv), ext, None, progress=False), ref)
                for lv in levels]
        assert abs(vals[0]) < 1e-6 and all(a < b for a, b in zip(vals, vals[1:])), (kind, vals)


def test_our_fid_is_clean_fids_compute_fid(judged, tmp_path):
    from cleanfid import fid as cleanfid

    a = _degrade(judged["paths"][:40], tmp_path / "a", "blur", 0)
    b = _degrade(judged["paths"][40:80], tmp_path / "b", "noise", 10)
    ext = judged["extractor"]
    theirs = cleanfid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode="clean", num_workers=0,
                                  custom_feat_extractor=ext.fn, custom_fn_resize=keep_size,
                                  custom_image_tranform=resize_to(48), device=torch.device("cpu"), verbose=False,
                                  batch_size=16)
    ours = fid(file_features(a, ext, 48, 16, progress=False), file_features(b, ext, 48, 16, progress=False))
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_clip_score_of_matching_prompts_beats_shuffled(judged):
    scorer = judged["scorer"]
    prompts = judged["prompts"]
    perm = np.random.default_rng(0).permutation(len(prompts))
    matched = clip_scores(scorer, judged["paths"], prompts)
    shuffled = clip_scores(scorer, judged["paths"], [prompts[j] for j in perm])
    assert matched.mean() > shuffled.mean() + 10
    assert (matched > shuffled).mean() > 0.75


def _arrays(paths):
    return [np.asarray(Image.open(p)) for p in paths]


@pytest.mark.parametrize("model", ["teacher", "student"])
def test_generation_resumes_only_the_missing_images_and_matches(world, tmp_path, model):
    meta = load_meta(world / "data" / "eval")
    ids = subset(meta, n=10)
    gen = load_generator(world / model, device="cpu")
    out = tmp_path / "samples"
    first = generate_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False)
    assert first["generated"] == 10 and first["kept"] == 0
    ref = _arrays(first["paths"])
    paths = first["paths"]
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    paths[1].unlink()                                  # missing
    paths[6].unlink()
    paths[4].write_bytes(paths[4].read_bytes()[:60])   # truncated by something else
    stale = paths[7].with_name(f".{paths[7].stem}.tmp.png")
    stale.write_bytes(b"half")                         # a temporary left by a killed run
    again = generate_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False)
    assert again["generated"] == 3 and again["kept"] == 7 and not stale.exists()
    for k, p in enumerate(paths):
        if k not in (1, 4, 6):
            assert p.stat().st_mtime_ns == stamps[p], "an intact image was rewritten"
    for a, b in zip(ref, _arrays(again["paths"])):
        np.testing.assert_array_equal(a, b)
    # a run killed mid-way leaves only whole images; the rerun completes the set identically
    shutil.rmtree(out)
    import tbcm.eval.generate as G

    real_save, saved, lock = G._save_png, [], threading.Lock()

    def dying_save(array, path):  # called by the writer threads: one at a time, so that exactly 5 get through
        with lock:
            if len(saved) == 5:
                raise KeyboardInterrupt("killed")
            real_save(array, path)
            saved.append(path)

    G._save_png = dying_save
    try:
        with pytest.raises(KeyboardInterrupt):
            generate_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False)
    finally:
        G._save_png = real_save
    assert sorted(p.name for p in out.glob("imgs/*/*")) == sorted(p.name for p in saved)
    done = generate_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False)
    assert done["generated"] == 5
    for a, b in zip(ref, _arrays(done["paths"])):
        np.testing.assert_array_equal(a, b)
    for changed in (dict(guidance=5.0), dict(batch_size=3), dict(seed=1)):
        kw = dict(steps=2, guidance=4.5, seed=0, batch_size=4, progress=False) | changed
        with pytest.raises(ValueError, match="other settings"):
            generate_folder(gen, meta, ids, global_index(meta), out, **kw)
    # a pipeline stage whose parameters changed replaces the stale set instead
    redone = generate_folder(gen, meta, ids, global_index(meta), out, 2, 5.0, 0, batch_size=4, progress=False,
                             replace_stale=True)
    assert redone["generated"] == 10 and json.loads((out / "generation.json").read_text())["guidance"] == 5.0


def test_shards_of_processes_fill_the_folder_with_the_one_process_images(world, tmp_path):
    """evaluate.processes: process r of P fills batches r, r + P, ...; together they write each image once, the
    same as one process, and each process resumes only its own batches."""
    meta = load_meta(world / "data" / "eval")
    ids = subset(meta, n=11)  # 3 batches of 4, the last short: uneven shares
    gen = load_generator(world / "student", device="cpu")
    whole = generate_folder(gen, meta, ids, global_index(meta), tmp_path / "one", 2, 4.5, 0, batch_size=4,
                            progress=False)
    out = tmp_path / "two"
    open_folder(gen, out, 2, 4.5, 0, batch_size=4)
    shares = [fill_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False,
                          group=Group(rank, 2)) for rank in (0, 1)]
    assert [s["generated"] for s in shares] == [7, 4]  # batches 0 and 2 (ids 0-3, 8-10), then batch 1
    assert not any(out.glob("imgs/*/.*"))
    for a, b in zip(_arrays(whole["paths"]), _arrays(shares[0]["paths"])):
        np.testing.assert_array_equal(a, b)
    shares[0]["paths"][5].unlink()  # in process 1's batch
    assert fill_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False,
                       group=Group(0, 2))["generated"] == 0
    assert fill_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False,
                       group=Group(1, 2))["generated"] == 1
    np.testing.assert_array_equal(_arrays(whole["paths"])[5], _arrays(shares[0]["paths"])[5])
    # the folder is one process's: a run with one process finds every image there
    assert generate_folder(gen, meta, ids, global_index(meta), out, 2, 4.5, 0, batch_size=4, progress=False)["kept"] == 11


def test_metrics_exist_for_every_category_present(world, judged, tmp_path):
    m = evaluate_folder(world / "teacher", world / "data", world / "judge", [2, 1], 4.5, None, 0, tmp_path / "grids",
                        "teacher_", samples_dir=tmp_path / "samples", ref_dir=tmp_path / "ref", resolution=None,
                        per_category=2, progress=False)
    meta = load_meta(world / "data" / "eval")
    ids = subset(meta, per_category=2, seed=0)
    cats = {meta[i]["category"] for i in ids}
    assert set(m) == {"real", "2_step", "1_step"}
    for row in m.values():
        assert set(row["per_category"]) == cats
        assert sum(c["n"] for c in row["per_category"].values()) == row["n"] == len(ids)
        for c in row["per_category"].values():
            assert np.isfinite(c["fid"]) and np.isfinite(c["clip_score"])
        assert {"fid", "clip_score", "shape_accuracy", "seed", "resolution", "feature_extractor"} <= set(row)
        for key in ("shape", "color", "background", "size", "position"):
            assert 0 <= row[f"{key}_accuracy"] <= 1
            assert 0 <= row[f"{key}_accuracy_se"] <= 0.5  # clustered by the row's attribute tuples
        assert 1 < row["attribute_tuples"] <= len(ids)
    assert m["real"]["background_accuracy"] > 0.5, m["real"]  # 4 backgrounds; the fixture's judge reads real ones
    assert m["2_step"]["steps"] == 2 and m["2_step"]["feature_extractor"].startswith("world judge")
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["teacher_1step.png", "teacher_2step.png"]
    # the real row's CLIP score, read from the whole set's cached scores, is the evaluated subset's own
    direct = clip_scores(judged["scorer"], image_paths(judged["ev"], meta, ids), [meta[i]["prompt"] for i in ids])
    assert m["real"]["clip_score"] == pytest.approx(direct.mean(), rel=1e-6)
    for c, row in m["real"]["per_category"].items():
        mine = np.array([meta[i]["category"] == c for i in ids])
        assert row["clip_score"] == pytest.approx(direct[mine].mean(), rel=1e-6)


def test_real_clip_scores_are_cached_once_for_the_whole_set(judged, tmp_path, capsys):
    """Every real image's CLIP score against its own prompt, computed once into a file named by the set and
    the scorer's weights; read back unchanged, never recomputed; a file of another set or a missing one
    with compute=False stops, naming it."""
    from tbcm.eval.reference import real_clip_path, real_clip_scores

    scorer, ev, ids = judged["scorer"], judged["ev"], judged["ids"]
    direct = clip_scores(scorer, judged["paths"], judged["prompts"], batch_size=32)
    with pytest.raises(ValueError, match=r"no cached real CLIP scores .*_judge-[0-9a-f]{8}_clip\.npz.*tbcm eval-reference"):
        real_clip_scores(ev, scorer, tmp_path, compute=False)
    assert not any(tmp_path.iterdir())
    made = real_clip_scores(ev, scorer, tmp_path, batch_size=32, progress=False)
    assert "images, computed)" in capsys.readouterr().out
    assert made.path == real_clip_path(tmp_path, ev, scorer) and list(tmp_path.iterdir()) == [made.path]
    np.testing.assert_array_equal(made.values, direct)
    stamp = made.path.stat().st_mtime_ns
    read = real_clip_scores(ev, scorer, tmp_path, compute=False)
    assert f"({len(ids)} images, cached)" in capsys.readouterr().out and made.path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(read.values, direct)
    np.testing.assert_array_equal(read.rows(ids[::-3]), direct[::-3])
    # another set under the same name: its ids differ
    with np.load(made.path) as z:
        stored = dict(z)
    np.savez(made.path, **{**stored, "ids": np.array([f"x{i}" for i in ids])})
    with pytest.raises(ValueError, match="ids differ"):
        real_clip_scores(ev, scorer, tmp_path)
    np.savez(made.path, something=np.zeros(3))
    with pytest.raises(ValueError, match="not a cache this code wrote"):
        real_clip_scores(ev, scorer, tmp_path)
    with pytest.raises(ValueError, match="has no tag"):
        real_clip_scores(ev, dataclasses.replace(scorer, tag=None), tmp_path)


def test_a_fid_reference_written_before_the_clip_cache_still_loads(judged, tmp_path):
    """Reference files of earlier versions stored the features as "feats" (now "values"); they are read as
    they are, not recomputed."""
    from tbcm.eval.reference import reference_features

    made = reference_features(judged["ev"], judged["extractor"], None, tmp_path, progress=False)
    with np.load(made.path) as z:
        stored = {k: z[k] for k in z.files if k != "values"}
    np.savez(made.path, **stored, feats=made.values)
    read = reference_features(judged["ev"], judged["extractor"], None, tmp_path, compute=False)
    np.testing.assert_array_equal(read.values, made.values)


def test_world_eval_command_resumes_caches_and_reports(world, tmp_path):
    from tbcm import cli
    from tbcm.eval.report import write_report

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["sample"].update(steps=[1, 2], teacher_steps=2)
    p["evaluate"].update(n=12, resolution=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    outs = {}
    for run in (1, 2):
        for who in ("teacher", "student"):
            args = ["world-eval", "--params", str(tmp_path / "params.yaml"), "--model", str(world / who),
                    "--data", str(world / "data"), "--judge", str(world / "judge"), "--samples",
                    str(tmp_path / "samples" / who), "--ref-dir", str(tmp_path / "ref"), "--grids",
                    str(tmp_path / "grids" / who), "--out", str(tmp_path / "metrics" / f"{who}.json"),
                    "--plot", str(tmp_path / "plots" / f"{who}.png")] + (["--teacher"] if who == "teacher" else [])
            assert cli.main(args) == 0
            outs[run, who] = json.loads((tmp_path / "metrics" / f"{who}.json").read_text())
    assert outs[1, "student"] == outs[2, "student"] and outs[1, "teacher"] == outs[2, "teacher"]
    assert set(outs[1, "student"]) == {"real", "1_step", "2_step"} and set(outs[1, "teacher"]) == {"real", "2_step", "1_step", "vae_reconstructions"}
    assert len(list((tmp_path / "ref").glob("eval-*_judge-*_64px.npz"))) == 1  # one reference for both models
    assert (tmp_path / "plots" / "student.png").is_file()
    (tmp_path / "student").mkdir()
    report = write_report(tmp_path / "metrics" / "teacher.json", tmp_path / "metrics" / "student.json",
                          tmp_path / "student" / "train_log.json", tmp_path / "report.md")
    text = report.read_text()
    assert text.startswith("# tbcm report") and "| fid by category |" in text and "| clip_score by category |" in text
    assert outs[1, "teacher"]["vae_reconstructions"]["n"] == 12 and "| real held-out images through the VAE |" in text
    assert "| shape_accuracy | color_accuracy | background_accuracy | size_accuracy | position_accuracy | n |" in text
    tuples = outs[1, "teacher"]["real"]["attribute_tuples"]
    assert "clustered by attribute tuple" in text and f"these 12 prompts hold {tuples} tuples" in text
    assert "at most 0.144)" in text  # 0.5 / sqrt(12)
    low = min(m["shape_accuracy_se"] for o in outs.values() for k, m in o.items() if k != "vae_reconstructions")
    assert f"shape {low:.3f}-" in text
    (clip,) = (tmp_path / "ref").glob("eval-*_judge-*_clip.npz")
    assert f"- clip reference: {clip.name}" in text and "- precision: fp32" in text
    assert (tmp_path / "plots" / "quality_vs_steps.png").is_file()


def test_report_leaves_out_columns_no_row_has(tmp_path):
    """MJHQ-30k rows have FID and CLIP score only: no empty accuracy columns."""
    from tbcm.eval.report import write_report

    row = {"fid": 1.5, "clip_score": 30.0, "n": 4}
    for name, rows in (("teacher", {"real": row, "16_step": row}), ("student", {"real": row, "1_step": row})):
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
    text = write_report(tmp_path / "teacher.json", tmp_path / "student.json", tmp_path / "none.json",
                        tmp_path / "report.md").read_text()
    assert "| model | fid | clip_score | n |" in text and "accuracy" not in text.split("FID is computed")[0]
    assert "standard error" not in text


def test_world_eval_reads_the_reference_eval_reference_cached_and_never_writes_it(world, tmp_path, capsys):
    """The pipeline's order: `tbcm eval-reference` computes the reference once (the fid_reference stage),
    `world-eval --ref-cached` only reads it, and stops before generating anything when it is missing."""
    import hashlib

    from tbcm import cli

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["sample"].update(teacher_steps=2)
    p["evaluate"].update(n=8, resolution=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    ref = tmp_path / "fid_reference"
    evaluate = ["world-eval", "--params", str(tmp_path / "params.yaml"), "--teacher", "--model", str(world / "teacher"),
                "--data", str(world / "data"), "--judge", str(world / "judge"), "--samples", str(tmp_path / "samples"),
                "--ref-dir", str(ref), "--ref-cached", "--grids", str(tmp_path / "grids"), "--out", str(tmp_path / "m.json")]
    assert cli.main(evaluate) == 2
    assert "tbcm eval-reference" in capsys.readouterr().err
    assert not (tmp_path / "samples").exists() and not ref.exists()

    assert cli.main(["eval-reference", "--params", str(tmp_path / "params.yaml"), "--data", str(world / "data" / "eval"),
                     "--judge", str(world / "judge"), "--ref-dir", str(ref)]) == 0
    out = capsys.readouterr().out
    assert "FID reference: " in out and "real CLIP scores: " in out and out.count("images, computed)") == 2
    files = sorted(ref.iterdir())
    (npz,) = [f for f in files if f.name.endswith("_64px.npz")]
    (clip,) = [f for f in files if f.name.endswith("_clip.npz")]
    before = [(f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files]
    assert cli.main(evaluate) == 0
    out = capsys.readouterr().out
    assert f"FID reference: {npz} (120 images, cached)" in out and f"real CLIP scores: {clip} (120 images, cached)" in out
    assert sorted(ref.iterdir()) == files
    assert [(f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files] == before
    m = json.loads((tmp_path / "m.json").read_text())
    assert {row["reference"] for k, row in m.items() if k != "vae_reconstructions"} == {npz.name}
    assert m["real"]["clip_reference"] == clip.name
    assert "clip_reference" not in m["2_step"]  # generated images are scored, not read from the cache
    with np.load(clip) as z:
        ids = sorted(load_meta(world / "data" / "eval"))[:8]  # evaluate.n: the first 8 of the sorted ids
        assert m["real"]["clip_score"] == pytest.approx(z["values"][:8].mean(), rel=1e-12) and z["ids"][:8].tolist() == ids


@pytest.mark.slow
def test_evaluate_command_on_an_mjhq_layout_set_offline_with_inception(world, tmp_path, no_network):
    """The MJHQ-30k path end to end on an 8-image, 2-category set in MJHQ's layout: Inception-v3 from the
    verified offline copy, CLIP from a local file (a tiny architecture standing in for ViT-L/14).
    Slow: each 2048-d Frechet distance takes seconds on one core, and there are 6."""
    from tbcm import cli

    mjhq = tmp_path / "mjhq"
    mjhq_layout_set(world / "data" / "eval", mjhq)
    meta = load_meta(mjhq)
    cats = sorted({m["category"] for m in meta.values()})
    weights = tiny_open_clip(tmp_path)
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["sample"].update(steps=[1])
    p["evaluate"].update(n=None, resolution=64, weights_dir=str(weights.parent), clip_model=TINY_CLIP,
                         clip_weights=weights.name, batch_size=8)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    args = ["evaluate", "--params", str(tmp_path / "params.yaml"), "--model", str(world / "student"),
            "--data", str(mjhq), "--samples", str(tmp_path / "samples"), "--ref-dir", str(tmp_path / "ref"),
            "--grids", str(tmp_path / "grids"), "--out", str(tmp_path / "student.json"), "--text-max-length", "24"]
    assert cli.main(args) == 0
    m = json.loads((tmp_path / "student.json").read_text())
    assert set(m) == {"real", "1_step"}
    # every image of the set against itself: 0 up to the rounding of a 2048-term trace (Tr S ~ 100s)
    assert abs(m["real"]["fid"]) < 1e-3 and m["1_step"]["fid"] > 1
    for row in m.values():
        assert row["feature_extractor"].startswith("inception-v3") and row["clip_model"].startswith("open_clip")
        assert row["n"] == 8 and set(row["per_category"]) == set(cats)
    assert len(list((tmp_path / "grids").glob("*.png"))) == 1
    assert [f.name for f in (tmp_path / "ref").iterdir()][0].startswith("mjhq-")


class _FakeVAE:
    """encode/decode as diffusers' AutoencoderDC returns them; `blank` decodes every image to mid-grey."""

    dtype = torch.float32

    def __init__(self, blank: bool):
        self.blank = blank

    def encode(self, x):
        return SimpleNamespace(latent=x)

    def decode(self, z):
        return SimpleNamespace(sample=torch.zeros_like(z) if self.blank else z)


def test_reconstruction_accuracy_is_the_judges_accuracy_on_what_the_vae_gives_back(judged):
    from tbcm.world.build import attribute_accuracy
    from tbcm.world.evaluate import reconstruction_accuracy

    attrs = json.loads((judged["ev"] / "attributes.json").read_text())
    ids = judged["ids"][:48]
    images = load_images(judged["ev"], judged["meta"], ids)
    a = [attrs[i] for i in ids]
    args = (judged["judge"], judged["tok"], judged["cfg"])
    real = attribute_accuracy(judged["judge"], judged["tok"], images, a, judged["cfg"])
    same = reconstruction_accuracy(_FakeVAE(False), *args, images, a, batch_size=20)
    assert same == {"shape_accuracy": real["shape"], "color_accuracy": real["color"], "n": 48}
    blank = reconstruction_accuracy(_FakeVAE(True), *args, images, a)
    assert blank["color_accuracy"] < real["color"]  # a grey image shows no colour the judge can read
