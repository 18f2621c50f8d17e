"""The spoil probe: how often each of a checkpoint's scores prefers a clean real render to the same render
spoiled by a ghost, a missing or an extra object (`dalle/shapes/probes/ghosts.py`)."""

import json
from pathlib import Path

import numpy as np
import pytest

from dalle.cli import main
from dalle.shapes.probes import ghosts
from dalle.shapes.world import sample_scene

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


class InkCounter:
    """A stand-in pipeline whose scores are known: realism is minus the image's ink, match is a constant, so a
    spoil that adds ink (a ghost, an extra object) is always seen by realism and never by match."""

    class _Config:
        resolution = 32

    model_config, device, judge = _Config(), "cpu", None

    def encode(self, captions):
        return len(captions)

    class discriminator:  # noqa: N801 - the pipeline's attribute name
        @staticmethod
        def features(x):
            return x

        @staticmethod
        def heads(x, text):
            ink = (1 - x).sum(dim=(1, 2, 3))
            return -ink, ink * 0


def test_preferred_counts_ties_as_one_half():
    assert ghosts.preferred(np.array([2.0, 1.0, 0.0, 5.0]), np.array([1.0, 1.0, 3.0, 4.0])) == 0.625


def test_a_score_that_counts_ink_sees_added_ink_and_a_constant_sees_nothing():
    out = ghosts.clean_preferred(InkCounter(), scenes=30)
    assert out["scenes"] == 30 and set(out) == {"scenes", "pair", "count"}
    for kind in ("pair", "count"):
        assert out[kind]["ghost"]["realism"] == 1.0 and out[kind]["extra"]["realism"] == 1.0
        assert out[kind]["missing"]["realism"] == 0.0  # less ink scores as more real
        assert {s["match (D)"] for s in out[kind].values()} == {0.5}  # ties count one half
        assert "match (judge)" not in out[kind]["ghost"]


def test_the_scene_mixes_draw_one_caption_kind():
    import random

    rng = random.Random(0)
    assert all(sample_scene(rng, kind_weights=ghosts.SCENE_MIX["pair"]).kind == "pair" for _ in range(20))
    assert all(sample_scene(rng, kind_weights=ghosts.SCENE_MIX["count"]).kind == "count" for _ in range(20))


@pytest.mark.skipif(not (CHECKPOINTS / "shapes-32").exists(), reason="no shipped shapes checkpoint")
def test_probe_ghosts_cli_on_the_shipped_checkpoint(capsys):
    assert main(["probe-ghosts", str(CHECKPOINTS / "shapes-32"), "--scenes", "40"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    values = np.array([v for kind in ("pair", "count") for spoil in out[kind].values() for v in spoil.values()])
    assert ((values >= 0) & (values <= 1)).all()
    # the judge trained on these very spoils (dalle/training/judge.py) sees a missing object
    assert out["pair"]["missing"]["match (judge)"] > 0.9 and out["count"]["missing"]["match (judge)"] > 0.9
    emoji = CHECKPOINTS / "emoji-64"
    if emoji.exists():
        assert main(["probe-ghosts", str(emoji)]) == 2
        assert "shapes checkpoint" in capsys.readouterr().err
