"""Checkpoint discovery and a bounded LRU of loaded pipelines.

A checkpoint folder is any sub-folder of the checkpoints directory with a
`config.json`; a training run's folder (`runs/mine`) stands for its exports, named
after the run: `mine` (its checkpoint/) and `mine/min-15` (its snapshots/min-15). Folders whose config declares another `kind` (an evaluator, say)
or has no generator `model` section are skipped; folders that look like
generators but fail to load are reported as failed, with the one-line
`CheckpointError` message, so the UI can say which one and why.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dalle.checkpoint import PICKLE_SUFFIXES


@dataclass(frozen=True)
class CheckpointInfo:
    """A generator checkpoint folder that loaded at least once."""

    name: str
    path: Path
    config: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.config.get("step", 0) or 0)

    @property
    def images_seen(self) -> int:
        return int(self.config.get("images_seen", 0) or 0)

    @property
    def resolution(self) -> int:
        model = self.config.get("model")
        return int(model.get("resolution", 0) or 0) if isinstance(model, dict) else 0

    @property
    def dataset(self) -> str:
        ds = self.config.get("dataset")
        return str(ds.get("name", "")) if isinstance(ds, dict) else str(ds or "")


@dataclass
class Scan:
    """What a look at the checkpoints directory found."""

    root: Path
    found: dict[str, CheckpointInfo] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # folder name -> one-line reason
    skipped: dict[str, str] = field(default_factory=dict)  # folder name -> why it is not a generator

    @property
    def names(self) -> list[str]:
        return list(self.found)


def candidate_folders(root: Path) -> tuple[dict[str, Path], dict[str, str], dict[str, str]]:
    """Split the sub-folders of `root` into (generator candidates, unreadable, skipped).

    Hidden folders and the `.old` / `.tmp-` leftovers of atomic writes are ignored, as are
    folders without a config.json, unless they hold weights: those are reported, so weights
    uploaded without their config do not vanish silently.
    """
    candidates: dict[str, Path] = {}
    failed: dict[str, str] = {}
    skipped: dict[str, str] = {}
    if not root.is_dir():
        return candidates, failed, skipped
    for name, folder in _named_folders(root):
        if not (folder / "config.json").is_file():
            reason = _weights_without_config(folder)
            if reason:
                failed[name] = reason
            continue
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            failed[name] = f"{folder / 'config.json'}: not readable JSON ({str(e).splitlines()[0]})"
            continue
        if not isinstance(cfg, dict):
            failed[name] = f"{folder / 'config.json'}: not a JSON object"
        elif cfg.get("kind", "generator") != "generator":
            skipped[name] = f"kind is {cfg.get('kind')!r}, not a generator"
        elif not isinstance(cfg.get("model"), dict):
            skipped[name] = "no generator 'model' section in config.json"
        else:
            candidates[name] = folder
    return candidates, failed, skipped


RUN_CHECKPOINT, RUN_SNAPSHOTS = "checkpoint", "snapshots"  # what training writes under its --out folder


def _subfolders(folder: Path) -> list[Path]:
    """Sub-folders, sorted, without hidden ones and the `.old` leftovers of atomic writes."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not p.name.endswith(".old"))


def _run_folders(run: Path, name: str) -> list[tuple[str, Path]]:
    """A training run's exports, named after the run: `mine/checkpoint` -> "mine",
    `mine/snapshots/min-15` -> "mine/min-15"."""
    found = [(name, run / RUN_CHECKPOINT)] if (run / RUN_CHECKPOINT).is_dir() else []
    if (run / RUN_SNAPSHOTS).is_dir():
        found += [(f"{name}/{s.name}", s) for s in _subfolders(run / RUN_SNAPSHOTS)]
    return found


def _is_run(folder: Path) -> bool:
    return not (folder / "config.json").is_file() and (
        (folder / RUN_CHECKPOINT / "config.json").is_file() or (folder / RUN_SNAPSHOTS).is_dir())


def _named_folders(root: Path) -> list[tuple[str, Path]]:
    """(name in the app, folder) of every checkpoint candidate under `root`. A checkpoint folder is
    named after itself; a training run's folder (`runs/mine`, holding checkpoint/ and snapshots/) after
    the run, so several runs are not all called "checkpoint". `root` may itself be a run folder."""
    if _is_run(root):
        return _run_folders(root, root.name)
    named: list[tuple[str, Path]] = []
    for folder in _subfolders(root):
        named += _run_folders(folder, folder.name) if _is_run(folder) else [(folder.name, folder)]
    return named


def _weights_without_config(folder: Path) -> str | None:
    """Why a folder without config.json that still holds weights cannot load; None if it holds none."""
    if (folder / "state.json").is_file():  # a training run's resume state, not a checkpoint
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file())
    pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        return f"{pickles[0]}: pickle-based files are refused (they can run code); no config.json either"
    if any(p.suffix == ".safetensors" for p in files):
        return f"{folder / 'config.json'}: missing; the weights cannot be loaded without it"
    return None


def config_stamp(path: Path) -> int:
    """Modification time of a folder's config.json (changes when training re-exports it)."""
    try:
        return (path / "config.json").stat().st_mtime_ns
    except OSError:
        return -1


class PipelineCache:
    """Thread-safe LRU of loaded pipelines keyed by folder and config.json mtime.

    A checkpoint that training re-exports in place gets a new key and is reloaded.
    """

    def __init__(self, loader: Callable[[Path], Any], capacity: int = 4):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._loader = loader
        self.capacity = capacity
        self._items: OrderedDict[Path, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> Any:
        """The pipeline for `path`, loading it (and evicting the least recently used) if needed."""
        with self._lock:
            stamp = config_stamp(path)
            hit = self._items.get(path)
            if hit is not None and hit[0] == stamp:
                self._items.move_to_end(path)
                return hit[1]
            pipe = self._loader(path)
            self._items[path] = (stamp, pipe)
            self._items.move_to_end(path)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return pipe

    def __len__(self) -> int:
        return len(self._items)
