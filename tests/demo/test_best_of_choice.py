"""Best-of-N in the playground keeps images by the score its checkpoint's evaluation found most helpful, and the
notes say which score and why."""

import json
import shutil
from pathlib import Path

from dalle.rerank import DEFAULT_SCORE
from demo.card_tab import rerank_choice

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"


def _metrics(folder: Path, by_score: dict) -> None:
    part = {"prompts": 10, "best_of_1": 0.5, "oracle": {"4": 0.9, "8": 1.0}, "by_score": by_score}
    (folder / "metrics.json").write_text(json.dumps({"best_of": {"psi": 0.7, "candidates": 8,
                                                                 "parts": {"all": part}}}))


def test_the_measured_best_score_is_chosen_and_explained(tmp_path):
    _metrics(tmp_path, {"realism": {"4": 0.8, "8": 0.85}, "match": {"4": 0.4, "8": 0.3},
                        "realism x match": {"4": 0.6, "8": 0.6}})
    score, line = rerank_choice(tmp_path)
    assert score == "realism"
    assert "highest realism" in line and "right 0.80 of the time, against 0.50 for the first seed" in line
    assert "match 0.40" in line and "any of 4: 0.90" in line


def test_without_a_measurement_the_default_score_and_no_line(tmp_path):
    assert rerank_choice(tmp_path) == (DEFAULT_SCORE, "")
    (tmp_path / "metrics.json").write_text("{}")
    assert rerank_choice(tmp_path) == (DEFAULT_SCORE, "")


def test_a_shipped_checkpoint_has_its_measurement(tmp_path):
    shutil.copy(SHIPPED / "shapes-32" / "metrics.json", tmp_path / "metrics.json")
    score, line = rerank_choice(tmp_path)
    best_of = json.loads((tmp_path / "metrics.json").read_text())["best_of"]["parts"]["all"]
    assert best_of["by_score"][score]["4"] == max(v["4"] for v in best_of["by_score"].values())
    assert best_of["by_score"][score]["4"] > best_of["best_of_1"]  # on shapes-32 reranking helps
    assert line


def test_the_realism_line_quotes_its_measured_auroc(tmp_path):
    from demo.card_tab import realism_trust

    assert realism_trust(tmp_path) == ""
    (tmp_path / "metrics.json").write_text(json.dumps({"discriminator": {"generated_realism_auroc": 0.7114}}))
    assert "AUROC 0.71" in realism_trust(tmp_path) and "does not tell a right image" in realism_trust(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"discriminator": {"generated_realism_auroc": 0.85}}))
    assert "a useful guide" in realism_trust(tmp_path)
