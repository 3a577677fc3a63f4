"""The prompt set of image-free distillation: read (one per line, or a CSV / parquet column), clean,
de-duplicate, length-filter, shuffle by seed, and write one prompt per line atomically."""

from __future__ import annotations

import random
import re
from pathlib import Path

from .atomic import write_text


def read_prompt_source(path: Path, column: str = "prompt") -> list[str]:
    if not path.is_file():
        raise ValueError(f"prompt source not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        import pandas as pd

        df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        if column not in df.columns:
            raise ValueError(f"{path} has no column '{column}' (prompts.column); columns: {list(df.columns)}")
        return [str(v) for v in df[column].dropna().tolist()]
    return path.read_text(encoding="utf-8").splitlines()


def clean(prompt: str) -> str:
    """Collapse whitespace (newlines, tabs) and strip; nothing else is rewritten."""
    return re.sub(r"\s+", " ", prompt).strip()


def select_prompts(src: Path, column: str = "prompt", min_words: int = 1, max_words: int = 120) -> list[str]:
    """Read, clean, de-duplicate (first occurrence kept) and length-filter; raise naming `src` if none is left."""
    seen, kept = set(), []
    for p in map(clean, read_prompt_source(Path(src), column)):
        n = len(p.split())
        if p and min_words <= n <= max_words and p not in seen:
            seen.add(p)
            kept.append(p)
    if not kept:
        raise ValueError(f"no prompts left from {src} after cleaning and the {min_words}-{max_words} word filter")
    return kept


def collect_prompts(src: Path, out: Path, column: str = "prompt", min_words: int = 1, max_words: int = 120,
                    limit: int | None = None, seed: int = 0) -> int:
    kept = select_prompts(src, column, min_words, max_words)
    random.Random(seed).shuffle(kept)
    if limit is not None:
        kept = kept[:limit]
    write_text(out, "\n".join(kept) + "\n")
    return len(kept)
