"""Do the seeds move the shapes, or only make them wobble? A probe of where each seed puts the objects.

Pixel diversity (`python -m dalle evaluate`) rewards any difference between the seeds of one prompt: a
shape drawn a pixel to the left counts, and so does a fragment beside it. Real renders of "a red circle"
put the circle in any of the nine cells. This probe counts, for each prompt, the distinct layouts among
its seeds' images, where an image's layout is the sorted cells of the objects the analytic checker finds
in it, and the same over as many fresh real renders of the prompt. Shapes world only.
"""

from __future__ import annotations

import random

import numpy as np

from ...evaluation.sampling import Generated
from ...pipeline import TextToImagePipeline
from ..checker import caption_kind, detect_objects, parse_caption, scene_for_spec, seen_scenes
from ..world import render


def layout(image: np.ndarray) -> tuple[str, ...]:
    """The cells of the objects detected in an image uint8 [R, R, 3], sorted: () when none is found."""
    return tuple(sorted(o.cell for o in detect_objects(image)))


def distinct_layouts(images: np.ndarray) -> int:
    """How many different `layout`s the images uint8 [K, R, R, 3] show (1 to K)."""
    return len({layout(img) for img in images})


def seed_layouts(pipe: TextToImagePipeline, num_prompts: int = 64, seeds: int = 8, psi: float = 1.0,
                 seed: int = 0) -> dict:
    """Mean distinct layouts per prompt among `seeds` images, generated and real, by caption kind.

    The prompts are the first `num_prompts` distinct captions of the evaluation's seen stream (`seen_scenes`,
    seed `seed`); generated images use seeds 0 .. seeds-1 at truncation `psi`. -> {kind: {"generated", "real",
    "prompts"}, "seeds": seeds, "psi": psi}."""
    if seeds < 2:
        raise ValueError(f"distinct layouts need at least 2 seeds per prompt, got {seeds}")
    prompts = list(dict.fromkeys(s.caption for s in seen_scenes(4 * num_prompts, seed)))[:num_prompts]
    res = pipe.model_config.resolution
    generated, _, _ = Generated(pipe)([p for p in prompts for _ in range(seeds)], list(range(seeds)) * len(prompts), psi)
    rng = random.Random(f"layouts:{seed}")
    by_kind: dict[str, dict[str, list[int]]] = {}
    for i, prompt in enumerate(prompts):
        spec = parse_caption(prompt)
        real = np.stack([render(scene_for_spec(spec, rng), res) for _ in range(seeds)])
        counts = by_kind.setdefault(caption_kind(prompt), {"generated": [], "real": []})
        counts["generated"].append(distinct_layouts(generated[i * seeds:(i + 1) * seeds]))
        counts["real"].append(distinct_layouts(real))
    out: dict = {kind: {"generated": float(np.mean(c["generated"])), "real": float(np.mean(c["real"])),
                        "prompts": len(c["real"])} for kind, c in sorted(by_kind.items())}
    out.update(seeds=seeds, psi=psi)
    return out
