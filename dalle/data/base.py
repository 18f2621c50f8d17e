"""What training asks of a dataset: a batch, and the optional extras a dataset can supply.

The trainer names no dataset. It calls these hooks, and a dataset that knows more about its
captions overrides them (the shapes world in `dalle/shapes/training.py`); the defaults describe a
plain set of captioned images. A hook that needs data support is announced by a capability
flag (`supplies_negatives`, `supplies_groups`, `supplies_wrong_images`), and the trainer checks the flag, not
a name.
"""

from __future__ import annotations

import random

import numpy as np
import torch


class TrainingData:
    """A source of (image, caption) batches for training. Subclasses set `captions` and `sample`."""

    captions: list[str]  # every caption training may draw; batches name them by index
    supplies_negatives = False  # near_misses() gives each caption a hard negative
    supplies_groups = False  # sample(group=k) draws each caption k times in a row, each time afresh
    supplies_wrong_images = False  # wrong_images() draws, for a caption, an image that almost shows it but does not

    def sample(self, batch_size: int, rng: random.Random, group: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Real images uint8 [B, R, R, 3] and their caption indices int64 [B]."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What a checkpoint's config.json records about the data (name, size, licence)."""
        raise NotImplementedError

    def options(self) -> dict:
        """This dataset's own training options, recorded beside the run's settings ({} for none)."""
        return {}

    def check(self, recon: str, recon_candidates: int, z_dim: int) -> None:
        """Refuse, with a clear message, options of this dataset that the run's settings cannot serve."""

    def preview_prompts(self, n: int = 8) -> list[str]:
        """Prompts for the sample grids written during training: n captions spread over the list."""
        step = max(1, len(self.captions) // n)
        return self.captions[::step][:n]

    def near_misses(self, indices: np.ndarray, rng: random.Random) -> np.ndarray:
        """For each caption index [B], a caption that differs from it in one detail [B] (supplies_negatives)."""
        raise NotImplementedError(f"{type(self).__name__} supplies no near misses")

    def wrong_images(self, indices: np.ndarray, rng: random.Random) -> np.ndarray:
        """For each caption index [B], an image uint8 [B, R, R, 3] that comes close to showing it and does not
        (supplies_wrong_images): the text-match judge's image-side negatives (`dalle/judge.py`)."""
        raise NotImplementedError(f"{type(self).__name__} draws no wrong images")

    def pinned(self, indices: np.ndarray) -> np.ndarray:
        """[B] bool: captions that fix the whole image, so that there is one right answer up to jitter."""
        return np.zeros(len(indices), dtype=bool)

    def recon_targets(self, indices: torch.Tensor, z: torch.Tensor, real: torch.Tensor, warmup: bool,
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What G reconstructs from noise z [B, z_dim] for captions `indices` [B]: target images [B, 3, R, R]
        (by default the real images `real`) and a per-image weight [B] of the reconstruction term (None: 1)."""
        return real, None

    def group_weights(self, indices: torch.Tensor) -> torch.Tensor | None:
        """Weight of each group in the group-spread game, given the first caption index of each group [G]
        (None: all 1)."""
        return None
