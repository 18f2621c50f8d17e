"""Model cards: the numbers in a checkpoint's README.md come from its metrics.json."""

import json
import shutil

from dalle.model_card import render_model_card


def _folder_with(tmp_path, source: str, disc_update: dict):
    folder = tmp_path / source
    folder.mkdir()
    shutil.copy(f"checkpoints/{source}/config.json", folder / "config.json")
    metrics = json.loads(open(f"checkpoints/{source}/metrics.json", encoding="utf-8").read())
    metrics["discriminator"].update(disc_update)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder


def test_card_shows_the_match_score_on_generated_images(tmp_path):
    folder = _folder_with(tmp_path, "shapes-32", {
        "match_auroc": 0.8766, "realism_auroc": 0.7412, "generated_match_auroc": 0.6789,
        "generated_match_n_correct": 899, "generated_match_n_wrong": 351,
        "generated_match_auroc_colour_shape_position": 0.5101,
        "generated_match_colour_shape_position_n_correct": 672, "generated_match_colour_shape_position_n_wrong": 49})
    card = render_model_card(folder, [])
    assert "generated images that the analytic checker calls right vs wrong: 0.679 (899 right, 351 wrong)" in card
    assert "real images with their own vs another caption: 0.877" in card
    assert "realism, real vs generated images: 0.741" in card
    assert "by checker 'exact': 0.679 (n=899 right / 351 wrong)" in card  # the metrics table
    assert "colour+shape+position: 0.510 (n=672 right / 49 wrong)" in card


def test_card_says_when_the_generated_match_score_was_not_measured(tmp_path):
    folder = _folder_with(tmp_path, "emoji-32", {"generated_match_auroc": None, "generated_match_n_correct": 0,
                                                 "generated_match_n_wrong": 12})
    card = render_model_card(folder, [])
    assert "the evaluator (top-1 of 100 captions) calls right vs wrong: not measured (0 right, 12 wrong)" in card
