"""The layout probe: which cells the checker finds objects in, how many distinct layouts a prompt's seeds show,
and the CLI on the shipped shapes checkpoint (real renders give the known answers)."""

import json
from pathlib import Path

import numpy as np
import pytest

from dalle.cli import main
from dalle.shapes.checker import caption_kind
from dalle.shapes.probes.layout import distinct_layouts, layout
from dalle.shapes.world import Shape, render

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def _image(*cells: str) -> np.ndarray:
    return render([Shape("red", "square", "small", cell, 0.0, 0.0) for cell in cells], 32)


def test_layout_is_the_sorted_cells_of_the_objects():
    assert layout(_image("top left")) == ("top left",)
    assert layout(_image("bottom right", "top left")) == ("bottom right", "top left")
    assert layout(np.full((32, 32, 3), 255, np.uint8)) == ()


def test_distinct_layouts_counts_moves_between_cells_not_wobble():
    wobble = np.stack([render([Shape("red", "circle", "large", "center", dx, -dx)], 32) for dx in (-0.03, 0.0, 0.03)])
    assert distinct_layouts(wobble) == 1  # pixels differ, the layout does not
    assert np.abs(wobble[0].astype(int) - wobble[2]).max() > 0
    assert distinct_layouts(np.stack([_image("top left"), _image("center"), _image("top left"),
                                      _image("center", "top left")])) == 3


def test_caption_kinds():
    assert caption_kind("a red circle at the top left") == "placed"
    assert caption_kind("a large red circle in the center") == "placed"
    assert caption_kind("a small red circle") == "unplaced"
    assert caption_kind("a red circle left of a blue square") == "pair"
    assert caption_kind("three red circles") == "count"


@pytest.mark.skipif(not (CHECKPOINTS / "shapes-32").exists(), reason="no shipped shapes checkpoint")
def test_probe_layouts_cli_reports_generated_and_real_by_kind(capsys):
    assert main(["probe-layouts", str(CHECKPOINTS / "shapes-32"), "--prompts", "12", "--seeds", "4"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["seeds"] == 4 and out["psi"] == 1.0
    kinds = {k: v for k, v in out.items() if isinstance(v, dict)}
    assert sum(v["prompts"] for v in kinds.values()) == 12
    for kind, v in kinds.items():
        assert 1.0 <= v["generated"] <= 4.0 and 1.0 <= v["real"] <= 4.0
    assert kinds["placed"]["real"] == 1.0  # a placed shape only jitters inside its cell
    assert set(kinds) == {"placed", "unplaced", "pair"}  # the seen stream's first 12 captions
    assert kinds["unplaced"]["real"] > 1.5 and kinds["pair"]["real"] > 1.5  # open captions move in real renders


def test_probe_layouts_refuses_other_worlds_and_too_few_seeds(capsys):
    emoji = CHECKPOINTS / "emoji-32"
    if emoji.exists():
        assert main(["probe-layouts", str(emoji)]) == 2
        assert "shapes checkpoint" in capsys.readouterr().err
    assert main(["probe-layouts", str(CHECKPOINTS / "shapes-32"), "--seeds", "1"]) == 2
    assert "at least 2 seeds" in capsys.readouterr().err
