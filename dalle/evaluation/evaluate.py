"""`python -m dalle evaluate CHECKPOINT`: measure a checkpoint and write CHECKPOINT/metrics.json.

The dataset named in the checkpoint's config.json picks its evaluation from the dataset registry
(`dalle/datasets.py`, `DatasetKind.evaluation`):

* shapes (`dalle/shapes/evaluate.py`): analytic compositional accuracy (`dalle/shapes/checker.py`) on seen
  and held-out prompts, with the same checker on real renders of the same scenes as the ceiling;
  pixel-space diversity.
* emoji (`dalle/evaluation/emoji.py`): R-precision, FID/KID, memorisation and diversity in the feature
  space of the shipped evaluator (`checkpoints/evaluator`), each with a reference value measured on real
  images, from the labels the evaluator never trained on.
* both: discriminator AUROCs (`dalle/evaluation/sampling.py`: match, true vs mismatched caption on real
  images; match on generated images, correct vs wrong by the dataset's verdict; realism, real vs
  generated) and a truncation sweep (table rows + truncation.png).

Every number is measured in the run; docs/evaluation.md defines each one. This module adds the record
around them: which checkpoint, which run settings, which code.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from ..checkpoint import read_config
from ..datasets import KINDS, known_kind
from ..pipeline import TextToImagePipeline
from .code_version import code_record
from .metrics_io import write_metrics
from .sampling import EVALUATION_VERSION, PSIS

METRICS_FORMAT = 1


def plot_path(metrics_path: Path) -> Path:
    """truncation.png next to metrics.json; `<stem>-truncation.png` for other names (no clashes in one folder)."""
    if metrics_path.name == "metrics.json":
        return metrics_path.with_name("truncation.png")
    return metrics_path.with_name(metrics_path.stem + "-truncation.png")


def evaluate_checkpoint(checkpoint: str | Path, num_samples: int | None = None, seed: int = 0,
                        out: str | Path | None = None, truncation: float = 1.0,
                        evaluator_dir: str | Path | None = None, data_root: str | Path = "data",
                        sweep: bool = True, plot: bool = True, threads: int = 1, text_encoder=None,
                        evaluate_as: str | None = None, log=print) -> dict:
    """Evaluate a checkpoint folder; write metrics.json (default CHECKPOINT/metrics.json) and truncation.png.

    `text_encoder`: an already loaded `TextEncoder` to reuse (when evaluating several checkpoints);
    it is used only if its name matches the checkpoint's encoder. `evaluate_as`: measure with another dataset's
    evaluation than the one the checkpoint trained on ("emoji" for a folder of emoji, such as
    `prepare emoji-folder` writes); the metrics record it.

    Raises CheckpointError / FileNotFoundError / ValueError with one-line messages.
    """
    start = time.time()
    date = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if threads > 0:
        torch.set_num_threads(threads)
    checkpoint = Path(checkpoint)
    config = read_config(checkpoint)
    trained_on = (config.get("dataset") or {}).get("name")
    dataset = evaluate_as or trained_on
    kind = known_kind(dataset)
    evaluation = kind.evaluation if kind else None
    if evaluation is None:
        names = " and ".join(repr(k.name) for k in KINDS.values() if k.evaluation)
        where = "--as" if evaluate_as else f"{checkpoint / 'config.json'}: dataset"
        raise ValueError(f"{where} {dataset!r} has no evaluation (only {names}; a folder of emoji: --as emoji)")
    if num_samples is None:
        num_samples = evaluation.default_num_samples
    if num_samples < 2:
        raise ValueError("--num-samples must be at least 2")
    loaded = evaluation.load(config, data_root, evaluator_dir)  # fail early, before the models are loaded

    pipe = TextToImagePipeline.from_pretrained(checkpoint, device="cpu", text_encoder=text_encoder)
    config = pipe.config  # the config read together with the weights (live checkpoints get replaced)
    results, evaluator_info = evaluation.measure(pipe, config, loaded, num_samples, seed, truncation, sweep, log)
    metrics = {
        "kind": "metrics",
        "format_version": METRICS_FORMAT,
        "dataset": dataset,
        **({"trained_on": trained_on} if dataset != trained_on else {}),
        "checkpoint": {"path": str(checkpoint), "name": config.get("name", checkpoint.name),
                       "step": config.get("step"), "images_seen": config.get("images_seen"),
                       "resolution": config["model"]["resolution"], "text_encoder": config["model"]["text_encoder"]},
        "run": {"num_samples": num_samples, "seed": seed, "truncation": truncation,
                "truncation_sweep": list(PSIS) if sweep else [],
                "evaluation_version": EVALUATION_VERSION, "code": code_record(), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "device": f"CPU ({platform.machine()})",
                "date": date},
        "evaluator": evaluator_info,
        "measured": dict(evaluation.measured),
        **results,
    }
    metrics["run"]["wall_time_s"] = round(time.time() - start, 1)
    path = Path(out) if out is not None else checkpoint / "metrics.json"
    if plot and sweep:
        from .report import plot_truncation

        png = plot_path(path)
        metrics["run"]["plot"] = str(png)
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_truncation(metrics, png)
    metrics["run"]["wall_time_s"] = round(time.time() - start, 1)
    write_metrics(path, metrics)
    return metrics


__all__ = ["evaluate_checkpoint", "PSIS"]
