"""Datasets: `shapes` (procedural), `emoji` (prepared from npm tarballs), or a captioned folder.

Each offers `captions` (list[str]), `sample(batch_size, rng) -> (uint8 [B, R, R, 3], int64 [B])`
and `describe() -> dict` (recorded in checkpoints).
"""

from __future__ import annotations

from pathlib import Path

from .captioned import CaptionedImages
from .shapes import DEFAULT_HOLDOUT, ShapesWorld

Dataset = ShapesWorld | CaptionedImages


def open_dataset(spec: str, resolution: int, data_root: str | Path = "data") -> Dataset:
    """`shapes`, `emoji`, or a path to a folder with metadata.jsonl."""
    if spec == "shapes":
        return ShapesWorld(resolution, DEFAULT_HOLDOUT)
    if spec == "emoji":
        from .emoji import load_emoji
        return load_emoji(Path(data_root) / "emoji", resolution)
    if Path(spec).is_dir():
        from .folder import load_folder
        return load_folder(spec, resolution)
    raise ValueError(f"unknown dataset {spec!r}: use 'shapes', 'emoji' or a folder with metadata.jsonl")
