"""PNG grids of samples with their prompts written under each image."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path


def image_grid(
    images: torch.Tensor | np.ndarray,
    path: str | Path,
    ncol: int = 8,
    captions: Sequence[str] | None = None,
    cell: int = 128,
    caption_lines: int = 4,
    title: str | None = None,
) -> Path:
    """Save uint8 [N, H, W, 3] images as a grid PNG, each resized to `cell` px (nearest neighbour when enlarged,
    so small images stay crisp; Lanczos when shrunk, which nearest would alias) with its caption wrapped
    underneath. Written atomically."""
    imgs = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n = len(imgs)
    if n == 0:
        raise ValueError("image_grid: no images")
    ncol = min(ncol, n)
    nrow = -(-n // ncol)
    font = ImageFont.load_default()
    line_h = 11
    cap_h = caption_lines * line_h + 4 if captions is not None else 0
    top = 16 if title else 0
    canvas = Image.new("RGB", (ncol * (cell + 4) + 4, top + nrow * (cell + cap_h + 4) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    width_chars = max(8, cell // 6)
    for k in range(n):
        r, c = divmod(k, ncol)
        x0, y0 = 4 + c * (cell + 4), top + 4 + r * (cell + cap_h + 4)
        shrink = imgs[k].shape[0] > cell
        canvas.paste(Image.fromarray(imgs[k]).resize((cell, cell), Image.LANCZOS if shrink else Image.NEAREST), (x0, y0))
        if captions is not None:
            lines = textwrap.wrap(str(captions[k]), width_chars)[:caption_lines]
            for j, line in enumerate(lines):
                draw.text((x0, y0 + cell + 2 + j * line_h), line, fill="black", font=font)
    path = Path(path)
    with atomic_path(path) as tmp:
        canvas.save(tmp)
    return path
