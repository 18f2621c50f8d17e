"""The shapes world as training data: its own options, and the extras only a procedural world can give.

A rendered world knows more about each caption than a folder of images does: which captions pin
the whole image, each caption's near misses, and how to draw a caption again with what it leaves
open read from a noise vector. `ShapesTraining` hands these to the trainer through the hooks of
`dalle/data/base.py`; the trainer never names the world.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
import torch

from ..config import opt
from ..data.base import TrainingData
from ..images import uint8_to_tensor
from .world import DEFAULT_HOLDOUT, DEFAULT_MIX, NOISE_DIMS, PAIR_LAYOUTS, ShapesWorld

PREVIEW = ["a large red circle at the top left", "a small blue square in the center",
           "a yellow triangle at the bottom right", "a green circle left of a black square",
           "two red triangles", "three blue circles", "a large purple triangle in the center",
           "a small orange circle at the top"]


@dataclass
class ShapesOptions:
    """Training options of the shapes world. Each is a `train` flag of the same name."""

    scene_mix: list[float] = opt([], (
        "shares of single, pair, count scenes ([] = 0.6 0.25 0.15); pairs are the hard part"))
    recon_open: float = opt(1.0, (
        "after the warm-up, weight of the reconstruction of captions that leave the layout open (pairs, counts, "
        "unplaced singles), relative to placed ones; 0: the GAN alone draws them, not the mean of their layouts"))
    seeded_layouts: bool = opt(False, (
        "reconstruct each caption as drawn with what it leaves open read from G's z (`seeded_shapes`): one right "
        "image per seed, so seeds keep the data's layouts"))
    seeded_pairs: bool = opt(True, (
        "with seeded_layouts, pairs too; False: pairs keep their real image (and recon_open), whose two colours "
        "stay apart"))
    pair_layout: str = opt("any", (
        "seeded pairs' cells: 'any' where the relation holds, 'line' a row's or column's two ends (z picks the "
        "line), 'center' the middle line's ends (one layout per caption: each colour has one place)"))
    spread_pairs: float = opt(1.0, (
        "the spread game's weight on pair captions, relative to the others: varying a pair costs its objects' "
        "colours and shapes"))

    def check(self, recon: str, recon_candidates: int, z_dim: int) -> None:
        """Refuse options that contradict each other or the run's reconstruction settings."""
        if self.seeded_layouts and (recon != "prior" or recon_candidates > 1):
            raise ValueError("--seeded-layouts reconstructs from the prior z it reads the layout from: it needs "
                             "--recon prior and one candidate")
        if self.pair_layout not in PAIR_LAYOUTS:
            raise ValueError(f"pair_layout must be one of {', '.join(PAIR_LAYOUTS)}; got {self.pair_layout!r}")
        if self.pair_layout != "any" and not (self.seeded_layouts and self.seeded_pairs):
            raise ValueError("--pair-layout narrows the seeded pairs' cells: it needs --seeded-layouts true "
                             "--seeded-pairs true")
        if self.seeded_layouts and z_dim < NOISE_DIMS:
            raise ValueError(f"--seeded-layouts reads {NOISE_DIMS} coordinates of z; z_dim is {z_dim}")
        if self.recon_open < 0:
            raise ValueError(f"recon_open is a weight, at least 0; got {self.recon_open}")
        if self.spread_pairs < 0:
            raise ValueError(f"spread_pairs is a weight, at least 0; got {self.spread_pairs}")


class ShapesTraining(ShapesWorld, TrainingData):
    """The shapes world's training stream with its options: near misses, groups, seeded targets."""

    supplies_negatives = True
    supplies_groups = True
    supplies_wrong_images = True  # ShapesWorld.wrong_images: ghosts, missing and extra objects, near misses

    def __init__(self, resolution: int, options: ShapesOptions):
        super().__init__(resolution, DEFAULT_HOLDOUT, tuple(options.scene_mix) or DEFAULT_MIX)
        self.opts = options
        self.pair_captions = torch.tensor([s.kind == "pair" for s in self.scenes])  # [num_captions] bool

    def options(self) -> dict:
        return dataclasses.asdict(self.opts)

    def check(self, recon: str, recon_candidates: int, z_dim: int) -> None:
        self.opts.check(recon, recon_candidates, z_dim)

    def preview_prompts(self, n: int = 8) -> list[str]:
        return PREVIEW[:n]

    def near_misses(self, indices: np.ndarray, rng: random.Random) -> np.ndarray:
        return self.near_miss(indices, rng)

    def _seeded(self, indices: torch.Tensor) -> torch.Tensor:
        """[B] bool: captions whose target is drawn from G's z (--seeded-layouts; pairs with --seeded-pairs)."""
        if not self.opts.seeded_layouts:
            return torch.zeros(len(indices), dtype=torch.bool)
        return torch.ones(len(indices), dtype=torch.bool) if self.opts.seeded_pairs else ~self.pair_captions[indices]

    def recon_targets(self, indices: torch.Tensor, z: torch.Tensor, real: torch.Tensor, warmup: bool,
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Seeded captions are drawn as z says (one right image per seed, not the mean of a caption's layouts);
        after the warm-up, captions that leave their layout open and are not seeded weigh `recon_open`."""
        seeded = self._seeded(indices).to(real.device)
        weight = None
        if self.opts.recon_open != 1.0 and not warmup:
            one_answer = (torch.from_numpy(self.pinned(indices.numpy())).to(real.device) | seeded).float()
            weight = one_answer + (1 - one_answer) * self.opts.recon_open
        if not seeded.any():
            return real, weight
        drawn = self.render_seeded(indices.numpy(), z[:, :NOISE_DIMS].cpu().numpy(), self.opts.pair_layout)
        drawn = uint8_to_tensor(drawn, real.device).contiguous(memory_format=torch.channels_last)
        return torch.where(seeded[:, None, None, None], drawn, real), weight

    def group_weights(self, indices: torch.Tensor) -> torch.Tensor | None:
        if self.opts.spread_pairs == 1.0:
            return None
        pair = self.pair_captions[indices].float()
        return 1 - pair + pair * self.opts.spread_pairs
