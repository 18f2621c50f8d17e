"""Which scores see what G gets wrong? A probe of a checkpoint's scores on real renders, spoiled and not.

The generator's commonest mistakes in the shapes world are a faint extra blob (a ghost), a missing object and an
extra one. If D does not tell a clean render from the same render with a ghost, G is never asked to stop
drawing ghosts. This probe draws real scenes of pair and count captions, spoils each one the way the world's
`wrong_render` does, and reports for each score (D's realism u, D's match m, the joint u + m that G trains
against, and the text-match judge where there is one) how often it prefers the clean render of a scene to the
same scene spoiled: 0.5 is blind, 1.0 sees every one. Shapes world only.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ...images import uint8_to_tensor
from ...pipeline import TextToImagePipeline
from ..world import DEFAULT_HOLDOUT, allowed_objects, render, sample_scene, wrong_render

SPOILS = ("ghost", "missing", "extra")  # the `wrong_render` kinds probed
SCENE_MIX = {"pair": (0.0, 1.0, 0.0), "count": (0.0, 0.0, 1.0)}  # sample_scene weights of one caption kind


@torch.inference_mode()
def scores(pipe: TextToImagePipeline, images: np.ndarray, captions: list[str]) -> dict[str, np.ndarray]:
    """images uint8 [B, R, R, 3] with their captions -> {score name: logits [B]}."""
    x = uint8_to_tensor(images).to(pipe.device)
    text = pipe.encode(captions)
    u, m = pipe.discriminator.heads(pipe.discriminator.features(x), text)
    out = {"realism": u, "match (D)": m, "joint (D)": u + m}
    if pipe.judge is not None:
        out["match (judge)"] = pipe.judge(x, text)
    return {name: s.float().cpu().numpy() for name, s in out.items()}


def preferred(clean: np.ndarray, spoiled: np.ndarray) -> float:
    """Share of pairs whose clean score [N] is above its spoiled score [N], ties counting one half."""
    return float(np.mean((clean > spoiled) + 0.5 * (clean == spoiled)))


def clean_preferred(pipe: TextToImagePipeline, scenes: int = 200, seed: int = 0) -> dict:
    """For each caption kind (pair, count) and spoil (ghost, missing, extra): how often each score prefers a clean
    real render of a scene to the same scene spoiled, over `scenes` scenes.
    -> {kind: {spoil: {score: share}}, "scenes": scenes}."""
    res = pipe.model_config.resolution
    objects = allowed_objects(DEFAULT_HOLDOUT)
    out: dict = {"scenes": scenes}
    for kind, mix in SCENE_MIX.items():
        rng = random.Random(f"ghosts:{kind}:{seed}")
        drawn = [sample_scene(rng, DEFAULT_HOLDOUT, mix) for _ in range(scenes)]
        captions = [s.caption for s in drawn]
        clean = scores(pipe, np.stack([render(s.shapes, res) for s in drawn]), captions)
        out[kind] = {}
        for spoil in SPOILS:
            spoiled = scores(pipe, np.stack([wrong_render(s, res, rng, objects, kind=spoil)[0] for s in drawn]),
                             captions)
            out[kind][spoil] = {name: round(preferred(clean[name], spoiled[name]), 3) for name in clean}
    return out
