"""The shapes world's training extras, tested at the hooks the trainer calls (`dalle/data/base.py`):
seeded reconstruction targets, the open captions' weight, the pairs' spread weight, and the checks of
its own options."""

import random

import numpy as np
import pytest
import torch

from dalle.data.captioned import CaptionedImages
from dalle.datasets import open_training_data
from dalle.images import uint8_to_tensor
from dalle.shapes.training import ShapesOptions, ShapesTraining
from dalle.shapes.world import NOISE_DIMS


def _indices(data: ShapesTraining, captions: list[str]) -> torch.Tensor:
    return torch.tensor([data.captions.index(c) for c in captions])


def _blank(n: int) -> torch.Tensor:
    """n blank real images [n, 3, 32, 32]: a target taken from them has no ink."""
    return torch.ones(n, 3, 32, 32)


def test_closed_reconstruction_weighs_only_captions_that_place_their_shape():
    """recon_open=0: after the warm-up, only images whose caption places its shape are reconstructed (0.25: the
    others at a quarter of the weight); during the warm-up every image is, in full (no weight)."""
    data = ShapesTraining(32, ShapesOptions(recon_open=0.0))
    idx = _indices(data, ["a red circle at the top left"] + ["a red circle left of a blue square"] * 3)
    z = torch.randn(4, 16)
    target, weight = data.recon_targets(idx, z, _blank(4), warmup=False)
    assert torch.equal(target, _blank(4)) and weight.tolist() == [1.0, 0.0, 0.0, 0.0]
    data.opts.recon_open = 0.25
    assert data.recon_targets(idx, z, _blank(4), warmup=False)[1].tolist() == [1.0, 0.25, 0.25, 0.25]
    assert data.recon_targets(idx, z, _blank(4), warmup=True)[1] is None


@pytest.mark.parametrize("pair_layout", ["any", "center"])
def test_seeded_layouts_draw_each_caption_as_its_z_says(pair_layout):
    """--seeded-layouts: the target is the caption drawn with what it leaves open read from G's own z
    (`render_seeded`, pairs within --pair-layout), not the real image; one caption, two seeds, two drawings."""
    data = ShapesTraining(32, ShapesOptions(seeded_layouts=True, pair_layout=pair_layout))
    captions = ["a red circle", "three blue squares", "a green triangle above a black circle", "a red circle"]
    idx = _indices(data, captions)
    z = torch.randn(4, NOISE_DIMS + 3, generator=torch.Generator().manual_seed(0))
    target, weight = data.recon_targets(idx, z, _blank(4), warmup=True)
    want = uint8_to_tensor(data.render_seeded(idx.numpy(), z[:, :NOISE_DIMS].numpy(), pair_layout))
    assert weight is None and torch.equal(target, want)
    assert (target < 0.9).any(dim=1).flatten(1).any(1).all()  # every target has ink: none is the blank image
    assert not torch.equal(target[0], target[3])


def test_seeded_layouts_can_leave_the_pairs_to_their_real_images():
    """seeded_pairs=False: a pair's target is its real image and, after the warm-up, it weighs recon_open; the
    other captions are drawn from z and, with one right image per seed, keep the full weight."""
    data = ShapesTraining(32, ShapesOptions(seeded_layouts=True, seeded_pairs=False, recon_open=0.0))
    idx = _indices(data, ["a red circle", "a green triangle above a black circle", "three blue squares",
                          "a red circle at the top left"])
    z = torch.randn(4, NOISE_DIMS)
    target, weight = data.recon_targets(idx, z, _blank(4), warmup=True)
    want = uint8_to_tensor(data.render_seeded(idx.numpy(), z.numpy()))
    assert weight is None and torch.equal(target[1], _blank(1)[0])
    assert all(torch.equal(target[i], want[i]) for i in (0, 2, 3))
    assert data.recon_targets(idx, z, _blank(4), warmup=False)[1].tolist() == [1.0, 0.0, 1.0, 1.0]


def test_spread_pairs_weighs_the_groups_of_pair_captions():
    data = ShapesTraining(32, ShapesOptions(spread_pairs=0.25))
    idx = _indices(data, ["a red circle left of a blue square", "a red circle at the top left"])
    assert data.group_weights(idx).tolist() == [0.25, 1.0]
    assert ShapesTraining(32, ShapesOptions()).group_weights(idx) is None  # at 1 the game is as without it


def test_near_misses_and_groups_are_the_worlds():
    data = ShapesTraining(32, ShapesOptions())
    assert data.supplies_negatives and data.supplies_groups
    idx = np.array([data.captions.index("a red circle left of a blue square")] * 8)
    near = data.near_misses(idx, random.Random(0))
    assert all(j in data._near[i] and j != i for i, j in zip(idx, near))
    images, drawn = data.sample(8, random.Random(0), group=4)
    assert images.shape == (8, 32, 32, 3) and len(set(drawn[:4])) == 1 and len(set(drawn[4:])) == 1


@pytest.mark.parametrize("options, settings, message", [
    (dict(seeded_layouts=True), dict(recon="posterior"), "recon prior"),
    (dict(seeded_layouts=True), dict(recon_candidates=4), "one candidate"),
    (dict(seeded_layouts=True), dict(z_dim=16), "z_dim"),
    (dict(seeded_layouts=True, pair_layout="center", seeded_pairs=False), {}, "seeded-pairs true"),
    (dict(seeded_layouts=True, pair_layout="diagonal"), {}, "pair_layout"),
    (dict(recon_open=-0.5), {}, "recon_open"),
    (dict(spread_pairs=-1.0), {}, "spread_pairs"),
])
def test_shapes_options_are_checked(options, settings, message):
    run = {"recon": "prior", "recon_candidates": 1, "z_dim": 64, **settings}
    with pytest.raises(ValueError, match=message):
        ShapesTraining(32, ShapesOptions(**options)).check(**run)


def test_the_shapes_options_are_refused_for_other_data(tmp_path):
    with pytest.raises(ValueError, match="--seeded-layouts is an option of the shapes dataset"):
        open_training_data("emoji", 32, {"seeded_layouts": True}, data_root=tmp_path)
    assert isinstance(open_training_data("shapes", 32, {"seeded_layouts": True}), ShapesTraining)


def test_captioned_images_supply_no_extras():
    data = CaptionedImages("tiny", np.zeros((2, 32, 32, 3), np.uint8), ["a", "b"], [[0], [1]])
    assert not data.supplies_negatives and not data.supplies_groups and data.options() == {}
    real = _blank(2)
    target, weight = data.recon_targets(torch.tensor([0, 1]), torch.randn(2, 8), real, warmup=False)
    assert target is real and weight is None and data.pinned(np.array([0, 1])).tolist() == [False, False]
    with pytest.raises(ValueError, match="groups"):
        data.sample(4, random.Random(0), group=2)
