"""The emoji model card reads like the shapes card: a short headline, the key numbers with their targets, the full
table folded under a details section; and one sentence, drawn from the metrics, on seeds that change little."""

import json
import shutil
from pathlib import Path

from dalle.evaluation.model_card import render_model_card
from dalle.evaluation.report import format_table, targets

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def metrics_section(card: str) -> tuple[str, str]:
    """(the Metrics section before its folded details, the folded part)."""
    section = card.split("## Metrics\n", 1)[1].split("\n### ", 1)[0]
    opened, folded = section.split("<details>", 1)
    assert "</details>" in folded
    return opened, folded.split("</details>", 1)[0]


def emoji_metrics() -> dict:
    return json.loads((CHECKPOINTS / "emoji-32" / "metrics.json").read_text(encoding="utf-8"))


def test_the_emoji_card_opens_with_a_headline_and_its_targets_and_folds_the_table():
    card = render_model_card(CHECKPOINTS / "emoji-32", [])  # in memory: nothing is written
    opened, folded = metrics_section(card)
    m = emoji_metrics()
    assert "**Headline** (generated / real): R-precision " in opened
    for text, _ in targets(m):
        assert f"- {text}\n" in opened
    assert "FID / floor" in opened
    assert format_table(m) in folded and "<summary>" in folded
    assert "KID" not in opened and "memorisation" not in opened and "truncation sweep" not in opened
    assert len([line for line in opened.splitlines() if line.strip()]) <= len(targets(m)) + 4, opened  # headline, targets, notes


def test_the_shapes_card_has_the_same_shape():
    opened, folded = metrics_section(render_model_card(CHECKPOINTS / "shapes-32", []))
    assert "**Headline** (generated / real): colour+shape+position seen " in opened and "**Targets**" in opened
    assert "truncation sweep" in folded and "truncation sweep" not in opened


def test_the_emoji_card_says_seeds_change_little_from_its_metrics():
    m = emoji_metrics()
    distances = m["style_distance"]  # the mean over a label's pairs of styles where measured, else Google-Twitter
    spread, styles = m["diversity"]["generated"], distances.get("between_styles", distances.get("google_twitter"))
    assert spread / styles < 0.5  # the shipped checkpoint: its samples' columns look alike
    opened, _ = metrics_section(render_model_card(CHECKPOINTS / "emoji-32", []))
    (line,) = [line for line in opened.splitlines() if line.startswith("Seeds change little")]
    assert f"differ by {spread:.3f} between seeds" in line and f"{spread / styles:.2f} of the {styles:.3f}" in line


def test_no_seed_sentence_when_seeds_spread_as_far_as_the_two_styles(tmp_path):
    folder = tmp_path / "emoji-32"
    folder.mkdir()
    shutil.copy(CHECKPOINTS / "emoji-32" / "config.json", folder / "config.json")
    m = emoji_metrics()
    m["diversity"]["generated"] = 0.6 * m["style_distance"]["google_twitter"]
    (folder / "metrics.json").write_text(json.dumps(m), encoding="utf-8")
    assert "Seeds change little" not in render_model_card(folder, [])
