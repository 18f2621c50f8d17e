"""A finite in-memory set of images, each with one or more captions.

`emoji` and `folder` datasets load into this. It supplies no extras: the training hooks keep
the defaults of `TrainingData`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from .base import TrainingData


@dataclass
class CaptionedImages(TrainingData):
    name: str  # dataset name recorded in checkpoints ("emoji", "folder:<path>")
    images: np.ndarray  # uint8 [N, R, R, 3], RGB on white
    captions: list[str]  # unique captions
    image_captions: list[list[int]]  # per image: indices into `captions` (at least one)
    info: dict = field(default_factory=dict)  # licence/attribution/source, recorded in configs

    def __post_init__(self) -> None:
        if len(self.images) != len(self.image_captions):
            raise ValueError("images and image_captions differ in length")
        if len(self.images) == 0:
            raise ValueError(f"dataset {self.name!r} has no usable images")

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.images)

    def describe(self) -> dict:
        return {"name": self.name, "num_images": len(self), "num_captions": len(self.captions), **self.info}

    def sample(self, batch_size: int, rng: random.Random, group: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Random images with one of their captions each: uint8 [B, R, R, 3], int64 [B]."""
        if group != 1:
            raise ValueError(f"{self.name} has a fixed image list: it cannot draw a caption afresh in groups")
        idx = [rng.randrange(len(self)) for _ in range(batch_size)]
        caps = [rng.choice(self.image_captions[i]) for i in idx]
        return self.images[idx], np.asarray(caps, dtype=np.int64)
