"""The Compare tab's common judge, with known answers: the shapes checker on the world's own
renders, and what is said when there is no evaluator."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from dalle.datasets import KINDS
from dalle.shapes.checker import parse_caption, scene_for_spec
from dalle.shapes.world import render
from demo.judge import CommonJudge
from demo.results import Generation

SHAPES_JUDGE = KINDS["shapes"].checker.name
PROMPTS = ["a large red circle at the top left", "two green triangles"]


def generation(prompts: list[str], pixels: np.ndarray) -> Generation:
    p, n = pixels.shape[:2]
    zeros = np.zeros((p, n))
    return Generation(checkpoint="c", step=0, images_seen=0, prompts=prompts, seeds=np.zeros((p, n), dtype=np.int64),
                      pixels=pixels, realism=zeros, match=zeros, truncation=0.7, seed=0)


def renders(prompts: list[str], n: int = 3, resolution: int = 32) -> np.ndarray:
    """uint8 [P, n, R, R, 3]: the shapes world's own drawings of each prompt."""
    rng = random.Random(0)
    return np.stack([np.stack([render(scene_for_spec(parse_caption(p), rng), resolution) for _ in range(n)])
                     for p in prompts])


def no_encoder(name: str):
    raise AssertionError("the shapes checker needs no text encoder")


def test_shapes_checker_passes_the_worlds_own_renders_and_fails_swapped_prompts(tmp_path: Path) -> None:
    judge = CommonJudge(tmp_path / "evaluator", no_encoder)
    pixels = renders(PROMPTS)
    right = judge(generation(PROMPTS, pixels), "shapes")
    assert (right.judge, right.score, right.judged) == (SHAPES_JUDGE, 1.0, 6)
    swapped = judge(generation(PROMPTS[::-1], pixels), "shapes")  # each row judged against the other prompt
    assert (swapped.score, swapped.judged) == (0.0, 6)


def test_prompts_outside_the_shapes_grammar_are_not_judged(tmp_path: Path) -> None:
    judge = CommonJudge(tmp_path / "evaluator", no_encoder)
    pixels = renders(PROMPTS[:1], n=2)
    mixed = judge(generation(["a large red circle at the top left", "a cat"],
                             np.concatenate([pixels, pixels])), "Shapes")
    assert (mixed.score, mixed.judged) == (1.0, 2)  # only the first row is a caption of the world
    none = judge(generation(["a cat"], pixels), "shapes")
    assert none.score is None and none.judged == 0 and none.judge.startswith("none:")


def test_no_evaluator_is_said_without_the_servers_path(tmp_path: Path) -> None:
    judge = CommonJudge(tmp_path / "evaluator", no_encoder)
    verdict = judge(generation(["red heart"], np.zeros((1, 1, 32, 32, 3), dtype=np.uint8)), "emoji")
    assert verdict.score is None and verdict.judged == 0
    assert verdict.judge == "none: no usable evaluator in the checkpoints folder's evaluator/"
    assert str(tmp_path) not in verdict.judge
