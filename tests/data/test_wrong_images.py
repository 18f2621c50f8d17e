"""A captioned dataset's wrong images, the text-match judge's image-side negatives: for a caption, an image that
shares one of its words but does not carry it."""

import random

import numpy as np
import pytest

from dalle.data.captioned import CaptionedImages, caption_words


def _data(captions_per_image: list[list[str]]) -> CaptionedImages:
    captions = list(dict.fromkeys(c for caps in captions_per_image for c in caps))
    images = np.stack([np.full((8, 8, 3), i, dtype=np.uint8) for i in range(len(captions_per_image))])
    return CaptionedImages("tiny", images, captions, [[captions.index(c) for c in caps] for caps in captions_per_image])


def test_caption_words():
    assert caption_words("Red heart, google style") == {"red", "heart", "google", "style"}


def test_a_wrong_image_shares_a_word_and_never_carries_the_caption():
    data = _data([["red heart"], ["red heart", "love"], ["blue heart"], ["red apple"], ["rocket"], ["pizza"],
                  ["train"], ["tent"], ["bell"], ["key"], ["lock"], ["moon"], ["sun"], ["star"], ["tree"]])
    assert data.supplies_wrong_images
    rng = random.Random(0)
    red_heart = np.array([data.captions.index("red heart")] * 200)
    picked = [int(img[0, 0, 0]) for img in data.wrong_images(red_heart, rng)]
    assert set(picked) == {2, 3}  # blue heart and red apple: each shares a word; images 0 and 1 carry it
    love = np.array([data.captions.index("love")] * 50)
    picked = {int(img[0, 0, 0]) for img in data.wrong_images(love, rng)}
    assert 1 not in picked and len(picked) > 3  # no image shares "love": any image without the caption


def test_a_caption_every_image_carries_has_no_wrong_image():
    data = _data([["a cat"], ["a cat"]])
    with pytest.raises(ValueError, match="every image carries"):
        data.wrong_images(np.array([0]), random.Random(0))
