"""Analytic checker for the `shapes` world: no learned judge, only the world's own definitions.

Pipeline for one image (uint8 [R, R, 3], any R):

1. Hard colour labels: every pixel goes to its nearest colour among the palette plus the
   white background, but only if that distance is below `COLOR_THRESHOLD` (RGB units);
   otherwise it stays unlabelled (anti-aliased edges, blends, noise).
2. Connected components (8-connectivity) of each palette colour's mask.
3. Soft measurements per component, so that even 6-pixel shapes measure well: each pixel
   of the component grown by one pixel (not claimed by another colour) gets a coverage
   alpha in [0, 1] = how far it lies from white toward the component's colour. Then
     area     = sum of alpha                              (canvas fraction after / R^2)
     width    = sum over columns of the column's max alpha  (exact for these convex shapes)
     height   = sum over rows of the row's max alpha
     centroid = alpha-weighted mean position
     fill     = area / (width * height)   circle ~ pi/4, square ~ 1, triangle ~ 1/2
     skew     = skewness of the alpha mass along y: an apex-up triangle has its mass at the
                bottom (about -0.57); circles and squares are symmetric (about 0).
   Components with area below `MIN_AREA` (a quarter of the smallest real object) are noise.
4. Attributes: cell = centroid in the 3x3 grid; size = small if max(width, height) < 0.3 of
   the side (real: 0.2 or 0.4, shapes in corner cells may be clipped by the canvas);
   shape = nearest prototype in (fill, skew) space.

`check(image, spec)` turns the detected objects into per-prompt pass/fail judgements;
`summarize` averages them. On real renders (`dalle.shapes.world.render`) every judgement
is right (see tests); that is the ceiling reported next to generated images.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .world import (
    CELL_NAMES,
    COLORS,
    COUNT_WORDS,
    DEFAULT_HOLDOUT,
    JITTER,
    RELATIONS,
    SHAPES,
    SIZES,
    Scene,
    Shape,
    relation_holds,
    sample_scene,
    single_caption,
)

COLOR_NAMES = tuple(COLORS)
_PALETTE = np.array([COLORS[c] for c in COLOR_NAMES] + [(255, 255, 255)], dtype=np.float32)  # last = white
_WHITE = np.array([255.0, 255.0, 255.0], dtype=np.float32)
COLOR_THRESHOLD = 60.0  # max RGB distance to accept a palette colour (nearest pair, yellow/orange, is 71 apart)
MIN_AREA = 0.25 * 0.5 * min(SIZES.values()) ** 2  # a quarter of a small triangle, as a canvas fraction
SIZE_SPLIT = (SIZES["small"] + SIZES["large"]) / 2  # 0.3 of the side
# (fill, skew) prototypes and the scale of each axis for the nearest-prototype rule.
SHAPE_PROTOTYPES = {"circle": (np.pi / 4, 0.0), "square": (1.0, 0.0), "triangle": (0.5, -0.566)}
_SHAPE_SCALE = (0.15, 0.2)


@dataclass
class DetectedObject:
    color: str
    shape: str
    size: str
    cell: str
    cx: float  # centroid, canvas fractions
    cy: float
    area: float  # canvas fraction
    extent: float  # max(width, height) as a canvas fraction
    fill: float
    skew: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _classify_shape(fill: float, skew: float) -> str:
    def dist(proto):
        return ((fill - proto[0]) / _SHAPE_SCALE[0]) ** 2 + ((skew - proto[1]) / _SHAPE_SCALE[1]) ** 2
    return min(SHAPES, key=lambda s: dist(SHAPE_PROTOTYPES[s]))


def cell_of(cx: float, cy: float) -> str:
    col = min(max(int(cx * 3), 0), 2)
    row = min(max(int(cy * 3), 0), 2)
    return CELL_NAMES[row * 3 + col]


def color_labels(image: np.ndarray, threshold: float = COLOR_THRESHOLD) -> np.ndarray:
    """int [R, R]: palette index, len(palette) for white background, -1 for unlabelled."""
    p = image.astype(np.float32)
    d = np.linalg.norm(p[:, :, None, :] - _PALETTE[None, None], axis=-1)  # [R, R, 9]
    nearest = d.argmin(-1)
    ok = np.take_along_axis(d, nearest[..., None], -1)[..., 0] < threshold
    return np.where(ok, nearest, -1)


_EIGHT = np.ones((3, 3), dtype=bool)


def detect_objects(image: np.ndarray, threshold: float = COLOR_THRESHOLD,
                   min_area: float = MIN_AREA) -> list[DetectedObject]:
    """All palette-coloured objects in an image, largest first."""
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square RGB image [R, R, 3], got {image.shape}")
    res = image.shape[0]
    labels = color_labels(image, threshold)
    p = image.astype(np.float32)
    coords = (np.arange(res, dtype=np.float64) + 0.5) / res
    objects: list[DetectedObject] = []
    for k, name in enumerate(COLOR_NAMES):
        mask = labels == k
        if not mask.any():
            continue
        comp, n = ndimage.label(mask, structure=_EIGHT)
        if n == 0:
            continue
        c = _PALETTE[k]
        v = _WHITE - c
        alpha = np.clip(((_WHITE - p) @ v) / float(v @ v), 0.0, 1.0)
        free = (labels == k) | (labels == -1) | (labels == len(COLOR_NAMES))  # not another colour's pixel
        for j, sl in enumerate(ndimage.find_objects(comp), start=1):
            # grow the component by one pixel inside a padded window
            y0, y1 = max(sl[0].start - 1, 0), min(sl[0].stop + 1, res)
            x0, x1 = max(sl[1].start - 1, 0), min(sl[1].stop + 1, res)
            core = comp[y0:y1, x0:x1] == j
            region = ndimage.binary_dilation(core, structure=_EIGHT) & free[y0:y1, x0:x1]
            a = np.where(region, alpha[y0:y1, x0:x1], 0.0).astype(np.float64)
            mass = a.sum()
            if mass / res**2 < min_area:
                continue
            width, height = a.max(0).sum(), a.max(1).sum()
            wy, wx = a.sum(1), a.sum(0)
            ys, xs = coords[y0:y1], coords[x0:x1]
            cy, cx = (wy * ys).sum() / mass, (wx * xs).sum() / mass
            var = (wy * (ys - cy) ** 2).sum() / mass
            skew = float((wy * (ys - cy) ** 3).sum() / mass / var**1.5) if var > 0 else 0.0
            fill = float(mass / max(width * height, 1e-9))
            extent = float(max(width, height) / res)
            objects.append(DetectedObject(
                color=name, shape=_classify_shape(fill, skew), size="small" if extent < SIZE_SPLIT else "large",
                cell=cell_of(cx, cy), cx=float(cx), cy=float(cy), area=float(mass / res**2), extent=extent,
                fill=fill, skew=skew))
    return sorted(objects, key=lambda o: -o.area)


# ---------------------------------------------------------------------- captions
@dataclass
class CaptionSpec:
    """What a caption asks for. Unstated attributes are None."""
    kind: str  # single | pair | count
    objects: list[tuple[str, str]]  # (colour, shape): one for single/count, two for pair (a, b)
    size: str | None = None  # single only
    cell: str | None = None  # single only
    relation: str | None = None  # pair: objects[0] <relation> objects[1]
    count: int | None = None  # count only


def _alt(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_COL, _SHP, _SZ = _alt(COLOR_NAMES), _alt(SHAPES), _alt(SIZES)
_CELL = _alt([c for c in CELL_NAMES if c != "center"])
_SINGLE = re.compile(rf"^an? (?:(?P<size>{_SZ}) )?(?P<color>{_COL}) (?P<shape>{_SHP})"
                     rf"(?: at the (?P<cell>{_CELL})| in the (?P<center>center))?$")
_PAIR = re.compile(rf"^an? (?P<c1>{_COL}) (?P<s1>{_SHP}) (?P<rel>{_alt(RELATIONS)}) an? (?P<c2>{_COL}) (?P<s2>{_SHP})$")
_COUNT = re.compile(rf"^(?P<n>{_alt(COUNT_WORDS.values())}) (?P<color>{_COL}) (?P<shape>{_SHP})s$")


def parse_caption(caption: str) -> CaptionSpec:
    """Parse any caption the shapes world can produce (and the held-out ones). ValueError otherwise."""
    text = caption.strip().lower()
    m = _SINGLE.match(text)
    if m:
        cell = "center" if m["center"] else m["cell"]
        return CaptionSpec("single", [(m["color"], m["shape"])], size=m["size"], cell=cell)
    m = _PAIR.match(text)
    if m:
        return CaptionSpec("pair", [(m["c1"], m["s1"]), (m["c2"], m["s2"])], relation=m["rel"])
    m = _COUNT.match(text)
    if m:
        n = {w: k for k, w in COUNT_WORDS.items()}[m["n"]]
        return CaptionSpec("count", [(m["color"], m["shape"])], count=n)
    raise ValueError(f"not a shapes-world caption: {caption!r}")


def caption_kind(caption: str) -> str:
    """"placed" or "unplaced" single, "pair" or "count": the kinds of caption that leave different things open."""
    spec = parse_caption(caption)
    if spec.kind == "single":
        return "placed" if spec.cell else "unplaced"
    return spec.kind


# ---------------------------------------------------------------------- judging
CHECK_KEYS = ("colour_shape", "position", "size", "relation", "count", "colour_shape_position", "exact")


def judge(objects: list[DetectedObject], spec: CaptionSpec) -> dict[str, bool | None]:
    """Pass/fail per attribute for one image; None where the caption does not ask for it.

    single: the main object is the largest one detected.
      colour_shape: main object has the colour and shape; position / size: its cell / size
      (only when the caption states them); count: exactly one object;
      colour_shape_position: colour_shape and position (the headline; None without a position);
      exact: everything stated is right and there is exactly one object.
    pair: colour_shape: both named objects are present; relation: some detected pair of them
      satisfies the relation between their cells (the world's definition, `relation_holds`);
      count: exactly two objects; exact: relation and count.
    count: colour_shape: at least one object and every object has the colour and shape;
      count: the number of objects equals the number asked for; exact: both.
    """
    out: dict[str, bool | None] = dict.fromkeys(CHECK_KEYS)
    n = len(objects)
    if spec.kind == "single":
        color, shape = spec.objects[0]
        main = objects[0] if objects else None
        cs = bool(main and main.color == color and main.shape == shape)
        out["colour_shape"] = cs
        if spec.cell is not None:
            out["position"] = bool(main and main.cell == spec.cell)
            out["colour_shape_position"] = cs and out["position"]
        if spec.size is not None:
            out["size"] = bool(main and main.size == spec.size)
        out["count"] = n == 1
        out["exact"] = cs and out["position"] is not False and out["size"] is not False and n == 1
    elif spec.kind == "pair":
        a = [o for o in objects if (o.color, o.shape) == spec.objects[0]]
        b = [o for o in objects if (o.color, o.shape) == spec.objects[1]]
        out["colour_shape"] = bool(a and b)
        out["relation"] = any(relation_holds(oa.cell, spec.relation, ob.cell) for oa in a for ob in b if oa is not ob)
        out["count"] = n == 2
        out["exact"] = out["relation"] and n == 2
    else:
        target = spec.objects[0]
        out["colour_shape"] = n > 0 and all((o.color, o.shape) == target for o in objects)
        out["count"] = n == spec.count
        out["exact"] = out["colour_shape"] and out["count"]
    return out


GHOST_INK = 40.0  # RGB distance from white that counts as ink: a faint blob is ink the palette does not match


def ghosts(image: np.ndarray, caption: str | CaptionSpec) -> int:
    """Ghost blobs in an image [R, R, 3]: ink components of at least MIN_AREA that hold no detected object (too
    faint or off-palette for `detect_objects`), plus detected objects beyond the number the caption asks for."""
    spec = parse_caption(caption) if isinstance(caption, str) else caption
    objects = detect_objects(image)
    res = image.shape[0]
    ink = np.linalg.norm(255.0 - image.astype(np.float32), axis=-1) > GHOST_INK
    comp, n = ndimage.label(ink, structure=_EIGHT)
    areas = ndimage.sum(ink, comp, range(1, n + 1)) / res**2 if n else []
    owned = {int(comp[min(int(o.cy * res), res - 1), min(int(o.cx * res), res - 1)]) for o in objects}
    faint = sum(1 for j, area in enumerate(areas, start=1) if area >= MIN_AREA and j not in owned)
    expected = {"single": 1, "pair": 2}.get(spec.kind, spec.count)
    return faint + max(0, len(objects) - expected)


def check(image: np.ndarray, caption: str | CaptionSpec) -> dict[str, bool | None]:
    spec = parse_caption(caption) if isinstance(caption, str) else caption
    return judge(detect_objects(image), spec)


def summarize(judgements: list[dict[str, bool | None]]) -> dict:
    """Mean of each judgement over the images where it applies, with its count."""
    out: dict = {"n": len(judgements)}
    for k in CHECK_KEYS:
        vals = [j[k] for j in judgements if j.get(k) is not None]
        out[k] = {"accuracy": (float(np.mean(vals)) if vals else None), "n": len(vals)}
    return out


def exact_verdicts(prompts: list[str], images: np.ndarray) -> list[bool]:
    """The 'exact' judgement of each image of uint8 [P, N, R, R, 3] against its row's prompt (P prompts).
    Rows whose prompt is not a caption of the world are skipped: -> up to P*N bools, row by row."""
    right: list[bool] = []
    for prompt, row in zip(prompts, images):
        try:
            spec = parse_caption(prompt)
        except ValueError:
            continue  # not a caption of the shapes world: nothing to check against
        right += [bool(check(image, spec)["exact"]) for image in row]
    return right


# ---------------------------------------------------------------------- prompt sets
def seen_scenes(n: int, seed: int, holdout=DEFAULT_HOLDOUT) -> list[Scene]:
    """`n` scenes from the training sampler (all three caption kinds), drawn from a seed stream that training
    never uses: training seeds its sampler with integers, this stream is seeded with a string."""
    rng = random.Random(f"evaluation:{seed}")
    return [sample_scene(rng, holdout) for _ in range(n)]


def heldout_scenes(n: int, seed: int, holdout=DEFAULT_HOLDOUT) -> list[Scene]:
    """`n` single-object scenes of the held-out colour/shape pairs (cycled), stating size and position."""
    rng = random.Random(seed + 7_777_777)
    scenes = []
    for i in range(n):
        color, shape = holdout[i % len(holdout)]
        size, cell = rng.choice(tuple(SIZES)), rng.choice(CELL_NAMES)
        dx, dy = rng.uniform(-JITTER, JITTER), rng.uniform(-JITTER, JITTER)
        scenes.append(Scene([Shape(color, shape, size, cell, dx, dy)], single_caption(color, shape, size, cell),
                            "single"))
    return scenes


def scene_for_spec(spec: CaptionSpec, rng: random.Random) -> list[Shape]:
    """A fresh real scene that fits the caption (unstated attributes drawn as the sampler would)."""
    def jit():
        return rng.uniform(-JITTER, JITTER), rng.uniform(-JITTER, JITTER)
    if spec.kind == "single":
        size = spec.size or rng.choice(tuple(SIZES))
        cell = spec.cell or rng.choice(CELL_NAMES)
        return [Shape(*spec.objects[0], size, cell, *jit())]
    if spec.kind == "pair":
        cells = [(p, q) for p in CELL_NAMES for q in CELL_NAMES if relation_holds(p, spec.relation, q)]
        ca, cb = rng.choice(cells)
        return [Shape(*spec.objects[0], "small", ca, *jit()), Shape(*spec.objects[1], "small", cb, *jit())]
    return [Shape(*spec.objects[0], "small", c, *jit()) for c in rng.sample(CELL_NAMES, spec.count)]


__all__ = ["CHECK_KEYS", "CaptionSpec", "DetectedObject", "check", "detect_objects", "heldout_scenes", "judge",
           "parse_caption", "scene_for_spec", "seen_scenes", "summarize"]
