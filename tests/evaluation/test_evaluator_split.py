"""The emoji label split: the evaluator trains on one side, every emoji evaluation image comes from the other.

Known answers for the hash rule, the split and `emoji_reference` on made-up labels; then the shipped
evaluator's record against the prepared emoji data (skipped when the data is not prepared)."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from dalle.evaluation.emoji import R_PRECISION_DISTRACTORS, emoji_reference
from dalle.evaluation.emoji_data import (
    HELDOUT_FRACTION,
    HELDOUT_RULE,
    heldout_labels_sha256,
    is_heldout_label,
    label_split,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED_EVALUATOR = REPO / "checkpoints" / "evaluator" / "config.json"
EMOJI_ENTRIES = REPO / "data" / "emoji" / "emoji-32.json"


def _two_styles(n: int) -> list[str]:
    """Per-image labels of n made-up emoji, two images (styles) each."""
    return [f"emoji {k}" for k in range(n) for _ in range(2)]


def _record(labels: list[str], fraction: float) -> dict:
    return {"training": {"heldout_labels": {"fraction": fraction, "sha256": heldout_labels_sha256(labels, fraction)}}}


def test_heldout_rule_known_answers():
    # int(sha256(label)[:8 hex], 16) % 10000: "grinning face" -> 1976, "thumbs up" -> 8176
    assert is_heldout_label("grinning face") and not is_heldout_label("thumbs up")
    assert not is_heldout_label("grinning face", 0.1975) and is_heldout_label("grinning face", 0.1977)
    assert not is_heldout_label("thumbs up", 0.8175) and is_heldout_label("thumbs up", 0.8177)
    labels = _two_styles(50)
    assert len(label_split(labels, 0.0)[1]) == 0 and len(label_split(labels, 1.0)[0]) == 0


def test_label_split_partitions_images_and_keeps_both_styles_together():
    labels = _two_styles(1000)
    train, held = label_split(labels)
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(len(labels)))
    assert not {labels[i] for i in train} & {labels[i] for i in held}
    assert 0.25 < len(held) / len(labels) < 0.35  # about HELDOUT_FRACTION = 0.3 of 1000 labels
    held_labels = sorted({labels[i] for i in held})
    assert heldout_labels_sha256(labels) == hashlib.sha256("\n".join(held_labels).encode()).hexdigest()
    assert heldout_labels_sha256(labels, 0.5) != heldout_labels_sha256(labels)


def test_emoji_reference_draws_everything_from_heldout_labels():
    labels = _two_styles(400)
    info = _record(labels, 0.5)
    ref = emoji_reference(labels, info, 100, seed=3)
    train, held = label_split(labels, 0.5)
    assert np.array_equal(ref.heldout, held)
    assert not set(ref.half_a.tolist()) & set(ref.half_b.tolist())
    assert sorted(np.concatenate([ref.half_a, ref.half_b]).tolist()) == held.tolist()
    assert len(ref.prompts) == 100 and set(ref.prompts.tolist()) <= set(ref.half_a.tolist())
    assert ref.distractors.shape == (100, R_PRECISION_DISTRACTORS)
    assert set(ref.distractors.ravel().tolist()) <= set(held.tolist())
    assert all(labels[d] != labels[p] for p, row in zip(ref.prompts, ref.distractors) for d in row)
    used = np.concatenate([ref.half_a, ref.half_b, ref.prompts, ref.distractors.ravel()])
    assert not {labels[i] for i in used} & {labels[i] for i in train}
    again = emoji_reference(labels, info, 100, seed=3)
    assert np.array_equal(again.prompts, ref.prompts) and np.array_equal(again.distractors, ref.distractors)
    assert not np.array_equal(emoji_reference(labels, info, 100, seed=4).prompts, ref.prompts)
    assert len(emoji_reference(labels, info, 10_000, seed=3).prompts) == len(ref.half_a)  # capped by half A


def test_emoji_reference_refuses_a_missing_or_different_record():
    labels = _two_styles(400)
    with pytest.raises(ValueError, match="no held-out labels"):
        emoji_reference(labels, {"training": {}}, 10, 0)
    with pytest.raises(ValueError, match="differ"):
        gone = labels[int(label_split(labels, 0.5)[1][0])]  # one held-out label fewer than recorded
        emoji_reference([lab for lab in labels if lab != gone], _record(labels, 0.5), 10, 0)


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads(SHIPPED_EVALUATOR.read_text(encoding="utf-8"))


def test_shipped_evaluator_records_the_split(shipped):
    record = shipped["training"]["heldout_labels"]
    assert record["rule"] == HELDOUT_RULE and record["fraction"] == HELDOUT_FRACTION
    assert re.fullmatch(r"[0-9a-f]{64}", record["sha256"])
    data = shipped["training"]["data"]
    assert data["train_images"] + data["val_images"] == data["images"]
    assert data["val_images"] == record["images"] == shipped["training"]["val"]["images"]


@pytest.mark.skipif(not EMOJI_ENTRIES.is_file(), reason="emoji data not prepared (python -m dalle prepare emoji)")
def test_shipped_evaluator_never_trained_on_the_evaluation_labels(shipped):
    from dalle.data.emoji import STYLES

    entries = json.loads(EMOJI_ENTRIES.read_text(encoding="utf-8"))["images"]
    labels = [e["label"] for e in entries]
    record = shipped["training"]["heldout_labels"]
    assert heldout_labels_sha256(labels, record["fraction"]) == record["sha256"]  # the recorded split
    # the image counts it recorded are those of the styles whose packages it names (data of more styles holds more)
    styles = {s for s, spec in STYLES.items() if spec in shipped["training"]["data"]["source"]}
    seen = [lab for lab, e in zip(labels, entries) if e["style"] in styles]
    seen_train, seen_held = label_split(seen, record["fraction"])
    assert (len(seen_train), len(seen_held)) == (shipped["training"]["data"]["train_images"], record["images"])
    train, held = label_split(labels, record["fraction"])
    assert len({labels[i] for i in held}) == record["labels"]
    ref = emoji_reference(labels, shipped, 1000, seed=0)  # what `python -m dalle evaluate` uses
    used = np.concatenate([ref.half_a, ref.half_b, ref.prompts, ref.distractors.ravel()])
    assert not {labels[i] for i in used} & {labels[i] for i in train}
