"""What an evaluation image costs the CPU: written, and read back for the metrics.

Writing: wall time per image of writing 1024 px PNGs while the images are sampled: the loop as it was
(sample a batch, then write it, Pillow's default zlib level 6, one thread) against `fill_folder`'s (zlib
level 1, PNG_WRITERS threads writing a batch while the next is sampled), side by side in one run; then the
time and size of one image at either level. Reading: one image brought to each metric's input, as
clean-fid's file pipeline (decode, bicubic to evaluate.resolution, its "clean" resize to 299) and open_clip's
preprocessing (decode, resize to 224, centre crop) do it, one image at a time, from a PNG (the samples)
and from a JPEG (MJHQ-30k's real images, read by the fid_reference stage); then a folder of them read
back through the metrics' own loaders (`fid.file_features`, `clip_score.clip_scores`) with each number of
evaluate.decode_workers, the networks stood in by a mean over pixels (on a GPU, Inception-v3 and CLIP
ViT-L/14 take a few ms an image), checking that every count gives the same numbers.

Sampling is a stand-in that sleeps for --sample-ms per image, as a GPU leaves the CPU free while it samples
(Sana 0.6B's teacher: ~250 ms an image at 20 steps with guidance; a 1-4 step student: ~30 ms; both
estimated, not measured here). The images are smooth patterns plus Gaussian noise of each --noise level:
how hard a PNG is to compress depends on the picture, so the table gives a range, not the number for real
samples.

    python benchmarks/image_io.py [--images 32] [--batch 8] [--workers 0 1 2] [--out table.md]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import tbcm.eval.generate as G
from tbcm.atomic import atomic_path, write_text
from tbcm.machine import cpu_model


# MJHQ-30k's files are JPEGs; their encoder quality is not recorded here, 95 stands in for it
JPEG_QUALITY = 95


def pattern(noise: float, n: int, side: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, side)
    smooth = np.sin(8 * x)[None, :, None] * np.cos(5 * x)[:, None, None] * 127 + 128
    return torch.from_numpy(np.stack([(smooth + rng.normal(0, noise, (side, side, 3))).clip(0, 255).astype(np.uint8)
                                      for _ in range(n)]))


def before(sample, ids: list[str], batch: int, out: Path) -> None:
    """The loop before: sample a batch, then write each image (zlib level 6) in this thread."""
    for b in range(0, len(ids), batch):
        for k, img in zip(range(b, b + batch), sample(ids[b : b + batch]).numpy()):
            with atomic_path(out / "imgs" / "c" / f"{ids[k]}.png") as tmp:
                Image.fromarray(img).save(tmp, format="PNG")


def _decode(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _median_ms(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def read_back(resolution: int):
    """path -> Inception's input and path -> CLIP's input, the way the evaluation makes them."""
    import open_clip
    from cleanfid.resize import make_resizer

    from tbcm.eval.fid import resize_to

    to_res, clean = resize_to(resolution), make_resizer("PIL", False, "bicubic", (299, 299))
    clip_pre = open_clip.image_transform(224, is_train=False)
    return (lambda path: clean(to_res(np.asarray(_decode(path)))), lambda path: clip_pre(_decode(path)))


def read_folder(args) -> list[str]:
    """Table rows: ms per image of reading --images PNGs back through each metric's loader, per worker count."""
    import open_clip

    from tbcm.eval.clip_score import ClipScorer, clip_scores
    from tbcm.eval.fid import FeatureExtractor, file_features

    lines = ["", f"A folder of {args.images} images read back through the metrics' loaders (ms per image, noise "
             f"{args.noise[-1]:g}; networks stood in by a pixel mean), by evaluate.decode_workers; {cpu_model()}, "
             f"{len(os.sched_getaffinity(0))} CPUs.", "",
             f"| decode_workers | FID features: ms/img | CLIP score: ms/img | both, vs {args.workers[0]} workers |",
             "|---|---|---|---|"]
    mean = lambda x: x.float().mean(dim=(2, 3))
    extractor = FeatureExtractor("pixel mean", "mean", mean)
    scorer = ClipScorer("pixel mean", open_clip.image_transform(224, is_train=False), mean,
                        lambda prompts: torch.ones(len(prompts), 3))
    first = None
    with tempfile.TemporaryDirectory() as d:
        imgs = pattern(args.noise[-1], args.batch, args.side)
        paths = [Path(d) / f"{i}.png" for i in range(args.images)]
        for i, path in enumerate(paths):
            G._save_png(imgs[i % args.batch].numpy(), path)
        for w in args.workers:
            t0 = time.perf_counter()
            feats = file_features(paths, extractor, args.resolution, args.batch, progress=False, workers=w)
            t1 = time.perf_counter()
            clip = clip_scores(scorer, paths, ["p"] * len(paths), args.batch, workers=w)
            t2 = time.perf_counter()
            if first is None:
                first = feats, clip, t2 - t0
            elif not (np.array_equal(first[0], feats) and np.array_equal(first[1], clip)):
                raise SystemExit(f"{w} decode workers gave other numbers than {args.workers[0]}")
            ms = [(t1 - t0) / len(paths) * 1000, (t2 - t1) / len(paths) * 1000]
            lines.append(f"| {w} | {ms[0]:.0f} | {ms[1]:.0f} | {first[2] / (t2 - t0):.2f}x |")
            print(lines[-1], flush=True)
    return lines


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=32, help="images per measurement (default %(default)s)")
    ap.add_argument("--batch", type=int, default=8, help="images per batch (default %(default)s)")
    ap.add_argument("--side", type=int, default=1024, help="image side in pixels (default %(default)s)")
    ap.add_argument("--noise", type=float, nargs="+", default=[2.0, 8.0], help="noise levels (default %(default)s)")
    ap.add_argument("--sample-ms", type=float, nargs="+", default=[250.0, 30.0],
                    help="stand-in sampling time per image, ms (default %(default)s)")
    ap.add_argument("--resolution", type=int, default=512, help="evaluate.resolution (default %(default)s)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                    help="evaluate.decode_workers counts to read a folder back with (default %(default)s)")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    args = ap.parse_args(argv)

    meta = {f"{i:05d}": {"prompt": "p", "category": "c"} for i in range(args.images)}
    ids = sorted(meta)
    index = {k: i for i, k in enumerate(ids)}
    lines = [f"PNG writing during sampling, {args.images} images of {args.side} px in batches of {args.batch}; "
             f"{cpu_model()}; fill_folder with {G.PNG_WRITERS} writer threads.", "",
             "| noise | sampling ms/img | before: ms/img | now: ms/img | before / now |", "|---|---|---|---|---|"]
    real_generate = G.generate
    try:
        for noise in args.noise:
            imgs = pattern(noise, args.batch, args.side)
            for ms in args.sample_ms:
                def sample(batch_ids):
                    time.sleep(ms / 1000 * len(batch_ids))
                    return imgs[: len(batch_ids)]

                G.generate = lambda gen, prompts, indices, *a: sample(prompts)
                t = {}
                with tempfile.TemporaryDirectory() as d:
                    for name in ("before", "now"):
                        t0 = time.perf_counter()
                        if name == "before":
                            before(sample, ids, args.batch, Path(d) / name)
                        else:
                            G.fill_folder(type("Stub", (), {"kind": "stand-in"})(), meta, ids, index, Path(d) / name,
                                          1, 4.5, 0, args.batch, progress=False)
                        t[name] = (time.perf_counter() - t0) / args.images * 1000
                    for i in ids:  # lossless both: the same pixels, whatever the zlib level
                        a, b = (np.asarray(Image.open(Path(d) / n / "imgs" / "c" / f"{i}.png")) for n in ("before", "now"))
                        if not np.array_equal(a, b):
                            raise SystemExit(f"image {i}: the two loops wrote different pixels")
                lines.append(f"| {noise:g} | {ms:g} | {t['before']:.0f} | {t['now']:.0f} | {t['before'] / t['now']:.1f}x |")
                print(lines[-1], flush=True)
    finally:
        G.generate = real_generate
    lines += ["", "One image, written alone (median of 5): zlib level 6 (Pillow's default) against level 1.", "",
              "| noise | level 6: ms | level 6: MB | level 1: ms | level 1: MB |", "|---|---|---|---|---|"]
    for noise in args.noise:
        img = Image.fromarray(pattern(noise, 1, args.side)[0].numpy())
        row = []
        for level in (6, 1):
            times = []
            for _ in range(5):
                buf = io.BytesIO()
                t0 = time.perf_counter()
                img.save(buf, format="PNG", compress_level=level)
                times.append(time.perf_counter() - t0)
            row += [f"{statistics.median(times) * 1000:.0f}", f"{buf.tell() / 1e6:.2f}"]
        lines.append(f"| {noise:g} | " + " | ".join(row) + " |")
    lines += ["", f"One image read back for the metrics (median of 5, ms): decoded; Inception's input (at "
              f"{args.resolution} px, then 299); CLIP's (224). PNG as the evaluation writes the samples; JPEG "
              f"(quality {JPEG_QUALITY}) as MJHQ-30k ships its real images, which the fid_reference stage reads.", "",
              "| noise | file | decode | Inception input | CLIP input |", "|---|---|---|---|---|"]
    inception_input, clip_input = read_back(args.resolution)
    with tempfile.TemporaryDirectory() as d:
        for noise in args.noise:
            img = pattern(noise, 1, args.side)[0].numpy()
            for kind, path in (("PNG", Path(d) / f"{noise}.png"), ("JPEG", Path(d) / f"{noise}.jpg")):
                if kind == "PNG":
                    G._save_png(img, path)
                else:
                    Image.fromarray(img).save(path, quality=JPEG_QUALITY)
                row = [_median_ms(lambda: _decode(path))] + [_median_ms(lambda f=f: f(path)) for f in (inception_input, clip_input)]
                lines.append(f"| {noise:g} | {kind} | " + " | ".join(f"{ms:.0f}" for ms in row) + " |")
    lines += read_folder(args)
    table = "\n".join(lines) + "\n"
    if args.out:
        write_text(args.out, table)
    print(table)
    return table


if __name__ == "__main__":
    main()
