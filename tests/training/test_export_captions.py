"""Each export carries the captions training drew from (captions.json), so the app can tell a prompt far from
everything the checkpoint was trained on, whatever its dataset."""

import dataclasses
import json

import numpy as np
from conftest import TINY_MODEL

from dalle.config import TrainConfig
from dalle.data.captioned import CaptionedImages
from dalle.shapes.world import Shape, render, single_caption
from dalle.training.trainer import Trainer


def test_the_export_writes_the_training_captions(tmp_path):
    specs = [("red", "circle", "large", "top left"), ("blue", "square", "small", "center")]
    images = np.stack([render([Shape(c, s, z, cell)], 32) for c, s, z, cell in specs])
    captions = [single_caption(*spec) for spec in specs]
    data = CaptionedImages("tiny", images, captions, [[0], [1]])
    cfg = TrainConfig(data="tiny", out=str(tmp_path / "run"), batch_size=2, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(tmp_path / "cache"))
    out = Trainer(dataclasses.replace(TINY_MODEL), cfg, data).run(max_steps=1)
    assert json.loads((out / "captions.json").read_text()) == captions
