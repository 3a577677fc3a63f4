"""Procedural captioned shapes: the data of the embedded text-to-image world.

Every image is one coloured shape on a plain background, and its caption names all five
attributes (shape, shape colour, size, position, background colour), so a generated image can be
scored by recovering the attributes a caption asked for. The world is small on purpose: 10 shapes x
8 colours x 4 backgrounds (shape colour != background) x 2 sizes x 5 positions = 2,800 attribute
tuples, each with 4 paraphrased captions, drawn at 32 px by default, so a teacher and a student can
be trained on CPU/one GPU in minutes while the pipeline stays that of a real text-to-image model.

Data is written in the on-disk layout of the MJHQ-30k benchmark, so evaluation code reads this
world and MJHQ-30k alike:

    root/meta_data.json            id -> {"category": shape, "prompt": caption}
    root/imgs/<category>/<id>.jpg
    root/attributes.json           id -> {"shape", "color", "background", "size", "position"}

`write_world_data` writes a `train` and an `eval` split whose attribute tuples (and therefore
captions) are disjoint, as MJHQ-30k's prompts are not training prompts, plus `train_prompts.txt`
(the only thing the image-free distillation stage reads).

Everything is deterministic per seed: the same call writes byte-identical files.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

# ----------------------------------------------------------------------------------------------
# The attribute catalogue
# ----------------------------------------------------------------------------------------------

# Chosen to stay distinguishable at 32 px (a hexagon, say, is a circle at 8 px across).
SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "heart", "cross", "diamond", "ring", "crescent", "arrow",
)

# Well-separated sRGB values: the closest pair (red/orange) is ~100 apart, so a colour survives
# JPEG and a blurry generator and can still be read back by nearest-colour matching.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (40, 80, 215),
    "yellow": (245, 215, 40),
    "purple": (135, 55, 175),
    "orange": (245, 135, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}

# Backgrounds are named colours too (the same RGB), so "white" means one thing in every caption.
BACKGROUNDS: tuple[str, ...] = ("white", "black", "blue", "green")

SIZES: tuple[str, ...] = ("small", "large")

POSITIONS: tuple[str, ...] = ("center", "top left", "top right", "bottom left", "bottom right")

# Every caption attribute and its values (the judge's hard negatives and zero-shot scoring, and the
# text encoder's lesson, all read this one table).
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES, "color": tuple(COLORS), "background": BACKGROUNDS, "size": SIZES, "position": POSITIONS,
}

# Geometry, in units of the image side (x right, y down). The shape "radius" is the half-extent of
# its unit-disc footprint; large shapes in a corner stay inside the image under full jitter.
_CENTERS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
}
_RADII: dict[str, float] = {"small": 0.15, "large": 0.23}
# Jitter amplitudes: small enough that size, position and shape stay unambiguous.
_JITTER_SHIFT = 0.025  # position, in image sides
_JITTER_SCALE = 0.06  # relative size
_JITTER_ROT = math.radians(10.0)  # rotation (square vs diamond differ by 45 degrees)

# Position phrases per template style: long ("in the top left corner"), bare ("top left"),
# short ("in the top left").
_POS_LONG = {p: "in the center" if p == "center" else f"in the {p} corner" for p in POSITIONS}
_POS_BARE = {p: p for p in POSITIONS}
_POS_SHORT = {p: f"in the {p}" for p in POSITIONS}

N_TEMPLATES = 4

# The deterministic eval hold-out is fixed (not tied to the data seed) so every seed sees the same
# train/eval tuple partition and eval numbers of different runs are comparable.
_HOLDOUT_SEED = 20251126
EVAL_FRACTION = 0.1

_MIN_RESOLUTION = 16
_CHUNK = 1024  # images rendered per vectorised batch (bounds memory at large resolutions)
_JPEG_QUALITY = 95


@dataclass(frozen=True)
class Attributes:
    """One attribute tuple; frozen so tuples can key sets/dicts (the train/eval partition)."""

    shape: str
    color: str
    background: str
    size: str
    position: str

    def __post_init__(self):
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("color", self.color, tuple(COLORS)),
            ("background", self.background, BACKGROUNDS),
            ("size", self.size, SIZES),
            ("position", self.position, POSITIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")
        if self.color == self.background:
            raise ValueError(f"color and background are both {self.color!r}: the shape would be invisible")

    def as_dict(self) -> dict[str, str]:
        """The five attributes by name (what attributes.json stores per id)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(attrs: Attributes, template_idx: int) -> str:
    """The caption of `attrs` in paraphrase `template_idx` (0..N_TEMPLATES-1).

    Every template names all five attributes, so `parse_caption` recovers them exactly; several
    templates keep the text encoder from learning one fixed word order.
    """
    if not isinstance(template_idx, (int, np.integer)) or not 0 <= template_idx < N_TEMPLATES:
        raise ValueError(f"template_idx must be an int in [0, {N_TEMPLATES}), got {template_idx!r}")
    a = attrs
    if template_idx == 0:  # a small red star in the top left corner on a blue background
        return f"{_article(a.size)} {a.size} {a.color} {a.shape} {_POS_LONG[a.position]} on {_article(a.background)} {a.background} background"
    if template_idx == 1:  # small red star, top left, blue background
        return f"{a.size} {a.color} {a.shape}, {_POS_BARE[a.position]}, {a.background} background"
    if template_idx == 2:  # a blue background with a small red star in the top left
        return f"{_article(a.background)} {a.background} background with {_article(a.size)} {a.size} {a.color} {a.shape} {_POS_SHORT[a.position]}"
    # small red star on blue, top left
    return f"{a.size} {a.color} {a.shape} on {a.background}, {_POS_BARE[a.position]}"


@functools.lru_cache(maxsize=1)
def all_attributes() -> tuple[Attributes, ...]:
    """Every valid attribute tuple, in a fixed canonical order (2,800 of them)."""
    return tuple(
        Attributes(s, c, b, z, p)
        for s in SHAPES
        for c in COLORS
        for b in BACKGROUNDS
        if c != b
        for z in SIZES
        for p in POSITIONS
    )


@functools.lru_cache(maxsize=1)
def _caption_table() -> dict[str, Attributes]:
    table: dict[str, Attributes] = {}
    for a in all_attributes():
        for t in range(N_TEMPLATES):
            text = caption(a, t)
            if table.setdefault(text, a) != a:  # the grammar must be unambiguous
                raise AssertionError(f"caption {text!r} is produced by two attribute tuples")
    return table


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace(",", " , ").split()).replace(" ,", ",")


def parse_caption(text: str) -> Attributes | None:
    """The attributes a grammar caption names, or None if `text` is not one of its captions.

    The exact inverse of `caption` (case and whitespace are ignored), used to score whether
    generated images show what their prompt asked for and to check the grammar is unambiguous.
    """
    return _caption_table().get(_normalise(text))


def vocabulary() -> list[str]:
    """Every token the grammar can produce, sorted: its words plus "," (its only punctuation).

    A word-level tokenizer built from this list (splitting punctuation off words) covers every
    caption with no unknown token.
    """
    words = {","}
    for text in _caption_table():
        words.update(text.replace(",", " ").split())
    return sorted(words)


def split_attributes(eval_fraction: float = EVAL_FRACTION) -> tuple[tuple[Attributes, ...], tuple[Attributes, ...]]:
    """(train tuples, eval tuples): a fixed, shape-stratified hold-out of `eval_fraction` of them.

    Eval tuples never occur in training, so eval prompts are never training prompts (as with
    MJHQ-30k) and eval measures composition of seen attributes into unseen combinations. The
    partition does not depend on any data seed, so every run is scored on the same held-out set.
    """
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}")
    rng = np.random.default_rng(_HOLDOUT_SEED)
    tuples = all_attributes()
    held: set[int] = set()
    for s in SHAPES:  # stratified: every shape (MJHQ category) is equally represented in eval
        idx = [i for i, a in enumerate(tuples) if a.shape == s]
        k = max(1, round(eval_fraction * len(idx)))
        held.update(int(i) for i in rng.choice(idx, size=k, replace=False))
    train = tuple(a for i, a in enumerate(tuples) if i not in held)
    evals = tuple(a for i, a in enumerate(tuples) if i in held)
    return train, evals


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_resolution(resolution) -> int:
    # Multiples of 8 keep the image divisible by a VAE / UNet's downsampling factors.
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, (int, np.integer))
        or resolution < _MIN_RESOLUTION
        or resolution % 8
    ):
        raise ValueError(f"resolution must be an int multiple of 8 and >= {_MIN_RESOLUTION}, got {resolution!r}")
    return int(resolution)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def sample_attributes(n: int, seed: int, tuples: Sequence[Attributes] | None = None) -> list[Attributes]:
    """`n` attribute tuples drawn uniformly (with replacement) from `tuples` (default: all valid).

    Uniform over tuples, not over each attribute independently, so the colour != background
    constraint does not skew the other attributes.
    """
    n = _check_positive_int("n", n)
    pool = all_attributes() if tuples is None else tuple(tuples)
    if not pool:
        raise ValueError("tuples must not be empty")
    idx = np.random.default_rng(_check_seed(seed)).integers(0, len(pool), size=n)
    return [pool[i] for i in idx]


# ----------------------------------------------------------------------------------------------
# Rendering: signed distance functions in shape-local coordinates (y up, footprint ~ unit disc)
# ----------------------------------------------------------------------------------------------


def _sd_polygon(x: np.ndarray, y: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Exact signed distance to a simple polygon (negative inside); after Inigo Quilez."""
    v = [(float(a), float(b)) for a, b in verts]  # Python floats keep float32 arrays float32
    d = (x - v[0][0]) ** 2 + (y - v[0][1]) ** 2
    inside = np.zeros(x.shape, bool)
    for i in range(len(v)):
        (xi, yi), (xj, yj) = v[i], v[i - 1]
        ex, ey = xj - xi, yj - yi
        wx, wy = x - xi, y - yi
        t = np.clip((wx * ex + wy * ey) * (1.0 / (ex * ex + ey * ey)), 0.0, 1.0)
        bx, by = wx - ex * t, wy - ey * t
        np.minimum(d, bx * bx + by * by, out=d)
        c1, c2, c3 = y >= yi, y < yj, ex * wy > ey * wx
        inside ^= (c1 & c2 & c3) | ~(c1 | c2 | c3)  # crossing-number parity
    return np.where(inside, -1.0, 1.0).astype(x.dtype) * np.sqrt(d)


def _sd_box(x, y, hx: float, hy: float, cx: float = 0.0, cy: float = 0.0):
    qx, qy = np.abs(x - cx) - hx, np.abs(y - cy) - hy
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)


def _sd_circle(x, y, r: float, cx: float = 0.0, cy: float = 0.0):
    return np.hypot(x - cx, y - cy) - r


def _sd_heart(x, y):
    # iq's heart spans x in [-0.6, 0.6], y in [0, 1.1]; map the unit footprint onto it.
    k = 0.6
    px, py = np.abs(x) * k, y * k + 0.55
    d_lobe = np.hypot(px - 0.25, py - 0.75) - math.sqrt(2) / 4
    m = np.maximum(px + py, 0) * 0.5
    d_tip = np.sqrt(np.minimum(px**2 + (py - 1) ** 2, (px - m) ** 2 + (py - m) ** 2)) * np.sign(px - py)
    return np.where(px + py > 1, d_lobe, d_tip) / k


def _regular(n: int, r: float, start_deg: float = 90.0) -> np.ndarray:
    a = np.radians(start_deg + 360.0 / n * np.arange(n))
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


_TRIANGLE = _regular(3, 1.1) - [0.0, 0.275]  # centred bounding box, y in [-0.825, 0.825]
_STAR = (np.where((np.arange(10) % 2 == 0)[:, None], 1.0, 0.45) * _regular(10, 1.0)) - [0.0, 0.095]
_DIAMOND = np.array([[0.0, 1.0], [0.8, 0.0], [0.0, -1.0], [-0.8, 0.0]])
_ARROW_HEAD = np.array([[-0.05, 0.75], [0.95, 0.0], [-0.05, -0.75]])

_SDF = {
    "circle": lambda x, y: _sd_circle(x, y, 0.9),
    "square": lambda x, y: _sd_box(x, y, 0.78, 0.78),
    "triangle": lambda x, y: _sd_polygon(x, y, _TRIANGLE),
    "star": lambda x, y: _sd_polygon(x, y, _STAR),
    "heart": _sd_heart,
    "cross": lambda x, y: np.minimum(_sd_box(x, y, 0.9, 0.3), _sd_box(x, y, 0.3, 0.9)),
    "diamond": lambda x, y: _sd_polygon(x, y, _DIAMOND),
    "ring": lambda x, y: np.abs(np.hypot(x, y) - 0.7) - 0.22,
    "crescent": lambda x, y: np.maximum(_sd_circle(x, y, 0.9), -_sd_circle(x, y, 0.72, 0.38, 0.22)),
    "arrow": lambda x, y: np.minimum(_sd_box(x, y, 0.5, 0.2, -0.4, 0.0), _sd_polygon(x, y, _ARROW_HEAD)),
}


def render_many(attrs: Sequence[Attributes], resolution: int = 32, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render a batch: uint8 [N, H, W, 3]. Vectorised per shape, so 20k images take about a second.

    With `rng`, each image gets a small position/size/rotation jitter (4 uniforms per image, drawn
    in order, so a batch equals the same images rendered one by one from the same stream);
    `rng=None` draws the canonical image. Edges are anti-aliased over one pixel from the signed
    distance.
    """
    resolution = _check_resolution(resolution)
    n = len(attrs)
    jit = np.zeros((n, 4)) if rng is None else rng.uniform(-1.0, 1.0, size=(n, 4))
    out = np.empty((n, resolution, resolution, 3), np.uint8)
    for start in range(0, n, _CHUNK):  # chunks that stay in cache are ~3x faster than one big batch
        stop = min(start + _CHUNK, n)
        out[start:stop] = _render_chunk(attrs[start:stop], resolution, jit[start:stop])
    return out


def _render_chunk(attrs: Sequence[Attributes], resolution: int, j: np.ndarray) -> np.ndarray:
    cx = np.array([_CENTERS[a.position][0] for a in attrs]) + _JITTER_SHIFT * j[:, 0]
    cy = np.array([_CENTERS[a.position][1] for a in attrs]) + _JITTER_SHIFT * j[:, 1]
    radius = np.array([_RADII[a.size] for a in attrs]) * (1 + _JITTER_SCALE * j[:, 2])
    theta = _JITTER_ROT * j[:, 3]

    f32 = np.float32
    u = ((np.arange(resolution) + 0.5) / resolution).astype(f32)
    dx = u[None, None, :] - cx[:, None, None].astype(f32)  # [N, 1, W]
    dy = cy[:, None, None].astype(f32) - u[None, :, None]  # [N, H, 1], y up
    cos, sin = np.cos(theta).astype(f32)[:, None, None], np.sin(theta).astype(f32)[:, None, None]
    inv_r = (1.0 / radius).astype(f32)[:, None, None]
    lx = (cos * dx + sin * dy) * inv_r  # rotate by -theta, scale to the unit footprint
    ly = (cos * dy - sin * dx) * inv_r

    dist_px = np.empty(lx.shape, f32)
    shape_ids = np.array([SHAPES.index(a.shape) for a in attrs])
    for k, name in enumerate(SHAPES):
        idx = np.flatnonzero(shape_ids == k)
        if idx.size:
            dist_px[idx] = _SDF[name](lx[idx], ly[idx]) * (radius[idx] * resolution).astype(f32)[:, None, None]
    alpha = np.clip(0.5 - dist_px, 0.0, 1.0)[..., None]  # 1-px anti-aliased edge

    fg = np.array([COLORS[a.color] for a in attrs], f32)[:, None, None, :]
    bg = np.array([COLORS[a.background] for a in attrs], f32)[:, None, None, :]
    return np.rint(bg + alpha * (fg - bg)).astype(np.uint8)


def render(attrs: Attributes, resolution: int = 32, rng: np.random.Generator | None = None) -> np.ndarray:
    """One image, uint8 [H, W, 3]; `render_many([attrs], resolution, rng)[0]`."""
    return render_many([attrs], resolution, rng)[0]


# ----------------------------------------------------------------------------------------------
# Writing the MJHQ-30k layout
# ----------------------------------------------------------------------------------------------


def _is_complete(root: Path) -> bool:
    return (root / "meta_data.json").is_file()


def _check_target(root: Path, overwrite: bool) -> None:
    """Refuse to replace an existing split (or an unknown non-empty folder) unless asked to."""
    if root.exists() and not overwrite:
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a directory")
        if _is_complete(root):
            raise FileExistsError(f"{root} already holds a split (meta_data.json); pass overwrite=True to replace it")
        if any(root.iterdir()):
            raise FileExistsError(f"{root} is a non-empty folder without meta_data.json; refusing to replace it")


def _move_into_place(tmp: Path, root: Path) -> None:
    """Rename a finished temp dir onto `root`; an old `root` is moved aside first, then deleted."""
    old = None
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.rmdir(old)
        os.replace(root, old)
    os.replace(tmp, root)
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()


def _write_new_file(path: Path, data: bytes) -> None:
    # os.open/os.write skip Python's buffered-IO layers: about half the cost per small file
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _dump_json(obj, path: Path) -> None:
    # one id per line: readable and diffable, and encoded by json's fast C path (no indent=)
    lines = [f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(obj.items())]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


def write_split(
    root: str | os.PathLike,
    n: int,
    seed: int,
    resolution: int = 32,
    split_name: str | None = None,
    *,
    tuples: Sequence[Attributes] | None = None,
    jitter: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write `n` captioned images to `root` in the MJHQ-30k layout, atomically; returns `root`.

    Attributes are drawn uniformly from `tuples` (default: all), each caption uses a uniformly drawn
    paraphrase template. Files are written into a temp dir next to `root` and renamed into place,
    so `root` is either absent or complete (an interrupted run never leaves a half split that a
    workflow tool would take as done). An existing complete `root` is an error unless `overwrite`.
    Ids are 8-digit zero-padded indices. Also writes `attributes.json` (id -> attributes) so
    evaluation can score attribute accuracy. `split_name` only labels the progress bar.
    """
    n = _check_positive_int("n", n)
    resolution = _check_resolution(resolution)
    seed = _check_seed(seed)
    root = Path(root)
    _check_target(root, overwrite)
    root.parent.mkdir(parents=True, exist_ok=True)

    attr_seed, caption_seed, jitter_seed = np.random.SeedSequence(seed).generate_state(3)
    attrs = sample_attributes(n, int(attr_seed), tuples)
    templates = np.random.default_rng(caption_seed).integers(0, N_TEMPLATES, size=n)
    jitter_rng = np.random.default_rng(jitter_seed) if jitter else None

    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the split is ordinary shared data
        for shape in SHAPES:
            (tmp / "imgs" / shape).mkdir(parents=True)
        meta, attr_json = {}, {}
        canvas = Image.new("RGB", (resolution, resolution))
        with tqdm(total=n, desc=split_name or root.name, unit="img", disable=not progress) as bar:
            for start in range(0, n, _CHUNK):
                batch = attrs[start : start + _CHUNK]
                images = render_many(batch, resolution, jitter_rng)
                for k, (a, img) in enumerate(zip(batch, images)):
                    i = start + k
                    key = f"{i:08d}"
                    meta[key] = {"category": a.shape, "prompt": caption(a, int(templates[i]))}
                    attr_json[key] = a.as_dict()
                    canvas.frombytes(img.tobytes())  # reusing one PIL image: ~15% faster than fromarray
                    buf = io.BytesIO()
                    # 4:4:4 chroma: 4:2:0 would smear colour across a small shape's edge at 32 px.
                    canvas.save(buf, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)
                    _write_new_file(tmp / "imgs" / a.shape / f"{key}.jpg", buf.getvalue())
                bar.update(len(batch))
        _dump_json(attr_json, tmp / "attributes.json")
        _dump_json(meta, tmp / "meta_data.json")  # last: its presence marks a complete split
        _check_target(root, overwrite)  # someone may have written root meanwhile
        _move_into_place(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def train_prompts(eval_fraction: float = EVAL_FRACTION) -> list[str]:
    """Every grammar caption of every train tuple, deduplicated and sorted."""
    train, _ = split_attributes(eval_fraction)
    return sorted({caption(a, t) for a in train for t in range(N_TEMPLATES)})


def write_world_data(
    root: str | os.PathLike,
    n_train: int,
    n_eval: int,
    seed: int,
    resolution: int = 32,
    *,
    eval_fraction: float = EVAL_FRACTION,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Write the world: `root/train`, `root/eval` (MJHQ layout) and `root/train_prompts.txt`.

    Eval images use only the held-out tuples of `split_attributes`, so no eval prompt is a
    training prompt. `train_prompts.txt` (one caption per line) holds all captions of all train
    tuples: the image-free distillation stage reads prompts only. Train and eval draw from
    independent streams derived from `seed`. Returns the three paths by name.
    """
    n_train = _check_positive_int("n_train", n_train)
    n_eval = _check_positive_int("n_eval", n_eval)
    resolution = _check_resolution(resolution)
    seed = _check_seed(seed)
    root = Path(root)
    paths = {"train": root / "train", "eval": root / "eval", "train_prompts": root / "train_prompts.txt"}
    # check both splits before writing either, so a refusal leaves nothing half-done
    _check_target(paths["train"], overwrite)
    _check_target(paths["eval"], overwrite)
    if paths["train_prompts"].exists() and not overwrite:
        raise FileExistsError(f"{paths['train_prompts']} exists; pass overwrite=True to replace it")
    root.mkdir(parents=True, exist_ok=True)

    train, evals = split_attributes(eval_fraction)
    train_seed, eval_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    write_split(paths["train"], n_train, train_seed, resolution, "train", tuples=train, overwrite=overwrite, progress=progress)
    write_split(paths["eval"], n_eval, eval_seed, resolution, "eval", tuples=evals, overwrite=overwrite, progress=progress)

    fd, tmp = tempfile.mkstemp(prefix=".train_prompts.", suffix=".tmp", dir=root)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(train_prompts(eval_fraction)) + "\n")
        os.replace(tmp, paths["train_prompts"])
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return paths
