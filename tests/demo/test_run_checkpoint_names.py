"""A training run's exports are listed under the run's name, not as "checkpoint"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from demo.registry import candidate_folders
from demo.service import ModelService

GENERATOR = {"model": {"resolution": 32}}


def _config(folder: Path, config: dict = GENERATOR) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))


def test_runs_are_named_after_the_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for run in ("mine", "other"):
        _config(runs / run / "checkpoint")
        (runs / run / "state").mkdir()
    _config(runs / "mine" / "snapshots" / "min-15")
    _config(runs / "mine" / "snapshots" / "kimg-00100")
    _config(runs / "shapes-32")  # a plain checkpoint folder keeps its own name
    (runs / "evaluate" / "shapes-32").mkdir(parents=True)  # what `dalle evaluate` writes: not a checkpoint
    candidates, failed, skipped = candidate_folders(runs)
    assert candidates == {"mine": runs / "mine" / "checkpoint", "mine/kimg-00100": runs / "mine/snapshots/kimg-00100",
                          "mine/min-15": runs / "mine/snapshots/min-15", "other": runs / "other" / "checkpoint",
                          "shapes-32": runs / "shapes-32"}
    assert not failed and not skipped
    assert "checkpoint" not in candidates


def test_a_run_folder_as_the_root(tmp_path: Path) -> None:
    run = tmp_path / "mine"
    _config(run / "checkpoint")
    _config(run / "snapshots" / "min-15")
    assert set(candidate_folders(run)[0]) == {"mine", "mine/min-15"}


def test_the_app_lists_and_runs_a_run_by_its_name(checkpoints_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "mine"
    shutil.copytree(checkpoints_dir / "shapes-32", run / "checkpoint")
    shutil.copytree(checkpoints_dir / "shapes-32", run / "snapshots" / "min-15")
    service = ModelService(tmp_path / "runs", capacity=1)
    assert service.names == ["mine", "mine/min-15"]
    gen = service.generate("a small blue square in the center", 0, 0.7, 1, "mine/min-15")
    assert gen.checkpoint == "mine/min-15"
