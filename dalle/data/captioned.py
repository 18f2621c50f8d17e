"""A finite in-memory set of images, each with one or more captions.

`emoji` and `folder` datasets load into this. Its one extra is `wrong_images` for the text-match judge:
an image that shares a word with the caption but does not carry it ("red heart" -> a red apple or a blue
heart). The other training hooks keep the defaults of `TrainingData`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import numpy as np

from .base import TrainingData


COMMON_WORD_SHARE = 0.2  # a word on more than this share of the images ("emoji", "style") names no near miss


def caption_words(caption: str) -> set[str]:
    """The words of a caption, lower-cased: "Red heart, google style" -> {"red", "heart", "google", "style"}."""
    return set(re.findall(r"[a-z0-9]+", caption.lower()))


@dataclass
class CaptionedImages(TrainingData):
    name: str  # dataset name recorded in checkpoints ("emoji", "folder:<path>")
    images: np.ndarray  # uint8 [N, R, R, 3], RGB on white
    captions: list[str]  # unique captions
    image_captions: list[list[int]]  # per image: indices into `captions` (at least one)
    info: dict = field(default_factory=dict)  # licence/attribution/source, recorded in configs
    supplies_wrong_images = True  # wrong_images: an image sharing a word with the caption, not carrying it
    _by_word: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)  # built on first use

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

    def wrong_images(self, indices: np.ndarray, rng: random.Random) -> np.ndarray:
        """For each caption index [B], an image that does not carry that caption but shares one of its words
        (not one on more than COMMON_WORD_SHARE of the images): uint8 [B, R, R, 3]. A caption whose words
        name no such image gets any image that does not carry it."""
        if not self._by_word:
            images_of: dict[str, set[int]] = {}
            for i, caps in enumerate(self.image_captions):
                for word in set().union(*(caption_words(self.captions[c]) for c in caps)):
                    images_of.setdefault(word, set()).add(i)
            limit = COMMON_WORD_SHARE * len(self)
            self._by_word.update({w: s for w, s in images_of.items() if len(s) <= limit})
        out = []
        for c in indices:
            near: set[int] = set().union(*(self._by_word.get(w, ()) for w in caption_words(self.captions[c])))
            pool = sorted(i for i in near if c not in self.image_captions[i])
            if not pool:
                pool = [i for i, caps in enumerate(self.image_captions) if c not in caps]
            if not pool:
                raise ValueError(f"every image carries the caption {self.captions[c]!r}: none is wrong for it")
            out.append(self.images[pool[rng.randrange(len(pool))]])
        return np.stack(out)
