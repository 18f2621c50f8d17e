"""The analytic shapes checker: right on every real render, wrong images caught, captions parsed, judgements
summarised. Fast enough to be the test selection of the checker's mutation run (docs/testing.md)."""

import random

import numpy as np
import pytest

from dalle.shapes import checker as sc
from dalle.shapes.world import SIZES, Shape, render, sample_scene, single_caption


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


# ---------------------------------------------------------------------- measurements with known answers
RED, BLUE = np.array(sc.COLORS["red"], np.uint8), np.array(sc.COLORS["blue"], np.uint8)


def canvas(res: int = 32) -> np.ndarray:
    return np.full((res, res, 3), 255, np.uint8)


def test_measurements_of_a_solid_rectangle_next_to_another_colour():
    img = canvas()
    img[4:12, 10:22] = RED  # 8 rows x 12 columns
    img[4:12, 22:26] = BLUE  # touching on the right: its pixels are not the red object's
    red, blue = sorted(sc.detect_objects(img), key=lambda o: o.color != "red")
    assert (red.color, red.shape, red.cell) == ("red", "square", "top")
    assert red.area == pytest.approx(96 / 1024) and red.extent == pytest.approx(12 / 32)
    assert (red.cx, red.cy) == (pytest.approx(16 / 32), pytest.approx(8 / 32))
    assert red.fill == pytest.approx(1.0) and red.skew == pytest.approx(0.0, abs=1e-9)
    assert blue.area == pytest.approx(32 / 1024) and blue.cx == pytest.approx(24 / 32)
    assert [o.color for o in sc.detect_objects(img)] == ["red", "blue"]  # largest first
    assert red.to_dict() == {"color": "red", "shape": "square", "size": "large", "cell": "top", "cx": 0.5,
                             "cy": 0.25, "area": 0.0938, "extent": 0.375, "fill": 1.0, "skew": 0.0}


def test_skew_of_a_two_row_shape_and_a_flat_line():
    img = canvas()
    img[10, 14:16] = RED  # 2 pixels above 6: mass weights 1 : 3 on two rows
    img[11, 12:18] = RED
    (obj,) = sc.detect_objects(img)
    # deviations -0.75 and +0.25 rows: variance 0.1875, third moment -0.09375 -> skew -0.09375 / 0.1875**1.5
    assert obj.skew == pytest.approx(-2 / 3 ** 0.5)
    line = canvas()
    line[20, 4:16] = BLUE  # one row: zero variance, skew defined as 0
    (obj,) = sc.detect_objects(line)
    assert obj.skew == 0.0 and obj.fill == pytest.approx(1.0)


def test_corner_pixels_connect_and_edges_are_kept():
    img = canvas()
    img[0:4, 0:4] = RED  # at the canvas corner
    img[4:8, 4:8] = RED  # touching the first block at one corner only: 8-connected, one object
    (obj,) = sc.detect_objects(img)
    assert obj.area == pytest.approx(32 / 1024) and (obj.cx, obj.cy) == (pytest.approx(4 / 32), pytest.approx(4 / 32))


def test_specks_below_min_area_are_ignored_and_do_not_hide_later_objects():
    img = canvas()
    img[1, 1:3] = RED  # 2 pixels: noise, found first in scan order
    img[10:18, 10:18] = RED
    (obj,) = sc.detect_objects(img)
    assert obj.area == pytest.approx(64 / 1024)
    exactly = canvas(20)
    exactly[5, 5:7] = RED  # 2 pixels of 400 = 0.005
    assert len(sc.detect_objects(exactly, min_area=0.005)) == 1  # at the limit: kept
    assert sc.detect_objects(exactly, min_area=0.0051) == []


def test_size_split_and_threshold_are_used():
    img = canvas(20)
    img[2:9, 2:9] = BLUE  # 7 of 20 pixels: extent 0.35, above the 0.3 split between small (0.2) and large (0.4)
    assert sc.detect_objects(img)[0].size == "large"
    img = canvas(20)
    img[2:7, 2:7] = BLUE  # 0.25: small
    assert sc.detect_objects(img)[0].size == "small"
    img[2:7, 2:7] = (BLUE.astype(int) + 40).clip(0, 255)  # 40 * sqrt(3) ~ 69 RGB units from blue
    assert sc.detect_objects(img) == [] and len(sc.detect_objects(img, threshold=80)) == 1


def test_detect_objects_refuses_other_shapes():
    for bad in (np.zeros((32, 31, 3), np.uint8), np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32), np.uint8)):
        with pytest.raises(ValueError, match=r"expected a square RGB image \[R, R, 3\]"):
            sc.detect_objects(bad)


def test_colour_label_threshold_is_strict():
    white = len(sc.COLOR_NAMES)
    at = np.array([[[255 - 60, 255, 255]]], np.uint8)  # exactly COLOR_THRESHOLD from white
    inside = np.array([[[255 - 59, 255, 255]]], np.uint8)
    assert sc.color_labels(at)[0, 0] == -1 and sc.color_labels(inside)[0, 0] == white


def test_cells_clamp_at_the_canvas_edge():
    assert sc.cell_of(1.0, 1.0) == "bottom right" and sc.cell_of(1.0, 0.0) == "top right"
    assert sc.cell_of(-0.01, 0.5) == "left" and sc.cell_of(0.5, 1.2) == "bottom"


def test_shape_prototypes_weigh_fill_and_skew_by_their_scales():
    # (fill, skew) = (0.7, -0.2): circle ((0.7-0.785)/0.15)^2 + (0.2/0.2)^2 = 1.32;
    # triangle (0.2/0.15)^2 + (0.366/0.2)^2 = 5.13; square (0.3/0.15)^2 + 1 = 5: circle
    assert sc._classify_shape(0.7, -0.2) == "circle"
    # (0.62, -0.3): circle 1.21 + 2.25 = 3.46; triangle 0.64 + 1.77 = 2.41: triangle (fill alone says circle)
    assert sc._classify_shape(0.62, -0.3) == "triangle"
    # (0.9, 0.0): circle 0.59, square 0.44: square
    assert sc._classify_shape(0.9, 0.0) == "square"
    # (0.5, -0.25): circle 3.61 + 1.56 = 5.17; triangle 0 + 2.50: triangle (skew alone says circle)
    assert sc._classify_shape(0.5, -0.25) == "triangle"
    # (0.6, -0.253): circle 1.52 + 1.60 = 3.12; triangle 0.44 + 2.45 = 2.89: triangle, by the fill scale 0.15
    assert sc._classify_shape(0.6, -0.253) == "triangle"


def coverage(pixel, colour) -> float:
    """How far a pixel lies from white toward a palette colour, as the checker measures it (unclipped)."""
    v = 255.0 - np.asarray(colour, float)
    return float((255.0 - np.asarray(pixel, float)) @ v / (v @ v))


def test_coverage_is_clipped_to_one_and_reaches_diagonal_neighbours():
    img = canvas()
    dark = (200, 0, 0)  # within COLOR_THRESHOLD of red, but darker: unclipped coverage above 1
    assert coverage(dark, sc.COLORS["red"]) > 1.1
    img[8:16, 8:16] = dark
    (obj,) = sc.detect_objects(img)
    assert obj.area * 32**2 == pytest.approx(64.0)  # each pixel counts at most once
    faint = (240, 150, 150)  # unlabelled (far from red and from white), partly red
    img[16, 16] = faint  # touches the block at its corner only
    (obj,) = sc.detect_objects(img)
    assert obj.area * 32**2 == pytest.approx(64.0 + coverage(faint, sc.COLORS["red"]))


# ---------------------------------------------------------------------- judging, table of known answers
def obj(color: str, shape: str, size: str = "small", cell: str = "center") -> sc.DetectedObject:
    return sc.DetectedObject(color, shape, size, cell, 0.5, 0.5, 0.04, 0.2, 1.0, 0.0)


T, F, N = True, False, None
KEYS = ("colour_shape", "position", "size", "relation", "count", "colour_shape_position", "exact")
JUDGE_CASES = [
    ("a large red circle at the top left", [obj("red", "circle", "large", "top left")], (T, T, T, N, T, T, T)),
    ("a large red circle at the top left", [obj("red", "circle", "small", "top left")], (T, T, F, N, T, T, F)),
    ("a large red circle at the top left", [obj("red", "circle", "large", "center")], (T, F, T, N, T, F, F)),
    ("a large red circle at the top left", [obj("blue", "circle", "large", "top left")], (F, T, T, N, T, F, F)),
    ("a large red circle at the top left", [obj("red", "circle", "large", "top left"), obj("blue", "square")],
     (T, T, T, N, F, T, F)),
    ("a large red circle at the top left", [], (F, F, F, N, F, F, F)),
    ("a red circle", [obj("red", "circle")], (T, N, N, N, T, N, T)),
    ("a red circle", [obj("red", "square")], (F, N, N, N, T, N, F)),
    ("a red circle left of a blue square", [obj("red", "circle", cell="left"), obj("blue", "square", cell="right")],
     (T, N, N, T, T, N, T)),
    ("a red circle left of a blue square", [obj("red", "circle", cell="right"), obj("blue", "square", cell="left")],
     (T, N, N, F, T, N, F)),
    ("a red circle left of a blue square", [obj("red", "circle", cell="left"), obj("blue", "square", cell="right"),
                                            obj("green", "triangle")], (T, N, N, T, F, N, F)),
    ("a red circle left of a blue square", [obj("red", "circle", cell="left")], (F, N, N, F, F, N, F)),
    ("a red circle left of a blue square", [obj("red", "circle", cell="left"), obj("green", "triangle", cell="right")],
     (F, N, N, F, T, N, F)),
    ("two red circles", [obj("red", "circle"), obj("red", "circle", cell="left")], (T, N, N, N, T, N, T)),
    ("two red circles", [obj("red", "circle")], (T, N, N, N, F, N, F)),
    ("two red circles", [obj("red", "circle"), obj("blue", "circle")], (F, N, N, N, T, N, F)),
    ("two red circles", [], (F, N, N, N, F, N, F)),
]


@pytest.mark.parametrize("caption, objects, expected", JUDGE_CASES)
def test_judge_known_answers(caption, objects, expected):
    assert sc.judge(objects, sc.parse_caption(caption)) == dict(zip(KEYS, expected))


def test_check_takes_a_caption_or_a_parsed_spec():
    img = render([Shape("red", "circle", "large", "top left")], 64)
    spec = sc.parse_caption("a large red circle at the top left")
    assert sc.check(img, spec) == sc.check(img, "a large red circle at the top left") == dict(zip(KEYS, JUDGE_CASES[0][2]))


def test_parse_caption_error_names_the_caption():
    with pytest.raises(ValueError, match="not a shapes-world caption: 'a dog'"):
        sc.parse_caption("a dog")


# ---------------------------------------------------------------------- prompt sets
def test_seen_scenes_respect_the_holdout():
    scenes = sc.seen_scenes(300, seed=2, holdout=(("red", "circle"),))
    assert not any((s.color, s.shape) == ("red", "circle") for scene in scenes for s in scene.shapes)
    default = sc.seen_scenes(300, seed=2)
    assert any((s.color, s.shape) == ("red", "circle") for scene in default for s in scene.shapes)


def test_heldout_scenes_cycle_the_pairs_and_state_size_and_cell():
    holdout = (("purple", "triangle"), ("orange", "circle"))
    scenes = sc.heldout_scenes(6, seed=4, holdout=holdout)
    assert [(s.shapes[0].color, s.shapes[0].shape) for s in scenes] == list(holdout) * 3
    for s in scenes:
        (shape,) = s.shapes
        assert s.kind == "single" and s.caption == single_caption(shape.color, shape.shape, shape.size, shape.cell)
        assert abs(shape.dx) <= sc.JITTER and abs(shape.dy) <= sc.JITTER and (shape.dx, shape.dy) != (0, 0)
        assert sc.check(render(s.shapes, 64), s.caption)["exact"]
    many = [s.shapes[0] for s in sc.heldout_scenes(40, seed=4, holdout=holdout)]
    assert min(s.dx for s in many) < 0 < max(s.dx for s in many) and min(s.dy for s in many) < 0 < max(s.dy for s in many)
    assert len({(s.dx, s.dy) for s in many}) == 40 and any(s.dx != s.dy for s in many)
    assert [s.caption for s in sc.heldout_scenes(6, seed=4, holdout=holdout)] == [s.caption for s in scenes]
    assert [s.shapes for s in sc.heldout_scenes(6, seed=5, holdout=holdout)] != [s.shapes for s in scenes]
    assert len({s.caption for s in sc.heldout_scenes(40, seed=4, holdout=holdout)}) > 10  # sizes and cells vary


@pytest.mark.parametrize("caption", ["a small red circle at the top left", "a large blue square", "a green triangle",
                                     "a red circle left of a blue square", "a yellow square above a black circle",
                                     "two red circles", "three blue triangles"])
def test_scene_for_spec_fits_its_caption(caption):
    spec = sc.parse_caption(caption)
    rng = random.Random(0)
    scenes = [sc.scene_for_spec(spec, rng) for _ in range(12)]
    for shapes in scenes:
        assert sc.check(render(shapes, 64), caption)["exact"], (caption, shapes)
        assert all(abs(s.dx) <= sc.JITTER and abs(s.dy) <= sc.JITTER for s in shapes)
    every = [s for shapes in scenes for s in shapes]
    for attr in ("dx", "dy"):  # jitter drawn for every shape, both signs
        values = [getattr(s, attr) for s in every]
        assert min(values) < 0 < max(values) and all(v != 0 for v in values)
    if spec.kind == "single":
        assert all(len(s) == 1 and (s[0].color, s[0].shape) == spec.objects[0] for s in scenes)
        for attr, stated in (("size", spec.size), ("cell", spec.cell)):
            values = {getattr(s[0], attr) for s in scenes}
            assert values == {stated} if stated else len(values) > 1  # unstated: drawn
    elif spec.kind == "pair":
        assert all([(a.color, a.shape), (b.color, b.shape)] == spec.objects and a.size == b.size == "small"
                   for a, b in scenes)
        assert len({(a.cell, b.cell) for a, b in scenes}) > 1
    else:
        assert all(len(s) == spec.count and len({x.cell for x in s}) == spec.count for s in scenes)
        assert all(x.size == "small" for s in scenes for x in s)


def test_ghosts_count_faint_blobs_and_extra_objects():
    """A real render has no ghost; a faint grey blob the palette does not match is one; so is a third object
    under a pair caption."""
    from dalle.shapes.world import Shape, render

    pair = [Shape("red", "circle", "small", "left"), Shape("blue", "square", "small", "right")]
    caption = "a red circle left of a blue square"
    image = render(pair, 32)
    assert sc.ghosts(image, caption) == 0
    faint = image.copy()
    faint[2:7, 13:18] = 200  # a light grey patch at the top: ink, but no palette colour
    assert sc.ghosts(faint, caption) == 1
    extra = render(pair + [Shape("green", "triangle", "small", "bottom")], 32)
    assert sc.check(extra, caption)["exact"] is False and sc.ghosts(extra, caption) == 1
