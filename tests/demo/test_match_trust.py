"""The notes under a result say how far the text-match column can be trusted, from metrics.json."""

import json
from pathlib import Path

from demo.card_tab import TRUSTED_MATCH_AUROC, match_trust


def write_metrics(folder: Path, discriminator: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"discriminator": discriminator}))
    return folder


def test_weak_and_useful_match_scores_are_named(tmp_path):
    weak = match_trust(write_metrics(tmp_path / "weak", {"generated_match_auroc": 0.679}))
    assert "AUROC 0.68" in weak and "weak hint" in weak
    useful = match_trust(write_metrics(tmp_path / "useful", {"generated_match_auroc": TRUSTED_MATCH_AUROC}))
    assert "AUROC 0.80" in useful and "useful guide" in useful and "weak" not in useful


def test_no_measurement_no_line(tmp_path):
    assert match_trust(tmp_path / "missing") == ""
    assert match_trust(write_metrics(tmp_path / "old", {"match_auroc": 0.9})) == ""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    assert match_trust(tmp_path / "bad") == ""


def test_shipped_shapes_checkpoint_gets_its_measured_line():
    folder = Path(__file__).resolve().parents[2] / "checkpoints" / "shapes-32"
    auroc = json.loads((folder / "metrics.json").read_text())["discriminator"]["generated_match_auroc"]
    line = match_trust(folder)
    assert f"AUROC {auroc:.2f}" in line
    assert ("weak hint" in line) == (auroc < TRUSTED_MATCH_AUROC)
