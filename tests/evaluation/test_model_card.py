"""Model cards: the numbers in a checkpoint's README.md come from its metrics.json."""

import json
import shutil
from pathlib import Path

from dalle.evaluation.model_card import render_model_card

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def _folder_with(tmp_path, source: str, disc_update: dict):
    folder = tmp_path / source
    folder.mkdir()
    shutil.copy(CHECKPOINTS / source / "config.json", folder / "config.json")
    metrics = json.loads((CHECKPOINTS / source / "metrics.json").read_text(encoding="utf-8"))
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


def test_results_table_names_the_google_twitter_distance_apart_from_diversity():
    from dalle.evaluation.report import format_table, results_table

    metrics = json.loads((CHECKPOINTS / "emoji-32" / "metrics.json").read_text(encoding="utf-8"))
    metrics["diversity"] = {**metrics["diversity"], "generated": 0.1234}
    metrics["diversity"].pop("real", None)
    metrics["style_distance"] = {"google_twitter": 0.6543}
    metrics["discriminator"].update(generated_match_auroc=0.7777, generated_match_n_correct=9, generated_match_n_wrong=3)
    config = json.loads((CHECKPOINTS / "emoji-32" / "config.json").read_text(encoding="utf-8"))
    header, _, row, *targets = results_table([metrics], [config]).splitlines()
    assert targets[-1].startswith("- `emoji-32`: ") and "targets met" in targets[-1]
    assert "| seed diversity |" in header and "match AUROC, real / generated images" in header
    assert "| 0.123 (evaluator distance); Google-Twitter distance 0.654 |" in row
    assert row.endswith(f"| {metrics['discriminator']['match_auroc']:.3f} / 0.778 |")
    table = format_table(metrics)
    assert "generated 0.123\n" in table and "Google-Twitter distance of the same labels' real images" in table


def test_targets_are_met_at_the_bound_and_not_beyond():
    from dalle.evaluation.report import target_lines

    m = json.loads((CHECKPOINTS / "shapes-32" / "metrics.json").read_text(encoding="utf-8"))
    cell = m["alignment"]["generated"]["seen"]["single"]["colour_shape_position"]
    cell["accuracy"] = 0.95
    assert "colour+shape+position, seen 0.950 (met: >= 0.95)" in target_lines(m)[0]
    cell["accuracy"] = 0.9499
    assert "colour+shape+position, seen 0.950 (not met: >= 0.95)" in target_lines(m)[0]
    m["discriminator"]["generated_match_auroc"] = None
    assert "match AUROC, generated images - (not measured: >= 0.8)" in target_lines(m)[0]

    e = json.loads((CHECKPOINTS / "emoji-32" / "metrics.json").read_text(encoding="utf-8"))
    e["fid"]["generated"] = 3 * e["fid"]["floor_matched"]
    at_bound = target_lines(e)[0]
    assert "evaluator FID / floor 3.000 (met: <= 3)" in at_bound
    e["fid"]["generated"] = 3.01 * e["fid"]["floor_matched"]
    beyond = target_lines(e)[0]
    assert "evaluator FID / floor 3.010 (not met: <= 3)" in beyond

    def met(line: str) -> int:
        return int(line.split(": ", 1)[1].split(" of ")[0])
    assert met(at_bound) == met(beyond) + 1
    e["heldout_captions"]["generated"]["mean"] = 0.5
    assert "held-out captions, top 5 0.500 (met: >= 0.5)" in target_lines(e)[0]
    del e["heldout_captions"]
    assert "held-out captions, top 5 - (not measured: >= 0.5)" in target_lines(e)[0]


def test_card_quotes_the_seed_the_metrics_were_measured_with(tmp_path):
    folder = _folder_with(tmp_path, "shapes-32", {})
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    metrics["run"]["seed"] = 7
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    assert "(seed 7); the full record is `metrics.json`" in render_model_card(folder, [])


def test_card_shows_the_folders_grid_with_the_command_that_draws_it(tmp_path):
    from PIL import Image, PngImagePlugin

    folder = _folder_with(tmp_path, "emoji-32", {})
    assert "## Samples" not in render_model_card(folder, [])  # no grid.png: no section
    info = PngImagePlugin.PngInfo()
    for key, value in {"prompts": ["red heart", "flag: Japan"], "seed": 5, "seeds": [[5, 6, 7], [5, 6, 7]],
                       "truncation": 0.7, "checkpoint": "emoji-32", "step": 1}.items():
        info.add_text(key, json.dumps(value))
    Image.new("RGB", (8, 8)).save(folder / "grid.png", pnginfo=info)
    card = render_model_card(folder, [])
    assert "2 prompts × 3 seeds (seeds 5 to 7, ψ 0.7), one prompt per row: 'red heart', 'flag: Japan'." in card
    assert "![samples](grid.png)" in card
    assert ("python -m dalle sample --checkpoint checkpoints/emoji-32 --prompt 'red heart' --prompt 'flag: Japan' "
            "--seed 5 --truncation 0.7 --num-images 3 --out checkpoints/emoji-32/grid.png") in card
    Image.new("RGB", (8, 8)).save(folder / "grid.png")  # a grid without the metadata: nothing to say about it
    assert "## Samples" not in render_model_card(folder, [])
