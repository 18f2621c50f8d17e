"""Issue point 15: evaluating an emoji checkpoint whose data is not prepared names the exact command that
prepares it, at the checkpoint's resolution (`prepare emoji` alone builds 64 px)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from dalle.config import FORMAT_VERSION, ModelConfig
from dalle.evaluation.evaluate import evaluate_checkpoint

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def emoji_checkpoint(folder: Path, resolution: int) -> Path:
    """A checkpoint folder with only a config.json of an emoji checkpoint at `resolution` px: enough to fail
    before any weights are read."""
    folder.mkdir()
    config = {"format_version": FORMAT_VERSION, "name": folder.name, "dataset": {"name": "emoji"},
              "model": ModelConfig(resolution=resolution).to_dict()}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.mark.skipif(not (CHECKPOINTS / "evaluator" / "config.json").is_file(), reason="no shipped evaluator")
@pytest.mark.parametrize("resolution", [32, 128])
def test_missing_emoji_data_names_the_command_for_the_checkpoints_resolution(tmp_path, monkeypatch, resolution):
    ckpt = emoji_checkpoint(tmp_path / f"emoji-{resolution}", resolution)
    monkeypatch.chdir(tmp_path)  # the default data root, ./data, holds nothing here
    with pytest.raises(FileNotFoundError) as err:
        evaluate_checkpoint(ckpt, evaluator_dir=CHECKPOINTS / "evaluator", log=lambda *_: None)
    assert f"run `python -m dalle prepare emoji --resolution {resolution}` first" in str(err.value)

    elsewhere = tmp_path / "my data"
    with pytest.raises(FileNotFoundError) as err:
        evaluate_checkpoint(ckpt, evaluator_dir=CHECKPOINTS / "evaluator", data_root=elsewhere, log=lambda *_: None)
    command = f"python -m dalle prepare emoji --resolution {resolution} --data-root {shlex.quote(str(elsewhere))}"
    assert f"run `{command}` first" in str(err.value)


@pytest.mark.skipif(not (CHECKPOINTS / "evaluator" / "config.json").is_file(), reason="no shipped evaluator")
def test_a_folder_checkpoint_is_measured_as_emoji_only_when_asked(tmp_path, monkeypatch):
    ckpt = emoji_checkpoint(tmp_path / "fluent", 64)
    config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    config["dataset"] = {"name": "folder:data/emoji-fluent"}
    (ckpt / "config.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="has no evaluation .*--as emoji"):
        evaluate_checkpoint(ckpt, evaluator_dir=CHECKPOINTS / "evaluator", log=lambda *_: None)
    with pytest.raises(ValueError, match="--as 'nothing' has no evaluation"):
        evaluate_checkpoint(ckpt, evaluator_dir=CHECKPOINTS / "evaluator", evaluate_as="nothing", log=lambda *_: None)
    with pytest.raises(FileNotFoundError, match="prepare emoji --resolution 64"):  # on to the emoji evaluation
        evaluate_checkpoint(ckpt, evaluator_dir=CHECKPOINTS / "evaluator", evaluate_as="emoji", log=lambda *_: None)
