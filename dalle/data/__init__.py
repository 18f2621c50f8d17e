"""Datasets: `shapes` (procedural), `emoji` (prepared from npm tarballs), or a captioned folder.

Each offers `captions` (list[str]), `sample(batch_size, rng) -> (uint8 [B, R, R, 3], int64 [B])`
and `describe() -> dict` (recorded in checkpoints).
"""

from __future__ import annotations

from pathlib import Path

from ..shapes.world import DEFAULT_HOLDOUT, DEFAULT_MIX, ShapesWorld
from .captioned import CaptionedImages

Dataset = ShapesWorld | CaptionedImages


def open_dataset(spec: str, resolution: int, data_root: str | Path = "data",
                 scene_mix: tuple[float, ...] = ()) -> Dataset:
    """`shapes`, `emoji`, or a path to a folder with metadata.jsonl. `scene_mix`: the shapes world's
    shares of single, pair and count scenes (empty: its default)."""
    if scene_mix and spec != "shapes":
        raise ValueError(f"a scene mix is for the shapes world, not {spec!r}")
    if spec == "shapes":
        return ShapesWorld(resolution, DEFAULT_HOLDOUT, tuple(scene_mix) or DEFAULT_MIX)
    if spec == "emoji":
        from .emoji import load_emoji
        return load_emoji(Path(data_root) / "emoji", resolution)
    if Path(spec).is_dir():
        from .folder import load_folder
        return load_folder(spec, resolution)
    raise ValueError(f"unknown dataset {spec!r}: use 'shapes', 'emoji' or a folder with metadata.jsonl")
