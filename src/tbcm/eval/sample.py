"""`tbcm sample`: a teacher's or student's images for prompts of your own, at several step counts, on one
PNG grid - the look at a model a person wants before (or instead of) a metric.

A row per prompt and a column per step count. Every prompt's noise comes from its own generator, seeded by
(seed, the prompt's position in the list), as `generate.py` seeds evaluation images: a prompt starts from the
same latent in every column, so the columns differ by the step count alone, and rerunning with one more
prompt leaves the others' images unchanged. Works on any folder `generate.load_generator` reads (a
SanaPipeline teacher: N-step ODE with CFG; a SanaSprintPipeline student: N-step consistency sampling).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from ..atomic import write_json, write_text
from .grids import image_grid


def read_prompts(prompts: Sequence[str] = (), file: str | Path | None = None) -> list[str]:
    """The prompts given one by one, then those of `file` (one per line; blank lines skipped). Stops on an
    empty list or a blank prompt given on the command line, naming it."""
    out = [str(p).strip() for p in prompts]
    for i, p in enumerate(out):
        if not p:
            raise ValueError(f"prompt {i + 1} of --prompt is empty")
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ValueError(f"prompts file not found: {path}")
        out += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not out:
        raise ValueError("no prompts: give --prompt TEXT (repeatable) or --prompts-file FILE"
                         + (f" ({file} has none)" if file is not None else ""))
    return out


def check_steps(steps: Sequence[int]) -> list[int]:
    steps = list(steps)
    if not steps:
        raise ValueError("no step counts given")
    for k in steps:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"step counts must be integers >= 1, got {k!r}")
    return steps


def sample_grid(model: str | Path, prompts: Sequence[str], steps: Sequence[int], out: str | Path, *,
                guidance: float = 4.5, seed: int = 0, text_max_length: int = 24,
                instruction: tuple[str, ...] | None = None, images_dir: str | Path | None = None,
                device: str | None = None, batch_size: int = 16, precision: str = "fp32") -> dict:
    """Sample `model` for every prompt at every step count; write the grid PNG `out`, beside it `out`.json
    (what the images are a function of), and with `images_dir` each image as `<k>_step/<row>.png`.
    Returns the JSON's content."""
    from .generate import _save_png, generate, load_generator

    steps, out = check_steps(steps), Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {out}")
    if not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number, got {guidance}")
    gen = load_generator(model, text_max_length, device, instruction, precision)
    rows = list(range(len(prompts)))
    by_steps = {k: generate(gen, list(prompts), rows, k, guidance, seed, batch_size) for k in steps}
    # row-major: prompt i's images at each step count, side by side
    cells = [by_steps[k][i] for i in rows for k in steps]
    captions = [f"{k} step{'s' * (k > 1)}: {prompts[i]}" for i in rows for k in steps]
    side = cells[0].shape[0]
    image_grid(torch.stack(cells), out, ncol=len(steps), captions=captions,
               cell=128 if side <= 128 else 256, title=f"{Path(model).name} ({gen.kind}), guidance {guidance:g}, seed {seed}")
    if images_dir is not None:
        images_dir = Path(images_dir)
        for k, imgs in by_steps.items():
            for i in rows:
                _save_png(imgs[i].numpy(), images_dir / f"{k}_step" / f"{i:03d}.png")
        write_text(images_dir / "prompts.txt", "\n".join(prompts) + "\n")
    info = {"model": str(model), "kind": gen.kind, "fingerprint": gen.fingerprint, "steps": steps,
            "guidance": guidance, "seed": seed, "precision": precision, "text_max_length": text_max_length,
            "instruction": instruction is not None, "prompts": list(prompts), "grid": str(out),
            "images": None if images_dir is None else str(images_dir)}
    write_json(out.with_suffix(".json"), info)
    return info
