"""The analytic shapes checker: right on every real render, wrong images caught, captions parsed, judgements
summarised. Fast enough to be the test selection of the checker's mutation run (docs/testing.md)."""

import random

import numpy as np
import pytest

from dalle.data.shapes import SIZES, Shape, render, sample_scene, single_caption
from dalle.evaluation import shapes_checker as sc


@pytest.mark.parametrize("resolution", [64, 32])
def test_checker_on_real_renders(resolution):
    scenes = sc.seen_scenes(300, seed=11) + sc.heldout_scenes(60, seed=11)
    kinds = {s.kind for s in scenes}
    assert kinds == {"single", "pair", "count"}
    judgements = {k: [] for k in kinds}
    for s in scenes:
        judgements[s.kind].append(sc.check(render(s.shapes, resolution), s.caption))
    for kind, js in judgements.items():
        summary = sc.summarize(js)
        for key in sc.CHECK_KEYS:
            if summary[key]["n"]:
                assert summary[key]["accuracy"] >= 0.99, (resolution, kind, key, summary[key])


def test_checker_every_cell_size_shape_including_clipped_corners():
    rng = random.Random(3)
    for shape in ("circle", "square", "triangle"):
        for size in SIZES:
            for cell in sc.CELL_NAMES:
                s = Shape("black", shape, size, cell, rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03))
                (obj,) = sc.detect_objects(render([s], 64))
                assert (obj.color, obj.shape, obj.size, obj.cell) == ("black", shape, size, cell)


def test_checker_catches_wrong_images():
    img = render([Shape("red", "circle", "large", "top left")], 64)
    assert sc.check(img, "a large red circle at the top left")["exact"]
    wrong = sc.check(img, "a small blue square at the bottom right")
    assert not any(wrong[k] for k in ("colour_shape", "position", "size"))
    assert sc.check(img, "a red triangle")["colour_shape"] is False
    blank = np.full((64, 64, 3), 255, np.uint8)
    assert sc.check(blank, "two red circles") == {**dict.fromkeys(sc.CHECK_KEYS), "colour_shape": False,
                                                   "count": False, "exact": False}
    pair = render([Shape("red", "circle", "small", "left"), Shape("blue", "square", "small", "right")], 64)
    assert sc.check(pair, "a red circle left of a blue square")["relation"] is True
    assert sc.check(pair, "a red circle right of a blue square")["relation"] is False
    noisy = np.clip(img.astype(int) + np.random.default_rng(0).integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
    assert sc.check(noisy, "a large red circle at the top left")["exact"]


def test_parse_caption_round_trip():
    rng = random.Random(0)
    for _ in range(200):
        scene = sample_scene(rng)
        spec = sc.parse_caption(scene.caption)
        assert spec.kind == scene.kind
    spec = sc.parse_caption(single_caption("purple", "triangle", "small", "center"))
    assert (spec.objects, spec.size, spec.cell) == ([("purple", "triangle")], "small", "center")
    with pytest.raises(ValueError):
        sc.parse_caption("a dog on a skateboard")


def test_summarize_averages_where_a_judgement_applies():
    js = [{**dict.fromkeys(sc.CHECK_KEYS), "colour_shape": True, "position": True},
          {**dict.fromkeys(sc.CHECK_KEYS), "colour_shape": False, "position": None},
          {**dict.fromkeys(sc.CHECK_KEYS), "colour_shape": True, "position": False},
          {**dict.fromkeys(sc.CHECK_KEYS), "colour_shape": True}]
    s = sc.summarize(js)
    assert s["n"] == 4
    assert s["colour_shape"] == {"accuracy": 0.75, "n": 4}
    assert s["position"] == {"accuracy": 0.5, "n": 2}  # None: the caption did not ask
    assert s["relation"] == {"accuracy": None, "n": 0}


def test_seen_evaluation_scenes_are_not_the_training_stream():
    """The "seen" evaluation scenes must not be the scenes a training run with seed 0 draws first."""
    evaluation = sc.seen_scenes(200, seed=0)
    training_rng = random.Random(0)  # what Trainer(seed=0) on rank 0 uses for its data stream
    training = [sample_scene(training_rng) for _ in range(200)]
    same = sum(a.caption == b.caption and a.shapes == b.shapes for a, b in zip(evaluation, training))
    assert same == 0
    assert sc.seen_scenes(200, seed=0)[0].shapes == evaluation[0].shapes  # still a fixed, reproducible set
