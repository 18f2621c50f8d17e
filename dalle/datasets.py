"""The datasets this library knows, by name: how to open each one for training, its own options, and
how its checkpoints are evaluated, reported, described in a model card and judged in the playground.

A checkpoint's config.json names its dataset (`dataset.name`: "shapes", "emoji", "folder:<path>");
`kind_of` maps that name, or a `--data` value, to its `DatasetKind`. Everything that differs between
datasets is looked up here, never by comparing names elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from .data.base import TrainingData
from .evaluation import emoji as emoji_evaluation
from .evaluation import emoji_report
from .shapes import evaluate as shapes_evaluation
from .shapes import report as shapes_report
from .shapes.checker import exact_verdicts
from .shapes.training import ShapesOptions, ShapesTraining
from .shapes.world import DEFAULT_HOLDOUT, all_captions


def _open_emoji(spec: str, resolution: int, data_root: str | Path, options: None) -> TrainingData:
    from .data.emoji import load_emoji

    return load_emoji(Path(data_root) / "emoji", resolution)


def _open_folder(spec: str, resolution: int, data_root: str | Path, options: None) -> TrainingData:
    from .data.folder import load_folder

    return load_folder(spec.removeprefix("folder:"), resolution)


def _open_shapes(spec: str, resolution: int, data_root: str | Path, options: ShapesOptions | None) -> TrainingData:
    return ShapesTraining(resolution, options or ShapesOptions())


def _no_captions(dataset: dict) -> None:
    return None


def _shapes_captions(dataset: dict) -> list[str]:
    """Every caption a shapes checkpoint was trained on: the world's, less its recorded holdout."""
    holdout = dataset.get("holdout")
    return all_captions(DEFAULT_HOLDOUT if holdout is None else tuple(tuple(h) for h in holdout))


def _describe_folder(dataset: dict) -> str:
    return (f"The images and captions of the folder `{str(dataset.get('name', '')).removeprefix('folder:')}` "
            "(its metadata.jsonl), supplied by whoever trained this checkpoint.")


@dataclass(frozen=True)
class Evaluation:
    """How `python -m dalle evaluate` measures a checkpoint of the dataset (`dalle/evaluation/evaluate.py` runs
    `load`, then loads the checkpoint, then `measure`)."""

    load: Callable[[dict, str | Path, str | Path | None], Any]  # (config, data root, evaluator folder or None)
    # -> what `measure` needs besides the checkpoint (data, a learned evaluator); missing inputs fail here, early
    measure: Callable[..., tuple[dict, dict]]  # (pipe, config, loaded, num_samples, seed, psi, sweep, log)
    # -> (metrics.json's measured blocks, its "evaluator" record)
    measured: dict[str, str]  # metrics.json's "measured": what each block holds
    default_num_samples: int = 1000


@dataclass(frozen=True)
class Report:
    """How a metrics.json of the dataset reads; `dalle/evaluation/report.py` and `model_card.py` lay out the parts
    every dataset shares around these."""

    table: Callable[[dict], list[str]]  # metrics -> the text table's lines on alignment and diversity
    sweep_table: Callable[[dict], list[str]]  # metrics["truncation_sweep"] -> its lines of the text table
    summary: Callable[[dict], dict[str, float | None]]  # metrics -> headline columns, by name
    targets: tuple[tuple, ...]  # (what, summary column or function of the metrics, ">=" or "<=", bound)
    results_cells: Callable[[dict, dict], tuple[str, str]]  # (metrics, summary) -> README row's headline, diversity
    plot_panels: Callable[[dict], list[tuple]]  # sweep reference -> (title, [(label, row key)], [(label, value)])
    verdict: str  # who calls a generated image right or wrong, in the table ("checker 'exact'")
    card_judge: str  # the same in the model card's prose ("the analytic checker")
    card_notes: Callable[[dict], list[str]]  # metrics -> the model card's sentences on what the numbers mean


@dataclass(frozen=True)
class Checker:
    """A rule, no learned network, that says whether an image shows its prompt: the playground's common judge."""

    name: str  # what the playground calls its score
    reads: str  # which prompts it can judge ("a caption of the shapes world")
    verdicts: Callable[[list[str], np.ndarray], list[bool]]  # (P prompts, uint8 [P, N, R, R, 3]) -> a bool per
    # image whose prompt the rule can read, row by row


@dataclass(frozen=True)
class DatasetKind:
    name: str  # "shapes", "emoji" or "folder"
    open: Callable[[str, int, str | Path, object], TrainingData]  # (spec, resolution, data root, options) -> data
    options: type | None = None  # dataclass of the dataset's own `train` flags (None: it has none)
    describe: Callable[[dict], str] = _describe_folder  # config's dataset block -> the model card's Data paragraph
    evaluation: Evaluation | None = None  # None: `python -m dalle evaluate` cannot measure it
    report: Report | None = None  # present where `evaluation` is
    checker: Checker | None = None  # None: only the shipped evaluator can judge it, where it was trained on it
    captions: Callable[[dict], list[str] | None] = _no_captions  # config's dataset block -> every caption its
    # checkpoints were trained on, where the library can list them without the data (None: it cannot)


def _evaluation(parts: ModuleType) -> Evaluation:
    """The `Evaluation` of a dataset's evaluation module (`load`, `measure`, `MEASURED`)."""
    return Evaluation(load=parts.load, measure=parts.measure, measured=parts.MEASURED)


def _report(parts: ModuleType) -> Report:
    """The `Report` of a dataset's report module (`table_lines`, `sweep_lines`, `summary`, `TARGETS`,
    `results_cells`, `plot_panels`, `VERDICT`, `CARD_JUDGE`, `card_notes`)."""
    return Report(table=parts.table_lines, sweep_table=parts.sweep_lines, summary=parts.summary,
                  targets=parts.TARGETS, results_cells=parts.results_cells, plot_panels=parts.plot_panels,
                  verdict=parts.VERDICT, card_judge=parts.CARD_JUDGE, card_notes=parts.card_notes)


KINDS = {"shapes": DatasetKind("shapes", _open_shapes, ShapesOptions, describe=shapes_report.data_paragraph,
                               evaluation=_evaluation(shapes_evaluation), report=_report(shapes_report),
                               checker=Checker(name="shapes checker (share of images exactly right)",
                                               reads="a caption of the shapes world", verdicts=exact_verdicts),
                               captions=_shapes_captions),
         "emoji": DatasetKind("emoji", _open_emoji, describe=emoji_report.data_paragraph,
                              evaluation=_evaluation(emoji_evaluation), report=_report(emoji_report)),
         "folder": DatasetKind("folder", _open_folder)}


def kind_of(spec: str) -> DatasetKind:
    """The kind of a `--data` value or of a checkpoint's dataset name: "shapes", "emoji", a folder path or
    "folder:<path>"."""
    if spec in KINDS:
        return KINDS[spec]
    if spec.startswith("folder:") or Path(spec).is_dir():
        return KINDS["folder"]
    raise ValueError(f"unknown dataset {spec!r}: use 'shapes', 'emoji' or a folder with metadata.jsonl")


def known_kind(name: str | None) -> DatasetKind | None:
    """The kind of a dataset name recorded in a checkpoint's config.json ("shapes", "emoji", "folder:<path>"),
    or None for a name this library does not know (a dataset handed to the trainer as an object)."""
    if name in KINDS:
        return KINDS[name]
    return KINDS["folder"] if name and name.startswith("folder:") else None


def option_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """{flag field name: (dataset name, field)} for every dataset's own options."""
    return {f.name: (kind.name, f) for kind in KINDS.values() if kind.options
            for f in dataclasses.fields(kind.options)}


def open_training_data(spec: str, resolution: int, options: dict | None = None,
                       data_root: str | Path = "data") -> TrainingData:
    """Open `spec` for training at `resolution`. `options`: values of dataset option fields (any dataset's);
    those of another dataset are refused by name, unless they are that dataset's defaults."""
    kind = kind_of(spec)
    given = dict(options or {})
    foreign = {name: ds for name, (ds, f) in option_fields().items()
               if ds != kind.name and name in given and given[name] != _default(f)}
    if foreign:
        name, ds = next(iter(foreign.items()))
        raise ValueError(f"--{name.replace('_', '-')} is an option of the {ds} dataset, not of {spec!r}")
    own = None
    if kind.options:
        names = {f.name for f in dataclasses.fields(kind.options)}
        own = kind.options(**{k: v for k, v in given.items() if k in names})
    return kind.open(spec, resolution, data_root, own)


def open_checkpoint_data(config: dict, data_root: str | Path = "data") -> TrainingData:
    """The data a checkpoint was trained on (its config.json's dataset name), opened at its resolution with the
    dataset options its run recorded ("train")."""
    name = (config.get("dataset") or {}).get("name")
    if known_kind(name) is None:
        raise ValueError(f"the checkpoint's dataset {name!r} is not one this library can open")
    recorded = config.get("train") or {}
    options = {k: v for k, (ds, _) in option_fields().items() if ds == known_kind(name).name and k in recorded
               for v in [recorded[k]]}
    return open_training_data(name, int(config["model"]["resolution"]), options, data_root)


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default
