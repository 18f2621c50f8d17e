"""What the service hands to the UI: generations and interpolations as plain numpy data.

Both know how to draw themselves as a grid and how to encode that grid as a PNG
whose text chunks say how to reproduce it (prompts, seeds, truncation, checkpoint, step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from dalle.images import grid_image, png_bytes


@dataclass
class Generation:
    """Images for P prompts x N columns, with the discriminator's scores.

    `seeds[p, n]` is the seed of image (p, n). Without reranking every row uses
    seed, seed+1, ...; with best-of-N each row keeps its own top-scoring seeds.
    """

    checkpoint: str
    step: int
    images_seen: int
    prompts: list[str]
    seeds: np.ndarray  # int64 [P, N]
    pixels: np.ndarray  # uint8 [P, N, R, R, 3]
    realism: np.ndarray  # float [P, N] in [0, 1]
    match: np.ndarray  # float [P, N] in [0, 1]
    truncation: float
    seed: int  # the seed the user asked for (first candidate)
    best_of: int = 0  # candidates per prompt when reranked, 0 when not
    rerank_score: str = ""  # the score the best ones were kept by, when reranked (`dalle.rerank.SCORES`)
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def grid(self) -> Image.Image:
        """Rows = prompts, columns = seeds (or ranks, when reranked), 2px grey gutters."""
        p, n = self.shape
        return grid_image(self.pixels.reshape(p * n, *self.pixels.shape[2:]), p, n)

    def metadata(self) -> dict:
        meta = {"prompts": self.prompts, "seed": self.seed, "seeds": self.seeds.tolist(),
                "truncation": self.truncation, "checkpoint": self.checkpoint, "step": self.step}
        if self.best_of:
            meta["best_of"] = self.best_of
            meta["rerank_score"] = self.rerank_score
        return meta

    def png(self) -> bytes:
        return png_bytes(self.grid(), self.metadata())


@dataclass
class Interpolation:
    """One walk of F frames from (prompt_a, seed_a) to (prompt_b, seed_b)."""

    checkpoint: str
    step: int
    prompts: tuple[str, str]
    seeds: tuple[int, int]
    frames: np.ndarray  # uint8 [F, R, R, 3]
    realism: np.ndarray  # [F]
    match: np.ndarray  # [F]
    truncation: float
    warnings: list[str] = field(default_factory=list)

    def strip(self) -> Image.Image:
        return grid_image(self.frames, 1, len(self.frames))

    def metadata(self) -> dict:
        return {"prompts": list(self.prompts), "seeds": list(self.seeds), "frames": len(self.frames),
                "truncation": self.truncation, "checkpoint": self.checkpoint, "step": self.step}
