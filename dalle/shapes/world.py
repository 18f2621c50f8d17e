"""The `shapes` world: a procedural, infinite, captioned dataset.

Everything here is exact because the evaluation checks generated images
analytically against the same definitions (palette, cells, box sizes).

A scene is a list of `Shape`s plus a caption. `render` draws a scene at any
resolution (positions are canvas fractions), `sample_scene` draws a random
scene for one of three caption kinds (single, pair, count), and
`all_captions` enumerates every caption the sampler can produce, so text
embeddings can be precomputed once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 20),
    "purple": (140, 50, 180),
    "orange": (250, 130, 20),
    "cyan": (20, 190, 210),
    "black": (30, 30, 30),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.2, "large": 0.4}
# 3x3 cell centres, row-major; names are the ones captions use.
CELLS: dict[str, tuple[float, float]] = {
    "top left": (1 / 6, 1 / 6), "top": (3 / 6, 1 / 6), "top right": (5 / 6, 1 / 6),
    "left": (1 / 6, 3 / 6), "center": (3 / 6, 3 / 6), "right": (5 / 6, 3 / 6),
    "bottom left": (1 / 6, 5 / 6), "bottom": (3 / 6, 5 / 6), "bottom right": (5 / 6, 5 / 6),
}
CELL_NAMES = tuple(CELLS)
JITTER = 0.03
RELATIONS = ("left of", "right of", "above", "below")
COUNT_WORDS = {2: "two", 3: "three"}
DEFAULT_HOLDOUT: tuple[tuple[str, str], ...] = (("purple", "triangle"), ("orange", "circle"), ("cyan", "square"))
KINDS = ("single", "pair", "count")
DEFAULT_MIX = (0.6, 0.25, 0.15)  # shares of single, pair and count scenes; the evaluation's prompts use these
BACKGROUND = (255, 255, 255)
_SUPERSAMPLE = 4  # render 4x larger, then box-filter down: anti-aliased edges


@dataclass(frozen=True)
class Shape:
    color: str
    shape: str
    size: str
    cell: str
    dx: float = 0.0  # jitter in canvas fractions
    dy: float = 0.0

    @property
    def center(self) -> tuple[float, float]:
        cx, cy = CELLS[self.cell]
        return cx + self.dx, cy + self.dy


@dataclass
class Scene:
    shapes: list[Shape]
    caption: str
    kind: str  # "single" | "pair" | "count"
    relation: str | None = None  # pair scenes: relation of shapes[0] to shapes[1]
    meta: dict = field(default_factory=dict)


def _cell_rc(cell: str) -> tuple[int, int]:
    i = CELL_NAMES.index(cell)
    return i // 3, i % 3


def relation_holds(a: str, relation: str, b: str) -> bool:
    """Whether cell `a` is `relation` cell `b` (strictly, along that axis)."""
    (ra, ca), (rb, cb) = _cell_rc(a), _cell_rc(b)
    return {"left of": ca < cb, "right of": ca > cb, "above": ra < rb, "below": ra > rb}[relation]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def plural(shape: str) -> str:
    return shape + "s"


def single_caption(color: str, shape: str, size: str | None, cell: str | None) -> str:
    words = " ".join(w for w in (size, color, shape) if w)
    text = f"{article(words)} {words}"
    if cell is not None:
        text += " in the center" if cell == "center" else f" at the {cell}"
    return text


def pair_caption(a: tuple[str, str], relation: str, b: tuple[str, str]) -> str:
    return f"{article(a[0])} {a[0]} {a[1]} {relation} {article(b[0])} {b[0]} {b[1]}"


def count_caption(n: int, color: str, shape: str) -> str:
    return f"{COUNT_WORDS[n]} {color} {plural(shape)}"


def allowed_objects(holdout: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(c, s) for c in COLORS for s in SHAPES if (c, s) not in set(holdout)]


def caption_scenes(holdout: tuple[tuple[str, str], ...] = DEFAULT_HOLDOUT) -> list[Scene]:
    """One scene per caption `sample_scene` can emit with this holdout, in a fixed order. What a caption leaves
    open is left at a placeholder (a single's size "small" and cell "center", every other cell "center", no
    jitter); a single's meta says what its caption states ({"size": str | None, "cell": str | None})."""
    objects = allowed_objects(holdout)
    scenes: list[Scene] = []
    for c, s in objects:
        for size in (None, *SIZES):
            for cell in (None, *CELL_NAMES):
                scenes.append(Scene([Shape(c, s, size or "small", cell or "center")],
                                    single_caption(c, s, size, cell), "single", meta={"size": size, "cell": cell}))
    for a in objects:
        for b in objects:
            if a != b:
                scenes.extend(Scene([Shape(*a, "small", "center"), Shape(*b, "small", "center")],
                                    pair_caption(a, r, b), "pair", relation=r) for r in RELATIONS)
    for n in COUNT_WORDS:
        scenes.extend(Scene([Shape(c, s, "small", "center")] * n, count_caption(n, c, s), "count", meta={"count": n})
                      for c, s in objects)
    return scenes


def all_captions(holdout: tuple[tuple[str, str], ...] = DEFAULT_HOLDOUT) -> list[str]:
    """Every caption `sample_scene` can emit with this holdout, in a fixed order."""
    return [scene.caption for scene in caption_scenes(holdout)]


NOISE_DIMS = len(CELL_NAMES) + 1 + 2 * len(CELL_NAMES)  # the noise coordinates `seeded_shapes` reads


# Which cells a seeded pair may take: "any" where its relation holds, "line" the two ends of a row (left of,
# right of) or a column (above, below), "center" the two ends of the middle one. Fewer layouts ask less of G:
# under "center" each colour of a caption has one place, whatever the seed.
PAIR_LAYOUTS = ("any", "line", "center")


def _pair_layout_holds(p: int, q: int, layout: str) -> bool:
    """Whether cells p and q (indices into CELL_NAMES) are a pair of cells `layout` allows."""
    if layout == "any":
        return True
    (rp, cp), (rq, cq) = _cell_rc(CELL_NAMES[p]), _cell_rc(CELL_NAMES[q])
    ends = (rp == rq and abs(cp - cq) == 2) or (cp == cq and abs(rp - rq) == 2)
    middle = p + q == 2 * CELL_NAMES.index("center")
    return ends and (layout == "line" or middle)


# (layout, relation) -> the (first shape's, second shape's) cell indices where the relation holds
ALLOWED_CELLS = {(layout, rel): tuple((p, q) for p in range(len(CELL_NAMES)) for q in range(len(CELL_NAMES))
                                      if relation_holds(CELL_NAMES[p], rel, CELL_NAMES[q])
                                      and _pair_layout_holds(p, q, layout))
                 for layout in PAIR_LAYOUTS for rel in RELATIONS}


def seeded_shapes(scene: Scene, noise: np.ndarray, pair_layout: str = "any") -> list[Shape]:
    """The shapes of `scene`'s caption with everything the caption leaves open read from `noise`
    [>= NOISE_DIMS] (standard normal; the first coordinates of a generator's z), as a function of it:
    one noise vector, one image. Coordinates 0-8 rank the cells, and every caption puts its shapes in the
    best cells it allows: an unplaced single in the best cell, a count in the best n, a pair in the two
    allowed cells with the best sum (which shape takes which of them follows from the relation). One
    ranking for every kind of caption, so "where the shapes go" is one thing to learn. Coordinate 9
    picks an unstated size (> 0: large); 10-27 are each cell's jitter (x, y). Each choice is uniform
    over what the caption allows, as `sample_scene`'s are. `pair_layout` (PAIR_LAYOUTS) narrows the cells
    a pair may take."""
    if pair_layout not in PAIR_LAYOUTS:
        raise ValueError(f"pair_layout must be one of {', '.join(PAIR_LAYOUTS)}; got {pair_layout!r}")
    noise = np.asarray(noise, dtype=np.float64)
    if noise.shape[0] < NOISE_DIMS:
        raise ValueError(f"seeded_shapes reads {NOISE_DIMS} noise coordinates, got {noise.shape[0]}")
    score = noise[:len(CELL_NAMES)]
    uniform = 0.5 * (1 + np.vectorize(math.erf)(noise[10:NOISE_DIMS] / math.sqrt(2)))  # [18] in (0, 1)

    def at(template: Shape, cell: str, size: str = "small") -> Shape:
        i = CELL_NAMES.index(cell)
        dx, dy = (2 * uniform[2 * i: 2 * i + 2] - 1) * JITTER
        return Shape(template.color, template.shape, size, cell, float(dx), float(dy))

    if scene.kind == "single":
        size = scene.meta["size"] or ("large" if noise[9] > 0 else "small")
        return [at(scene.shapes[0], scene.meta["cell"] or CELL_NAMES[int(score.argmax())], size)]
    if scene.kind == "pair":
        p, q = max(ALLOWED_CELLS[pair_layout, scene.relation], key=lambda pq: score[pq[0]] + score[pq[1]])
        return [at(scene.shapes[0], CELL_NAMES[p]), at(scene.shapes[1], CELL_NAMES[q])]
    chosen = sorted(np.argsort(-score)[: len(scene.shapes)])
    return [at(scene.shapes[0], CELL_NAMES[i]) for i in chosen]


OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def near_misses(caption: str) -> list[str]:
    """Captions that differ from `caption` in exactly what a pooled sentence vector blurs: the
    relation of a pair (flipped) and which of its shapes takes which colour (swapped), the place of a
    placed shape, the number of a count, the shape of an unplaced one. Real images shown with these
    are the discriminator's hardest negatives."""
    for rel, opp in OPPOSITE.items():
        if f" {rel} " in caption:
            a, b = (part.split(" ")[1:] for part in caption.split(f" {rel} "))  # [colour, shape] each
            misses = [caption.replace(f" {rel} ", f" {opp} ")]
            swapped = pair_caption((b[0], a[1]), rel, (a[0], b[1]))
            if swapped != caption:  # one colour twice: nothing to swap
                misses.append(swapped)
            return misses
    first, rest = caption.split(" ", 1)
    if first in COUNT_WORDS.values():
        return [f"{w} {rest}" for w in COUNT_WORDS.values() if w != first]
    for cell in CELL_NAMES:
        placed = " in the center" if cell == "center" else f" at the {cell}"
        if caption.endswith(placed):
            stem = caption[: -len(placed)]
            return [stem + (" in the center" if c == "center" else f" at the {c}") for c in CELL_NAMES if c != cell]
    words = caption.split(" ")
    return [" ".join(words[:-1] + [s]) for s in SHAPES if s != words[-1]]


def pins_layout(caption: str) -> bool:
    """Whether the caption fixes where everything is: a single shape with its place (its size may be left open)."""
    return " at the " in caption or caption.endswith(" in the center")


def _jitter(rng: random.Random) -> tuple[float, float]:
    return rng.uniform(-JITTER, JITTER), rng.uniform(-JITTER, JITTER)


def sample_scene(rng: random.Random, holdout: tuple[tuple[str, str], ...] = DEFAULT_HOLDOUT,
                 kind_weights: tuple[float, float, float] = DEFAULT_MIX) -> Scene:
    """Draw a random scene. Single captions may omit size and/or position (then random)."""
    objects = allowed_objects(holdout)
    kind = rng.choices(KINDS, weights=kind_weights)[0]
    if kind == "single":
        color, shape = rng.choice(objects)
        size, cell = rng.choice(tuple(SIZES)), rng.choice(CELL_NAMES)
        say_size, say_cell = rng.random() < 0.75, rng.random() < 0.75
        caption = single_caption(color, shape, size if say_size else None, cell if say_cell else None)
        return Scene([Shape(color, shape, size, cell, *_jitter(rng))], caption, kind)
    if kind == "pair":
        a, b = rng.sample(objects, 2)
        relation = rng.choice(RELATIONS)
        return Scene(_pair_shapes(a, relation, b, rng), pair_caption(a, relation, b), kind, relation=relation)
    n = rng.choice(tuple(COUNT_WORDS))
    color, shape = rng.choice(objects)
    return Scene(_count_shapes(n, color, shape, rng), count_caption(n, color, shape), kind, meta={"count": n})


def _pair_shapes(a: tuple[str, str], relation: str, b: tuple[str, str], rng: random.Random) -> list[Shape]:
    """Two small shapes (colour, shape) a and b in a random pair of cells where a is `relation` b."""
    cells = [(p, q) for p in CELL_NAMES for q in CELL_NAMES if relation_holds(p, relation, q)]
    ca, cb = rng.choice(cells)
    return [Shape(*a, "small", ca, *_jitter(rng)), Shape(*b, "small", cb, *_jitter(rng))]


def _count_shapes(n: int, color: str, shape: str, rng: random.Random) -> list[Shape]:
    """n small shapes of one colour and shape in n random distinct cells."""
    return [Shape(color, shape, "small", c, *_jitter(rng)) for c in rng.sample(CELL_NAMES, n)]


def redraw(scene: Scene, rng: random.Random) -> Scene:
    """Another scene with the same caption: what the caption leaves open (an unstated size or place, the
    cells of a pair or a count, every shape's jitter) drawn again, as `sample_scene` draws it."""
    if scene.kind == "single":
        s = scene.shapes[0]
        size = s.size if scene.caption.split(" ")[1] in SIZES else rng.choice(tuple(SIZES))
        cell = s.cell if pins_layout(scene.caption) else rng.choice(CELL_NAMES)
        shapes = [Shape(s.color, s.shape, size, cell, *_jitter(rng))]
    elif scene.kind == "pair":
        a, b = scene.shapes
        shapes = _pair_shapes((a.color, a.shape), scene.relation, (b.color, b.shape), rng)
    else:
        s = scene.shapes[0]
        shapes = _count_shapes(len(scene.shapes), s.color, s.shape, rng)
    return Scene(shapes, scene.caption, scene.kind, relation=scene.relation, meta=dict(scene.meta))


def render(scene_shapes: list[Shape], resolution: int) -> np.ndarray:
    """Draw shapes on white. Returns uint8 array [resolution, resolution, 3]."""
    big = resolution * _SUPERSAMPLE
    img = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for s in scene_shapes:
        cx, cy = s.center
        half = SIZES[s.size] / 2
        x0, y0, x1, y1 = ((cx - half) * big, (cy - half) * big, (cx + half) * big, (cy + half) * big)
        fill = COLORS[s.color]
        if s.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif s.shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:  # upward triangle filling the box
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    img = img.resize((resolution, resolution), Image.Resampling.BOX)
    return np.asarray(img)


WRONG_KINDS = ("ghost", "missing", "extra", "near miss")  # how `wrong_render` spoils a scene
GHOST_OPACITY = (0.15, 0.6)  # a ghost is an extra shape drawn this faint (a share of full ink)


def _free_cell(shapes: list[Shape], rng: random.Random) -> str:
    used = {s.cell for s in shapes}
    return rng.choice([c for c in CELL_NAMES if c not in used] or list(CELL_NAMES))


def wrong_render(scene: Scene, resolution: int, rng: random.Random, objects: list[tuple[str, str]],
                 near: Scene | None = None, kind: str | None = None) -> tuple[np.ndarray, str]:
    """(an image uint8 [R, R, 3] that comes close to showing `scene.caption` but does not, which of WRONG_KINDS).

    The ways a generator gets a scene wrong, drawn by the world's own renderer:
      * "ghost": the scene plus a faint extra shape (GHOST_OPACITY of full ink) in a free cell;
      * "missing": one object of a pair or a count left out (singles get a ghost instead);
      * "extra": one more solid copy of one of the scene's objects, in a free cell;
      * "near miss": `near`, a redrawn scene of a near-miss caption (a flipped relation, swapped colours,
        another count or place), when there is one; else an extra object of another kind.
    `kind` picks one; None draws it (ghosts half the time: the generator's commonest failure).
    """
    kind = kind or rng.choices(WRONG_KINDS, weights=(0.5, 0.25, 0.15, 0.1))[0]
    if kind == "missing" and len(scene.shapes) < 2:
        kind = "ghost"
    if kind == "ghost":
        color, shape = rng.choice(objects) if rng.random() < 0.5 else (scene.shapes[0].color, scene.shapes[0].shape)
        ghost = Shape(color, shape, "small", _free_cell(scene.shapes, rng), *_jitter(rng))
        base = render(scene.shapes, resolution).astype(np.float32)
        full = render(scene.shapes + [ghost], resolution).astype(np.float32)
        opacity = rng.uniform(*GHOST_OPACITY)
        return ((1 - opacity) * base + opacity * full).round().astype(np.uint8), kind
    if kind == "missing":
        drop = rng.randrange(len(scene.shapes))
        return render([s for i, s in enumerate(scene.shapes) if i != drop], resolution), kind
    if kind == "near miss" and near is not None:
        return render(near.shapes, resolution), kind
    template = rng.choice(scene.shapes)
    color, shape = (template.color, template.shape) if kind == "extra" else rng.choice(objects)
    extra = Shape(color, shape, "small", _free_cell(scene.shapes, rng), *_jitter(rng))
    return render(scene.shapes + [extra], resolution), "extra"


class ShapesWorld:
    """Infinite training stream of (image, caption) pairs from the `shapes` world."""

    name = "shapes"

    def __init__(self, resolution: int, holdout: tuple[tuple[str, str], ...] = DEFAULT_HOLDOUT,
                 mix: tuple[float, float, float] = DEFAULT_MIX):  # shares of single, pair and count scenes
        if len(mix) != len(KINDS) or min(mix) < 0 or sum(mix) <= 0:
            raise ValueError(f"the scene mix is three shares >= 0 (single, pair, count), not all 0; got {list(mix)}")
        self.resolution = resolution
        self.holdout = tuple(tuple(h) for h in holdout)
        self.mix = tuple(float(m) for m in mix)
        self.scenes = caption_scenes(self.holdout)  # one per caption, what it leaves open at a placeholder
        self.captions = [scene.caption for scene in self.scenes]
        self._index = {c: i for i, c in enumerate(self.captions)}
        # near misses that are captions of this world (a held-out pair is never one)
        self._near = [[self._index[m] for m in near_misses(c) if m in self._index] or [i]
                      for i, c in enumerate(self.captions)]
        self._pinned = np.array([pins_layout(c) for c in self.captions])

    def describe(self) -> dict:
        return {"name": self.name, "holdout": [list(h) for h in self.holdout], "num_captions": len(self.captions),
                "mix": dict(zip(KINDS, self.mix))}

    def sample(self, batch_size: int, rng: random.Random, group: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Returns uint8 images [B, H, W, 3] and caption indices [B] into `self.captions`. group=k: B/k captions,
        each drawn k times in a row (`redraw`), so the images of one caption show how much it leaves open."""
        if group < 1 or batch_size % group:
            raise ValueError(f"the batch ({batch_size}) must split into groups of {group}")
        scenes = []
        for _ in range(batch_size // group):
            first = sample_scene(rng, self.holdout, self.mix)
            scenes += [first] + [redraw(first, rng) for _ in range(group - 1)]
        images = np.stack([render(s.shapes, self.resolution) for s in scenes])
        return images, np.array([self._index[s.caption] for s in scenes], dtype=np.int64)

    def render_seeded(self, indices: np.ndarray, noise: np.ndarray, pair_layout: str = "any") -> np.ndarray:
        """Caption indices [B] and noise [B, >= NOISE_DIMS] -> uint8 images [B, H, W, 3]: each caption drawn with
        what it leaves open read from its noise (`seeded_shapes`; pairs within `pair_layout`)."""
        return np.stack([render(seeded_shapes(self.scenes[i], n, pair_layout), self.resolution)
                         for i, n in zip(indices, noise)])

    def pinned(self, indices: np.ndarray) -> np.ndarray:
        """For each caption index [B], whether that caption places its shape (`pins_layout`) [B] bool."""
        return self._pinned[indices]

    def wrong_images(self, indices: np.ndarray, rng: random.Random) -> np.ndarray:
        """For each caption index [B], a fresh draw of its scene spoilt by `wrong_render`: uint8 [B, R, R, 3]."""
        objects = allowed_objects(self.holdout)
        out = []
        for i in indices:
            near = [j for j in self._near[i] if j != i]
            near_scene = redraw(self.scenes[rng.choice(near)], rng) if near else None
            out.append(wrong_render(redraw(self.scenes[i], rng), self.resolution, rng, objects, near_scene)[0])
        return np.stack(out)

    def near_miss(self, indices: np.ndarray, rng: random.Random) -> np.ndarray:
        """For each caption index [B], the index of one of its near misses (`near_misses`) [B]."""
        return np.array([rng.choice(self._near[i]) for i in indices], dtype=np.int64)
