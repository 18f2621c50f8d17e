"""The Compare tab's common judge shows n and a 95% interval, and its defaults tell the shipped
shapes checkpoints apart the right way round."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demo.examples import compare_default
from demo.handlers import Handlers
from demo.judge import Verdict, wilson
from demo.render import COMPARE_COLUMNS, OutputFolder, compare_footer, compare_table
from demo.results import Generation
from demo.service import ModelService

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"


def _gen(name: str) -> Generation:
    z = np.zeros((2, 4))
    return Generation(name, 100, 3200, ["a", "b"], np.zeros((2, 4), dtype=np.int64),
                      np.zeros((2, 4, 8, 8, 3), dtype=np.uint8), z + 0.5, z + 0.5, 0.7, 0)


def test_wilson_interval() -> None:
    lo, hi = wilson(8, 8)
    assert hi == 1.0 and lo == pytest.approx(0.676, abs=1e-3)  # 8 of 8 right is not "1.000"
    lo, hi = wilson(14, 16)
    assert (round(lo, 3), round(hi, 3)) == (0.640, 0.965)
    assert wilson(0, 5)[0] == 0.0


def test_the_summary_table_shows_n_and_a_95_percent_interval() -> None:
    verdicts = [Verdict("shapes checker", 0.875, 16), Verdict("evaluator cosine", 0.5, 100, sd=0.1),
                Verdict("none: no prompt is a caption", None, 0)]
    table = compare_table([_gen("a"), _gen("b"), _gen("c")], verdicts)
    assert {"n (images judged)", "95% interval"} <= set(COMPARE_COLUMNS) == set(table.columns)
    assert list(table["n (images judged)"]) == [16, 100, 0]
    assert list(table["95% interval"]) == ["0.64–0.97", "0.48–0.52", ""]
    assert "**0.875** (95% interval 0.64–0.97, n = 16)" in compare_footer(_gen("a"), verdicts[0])


@pytest.mark.skipif(not (SHIPPED / "shapes-32-early" / "config.json").is_file(), reason="no shipped shapes-32-early")
def test_compare_defaults_rank_shapes_32_above_its_early_snapshot() -> None:
    service = ModelService(SHIPPED, capacity=4)
    picked, prompts = compare_default(service.scan.found)
    assert picked == ["shapes-32", "shapes-32-early"]
    # the Compare tab's other defaults: seed 0, ψ 0.7, 4 images per prompt
    out = Handlers(service, OutputFolder()).compare(prompts, 0, 0.7, 4, picked)
    table = out[-1].set_index("checkpoint")
    score = table["common judge score"]
    assert (table["n (images judged)"] >= 16).all()
    assert score["shapes-32"] >= score["shapes-32-early"]
    lo = float(table.loc["shapes-32", "95% interval"].split("–")[0])
    hi = float(table.loc["shapes-32-early", "95% interval"].split("–")[1])
    assert lo > hi, table  # the intervals part: the difference is not the luck of a few images


@pytest.mark.skipif(not (SHIPPED / "evaluator" / "evaluator.safetensors").is_file(), reason="no shipped evaluator")
def test_the_emoji_cosine_has_a_mean_interval() -> None:
    service = ModelService(SHIPPED, capacity=4)
    gen = service.generate("red heart\nfire", 3, 0.7, 4, "emoji-32")
    verdict = service.common_judge(gen)
    assert verdict.judged == 8 and verdict.sd is not None and verdict.sd > 0
    lo, hi = verdict.interval
    assert lo < verdict.score < hi and hi - lo == pytest.approx(2 * 1.959964 * verdict.sd / 8 ** 0.5)
