import random

import numpy as np
import pytest

from dalle.shapes import world as shapes


def test_palette_and_cells_are_as_specified():
    assert shapes.COLORS["red"] == (220, 30, 30)
    assert shapes.COLORS["cyan"] == (20, 190, 210)
    assert len(shapes.CELLS) == 9 and shapes.CELLS["top left"] == pytest.approx((1 / 6, 1 / 6))
    assert shapes.SIZES == {"small": 0.2, "large": 0.4}


@pytest.mark.parametrize("res", [32, 64, 128])
def test_render_places_a_square_exactly(res):
    img = shapes.render([shapes.Shape("blue", "square", "large", "center")], res)
    assert img.shape == (res, res, 3) and img.dtype == np.uint8
    blue = np.all(np.abs(img.astype(int) - shapes.COLORS["blue"]) < 10, axis=-1)
    ys, xs = np.nonzero(blue)
    # a large square fills 0.4 of the canvas around the centre
    assert abs(blue.mean() - 0.16) < 0.03
    assert abs(xs.mean() / res - 0.5) < 0.02 and abs(ys.mean() / res - 0.5) < 0.02
    assert tuple(img[0, 0]) == shapes.BACKGROUND


def test_triangle_points_up_and_circle_is_round():
    tri = shapes.render([shapes.Shape("red", "triangle", "large", "center")], 64)
    mask = np.any(tri < 200, axis=-1)
    rows = mask.sum(1)
    top, bottom = np.nonzero(rows)[0][[0, -1]]
    assert rows[top + 2] < rows[bottom - 2]  # narrow at the top
    circ = shapes.render([shapes.Shape("red", "circle", "large", "center")], 64)
    fill = np.any(circ < 200, axis=-1).mean() / 0.16
    assert abs(fill - np.pi / 4) < 0.06


def test_captions_follow_the_grammar():
    assert shapes.single_caption("red", "circle", "large", "top left") == "a large red circle at the top left"
    assert shapes.single_caption("blue", "square", "small", "center") == "a small blue square in the center"
    assert shapes.pair_caption(("red", "circle"), "left of", ("blue", "square")) == "a red circle left of a blue square"
    assert shapes.pair_caption(("orange", "circle"), "above", ("red", "square")).startswith("an orange")
    assert shapes.count_caption(3, "black", "square") == "three black squares"


def test_sampler_respects_holdout_and_caption_set():
    rng = random.Random(0)
    caps = set(shapes.all_captions())
    held = set(shapes.DEFAULT_HOLDOUT)
    kinds = set()
    for _ in range(2000):
        scene = shapes.sample_scene(rng)
        kinds.add(scene.kind)
        assert scene.caption in caps
        assert not any((s.color, s.shape) in held for s in scene.shapes)
        cells = [s.cell for s in scene.shapes]
        assert len(set(cells)) == len(cells)  # distinct cells
        if scene.kind == "pair":
            assert shapes.relation_holds(cells[0], scene.relation, cells[1])
            assert all(s.size == "small" for s in scene.shapes)
        if scene.kind == "count":
            assert len(scene.shapes) == scene.meta["count"]
        for s in scene.shapes:
            assert abs(s.dx) <= shapes.JITTER and abs(s.dy) <= shapes.JITTER
    assert kinds == {"single", "pair", "count"}
    assert not any("purple triangle" in c or "orange circle" in c or "cyan square" in c for c in caps)


def test_world_sample_is_reproducible():
    world = shapes.ShapesWorld(32)
    a = world.sample(4, random.Random(1))
    b = world.sample(4, random.Random(1))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert world.describe()["holdout"] == [["purple", "triangle"], ["orange", "circle"], ["cyan", "square"]]


def test_near_misses_change_only_what_a_sentence_vector_blurs():
    assert shapes.near_misses("a red circle left of a blue square") == [
        "a red circle right of a blue square", "a blue circle left of a red square"]
    assert shapes.near_misses("an orange circle above a blue square") == [
        "an orange circle below a blue square", "a blue circle above an orange square"]
    assert shapes.near_misses("a red circle below a red square") == ["a red circle above a red square"]
    assert shapes.near_misses("three green triangles") == ["two green triangles"]
    moved = shapes.near_misses("a small red circle at the top left")
    assert len(moved) == 8 and "a small red circle in the center" in moved and "a small red circle at the top" in moved
    assert "a small red circle at the top left" not in moved
    assert shapes.near_misses("a large red circle") == ["a large red square", "a large red triangle"]


def test_world_near_miss_stays_in_its_caption_set():
    world = shapes.ShapesWorld(32)
    rng = random.Random(0)
    idx = np.arange(len(world.captions))
    near = world.near_miss(idx, rng)
    assert (near != idx).all()  # every caption of the world has a near miss that is another caption of it
    for i, j in zip(idx[::37], near[::37]):
        assert world.captions[j] in shapes.near_misses(world.captions[i])
    # a held-out pair is never offered: "a purple square" has only "a purple circle" as a near miss
    k = world.captions.index("a purple square")
    assert {world.captions[j] for j in world.near_miss(np.full(20, k), rng)} == {"a purple circle"}


def test_scene_mix_sets_the_share_of_each_kind():
    """mix (0, 1, 0) draws only pair scenes, (1, 0, 0) only singles; the default mix is recorded."""
    only_pairs = shapes.ShapesWorld(32, mix=(0, 1, 0))
    _, idx = only_pairs.sample(16, random.Random(0))
    assert all(" of " in only_pairs.captions[i] or " above " in only_pairs.captions[i]
               or " below " in only_pairs.captions[i] for i in idx)
    only_singles = shapes.ShapesWorld(32, mix=(1, 0, 0))
    _, idx = only_singles.sample(16, random.Random(0))
    assert all(only_singles.captions[i].split(" ")[0] in ("a", "an") and " of " not in only_singles.captions[i]
               for i in idx)
    assert shapes.ShapesWorld(32).describe()["mix"] == {"single": 0.6, "pair": 0.25, "count": 0.15}


@pytest.mark.parametrize("mix", [(0, 0, 0), (1, -1, 1), (0.5, 0.5)])
def test_scene_mix_refuses_bad_shares(mix):
    with pytest.raises(ValueError, match="three shares"):
        shapes.ShapesWorld(32, mix=mix)


def test_scene_mix_is_only_for_the_shapes_world(tmp_path):
    from dalle.datasets import open_training_data
    assert open_training_data("shapes", 32, {"scene_mix": [0.4, 0.4, 0.2]}).mix == (0.4, 0.4, 0.2)
    with pytest.raises(ValueError, match="--scene-mix is an option of the shapes dataset"):
        open_training_data("emoji", 32, {"scene_mix": [0.4, 0.4, 0.2]}, data_root=tmp_path)


def test_only_placed_single_captions_pin_the_layout():
    pins = shapes.pins_layout
    assert pins("a red circle at the top left") and pins("a small blue square in the center")
    assert not pins("a red circle") and not pins("a large red circle")
    assert not pins("a red circle left of a blue square") and not pins("three red circles")
    world = shapes.ShapesWorld(32)
    pinned = world.pinned(np.arange(len(world.captions)))
    assert pinned.sum() == sum(" at the " in c or c.endswith(" in the center") for c in world.captions) > 0


def test_redraw_keeps_the_caption_and_draws_again_what_it_leaves_open():
    rng = random.Random(3)
    for _ in range(300):
        scene = shapes.sample_scene(rng)
        again = [shapes.redraw(scene, rng) for _ in range(6)]
        for other in again:
            assert (other.caption, other.kind, other.relation) == (scene.caption, scene.kind, scene.relation)
            assert [(s.color, s.shape) for s in other.shapes] == [(s.color, s.shape) for s in scene.shapes]
            assert all(abs(s.dx) <= shapes.JITTER and abs(s.dy) <= shapes.JITTER for s in other.shapes)
            if scene.kind == "single" and shapes.pins_layout(scene.caption):
                assert other.shapes[0].cell == scene.shapes[0].cell
            if scene.kind == "single" and scene.caption.split(" ")[1] in shapes.SIZES:
                assert other.shapes[0].size == scene.shapes[0].size
            if scene.kind == "pair":
                assert shapes.relation_holds(other.shapes[0].cell, scene.relation, other.shapes[1].cell)
            if scene.kind == "count":
                assert len({s.cell for s in other.shapes}) == len(scene.shapes) == scene.meta["count"]
        layouts = {tuple((s.size, s.cell) for s in x.shapes) for x in [scene, *again]}
        jitters = {tuple((s.dx, s.dy) for s in x.shapes) for x in [scene, *again]}
        assert len(jitters) == 7  # the jitter is always drawn again
        if not shapes.pins_layout(scene.caption):
            assert len(layouts) > 1, scene.caption  # pairs, counts and unplaced singles move
        elif scene.caption.split(" ")[1] in shapes.SIZES:
            assert len(layouts) == 1, scene.caption  # size and place both stated: only the jitter moves


def test_world_sample_draws_groups_of_one_caption():
    world = shapes.ShapesWorld(32)
    images, idx = world.sample(12, random.Random(2), group=3)
    assert images.shape == (12, 32, 32, 3)
    groups = idx.reshape(4, 3)
    assert (groups == groups[:, :1]).all() and len(set(groups[:, 0].tolist())) > 1
    assert all(not np.array_equal(images[i], images[i + 1]) for i in range(0, 12, 3))  # new jitter at least
    with pytest.raises(ValueError, match="groups of 5"):
        world.sample(12, random.Random(2), group=5)


def _noise(**coords: float) -> np.ndarray:
    """A zero noise vector [NOISE_DIMS] with the given coordinates set (c3=2.0 sets coordinate 3)."""
    noise = np.zeros(shapes.NOISE_DIMS)
    for name, value in coords.items():
        noise[int(name[1:])] = value
    return noise


def _scene(world: shapes.ShapesWorld, caption: str) -> shapes.Scene:
    return world.scenes[world.captions.index(caption)]


def test_caption_scenes_give_every_caption_once_in_order():
    scenes = shapes.caption_scenes()
    assert [s.caption for s in scenes] == shapes.all_captions()
    assert {s.kind for s in scenes} == set(shapes.KINDS)


def test_seeded_shapes_read_the_open_choices_from_the_noise():
    """Known answers: coordinates 0-8 rank the cells, 9 picks the size, 10-27 are each cell's jitter (x, y; 0 at a
    zero coordinate); every kind of caption takes the best cells it allows; what the caption states is kept."""
    world = shapes.ShapesWorld(32)
    (s,) = shapes.seeded_shapes(_scene(world, "a red circle"), _noise(c2=1.0, c9=0.5))
    assert (s.color, s.shape, s.cell, s.size, s.dx, s.dy) == ("red", "circle", "top right", "large", 0.0, 0.0)
    (s,) = shapes.seeded_shapes(_scene(world, "a small red circle at the bottom"), _noise(c2=1.0, c9=0.5, c10=9.0))
    assert (s.cell, s.size) == ("bottom", "small") and s.dx == 0.0  # the bottom cell's jitter is coordinates 24, 25
    (s,) = shapes.seeded_shapes(_scene(world, "a small red circle at the top left"), _noise(c10=9.0, c11=-9.0))
    assert s.dx == pytest.approx(shapes.JITTER) and s.dy == pytest.approx(-shapes.JITTER)
    counted = shapes.seeded_shapes(_scene(world, "three blue squares"), _noise(c0=3.0, c8=2.0, c4=1.0, c5=0.5))
    assert [x.cell for x in counted] == ["top left", "center", "bottom right"]
    assert {(x.color, x.shape, x.size) for x in counted} == {("blue", "square", "small")}
    a, b = shapes.seeded_shapes(_scene(world, "a red circle above a blue square"), _noise(c0=5.0, c8=4.0))
    assert (a.color, a.cell, b.color, b.cell) == ("red", "top left", "blue", "bottom right")
    a, b = shapes.seeded_shapes(_scene(world, "a red circle below a blue square"), _noise(c0=5.0, c8=4.0))
    assert (a.cell, b.cell) == ("bottom right", "top left")  # the same two cells; the relation says who goes where
    # the two best cells share a row, which "above" cannot use: the best pair across rows
    a, b = shapes.seeded_shapes(_scene(world, "a red circle above a blue square"), _noise(c0=5.0, c1=4.0, c3=1.0))
    assert (a.cell, b.cell) == ("top left", "left")
    with pytest.raises(ValueError, match="noise coordinates"):
        shapes.seeded_shapes(_scene(world, "a red circle"), np.zeros(5))


def test_seeded_shapes_cover_what_the_caption_leaves_open():
    """Over many noise draws: an unplaced single lands in every cell at both sizes, a pair in every allowed pair
    of cells, a count in distinct cells; one noise vector always gives the same shapes."""
    world, rng = shapes.ShapesWorld(32), np.random.default_rng(0)
    draws = rng.standard_normal((3000, shapes.NOISE_DIMS))
    single = {tuple((s.cell, s.size) for s in shapes.seeded_shapes(_scene(world, "a red circle"), n)) for n in draws}
    assert len(single) == 2 * len(shapes.CELL_NAMES)
    pair = _scene(world, "a red circle left of a blue square")
    layouts = [tuple(s.cell for s in shapes.seeded_shapes(pair, n)) for n in draws]
    allowed = {(p, q) for p in shapes.CELL_NAMES for q in shapes.CELL_NAMES if shapes.relation_holds(p, "left of", q)}
    assert set(layouts) == allowed
    counts = [shapes.seeded_shapes(_scene(world, "two red triangles"), n) for n in draws[:200]]
    assert all(len({s.cell for s in c}) == 2 for c in counts)
    assert shapes.seeded_shapes(pair, draws[7]) == shapes.seeded_shapes(pair, draws[7].copy())
    images = world.render_seeded(np.array([world.captions.index("a red circle")] * 2), draws[:2])
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8


def test_pair_layouts_narrow_the_cells_a_seeded_pair_takes():
    """Known answers: "line" puts a pair at the two ends of one row (left of, right of) or column (above, below),
    the noise picking which; "center" at the ends of the middle one whatever the noise; singles and counts are
    not affected."""
    world, rng = shapes.ShapesWorld(32), np.random.default_rng(0)
    draws = rng.standard_normal((500, shapes.NOISE_DIMS))
    left = _scene(world, "a red circle left of a blue square")
    above = _scene(world, "a red circle above a blue square")
    lines = {tuple(s.cell for s in shapes.seeded_shapes(left, n, "line")) for n in draws}
    assert lines == {("top left", "top right"), ("left", "right"), ("bottom left", "bottom right")}
    lines = {tuple(s.cell for s in shapes.seeded_shapes(above, n, "line")) for n in draws}
    assert lines == {("top left", "bottom left"), ("top", "bottom"), ("top right", "bottom right")}
    a, b = shapes.seeded_shapes(left, _noise(c6=5.0, c8=4.0), "line")  # the bottom row scores best
    assert (a.color, a.cell, b.color, b.cell) == ("red", "bottom left", "blue", "bottom right")
    centered = {tuple(s.cell for s in shapes.seeded_shapes(left, n, "center")) for n in draws}
    assert centered == {("left", "right")}
    below = _scene(world, "a red circle below a blue square")
    assert [s.cell for s in shapes.seeded_shapes(below, draws[0], "center")] == ["bottom", "top"]
    single, count = _scene(world, "a red circle"), _scene(world, "three blue squares")
    for n in draws[:20]:
        assert shapes.seeded_shapes(single, n, "center") == shapes.seeded_shapes(single, n)
        assert shapes.seeded_shapes(count, n, "center") == shapes.seeded_shapes(count, n)
    with pytest.raises(ValueError, match="pair_layout"):
        shapes.seeded_shapes(left, draws[0], "diagonal")
    idx = np.array([world.captions.index(left.caption)] * 2)
    images = world.render_seeded(idx, draws[:2], "center")
    assert images.shape == (2, 32, 32, 3) and (images[0] != images[1]).any()  # the jitter still moves
