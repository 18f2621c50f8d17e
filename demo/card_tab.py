"""The model card of a checkpoint folder: config facts, metrics.json, README.md, and the
training curves of log.csv (as long-format DataFrames for `gr.LinePlot`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from dalle.rerank import DEFAULT_SCORE, chosen_score

from .registry import CheckpointInfo

MAX_TEXT_BYTES = 200_000  # README / metrics larger than this are cut
LOSSES = ["loss_d", "loss_g", "loss_joint_d", "loss_joint_g", "recon"]
REGULARISERS = ["r1", "kl"]
ACCURACIES = ["d_real_acc", "match_acc"]
PLOT_COLUMNS = ["step", "series", "value"]


TRUSTED_MATCH_AUROC = 0.8  # below this, the text-match score on generated images is only a hint


def match_trust(folder: Path) -> str:
    """One line on where the text-match column comes from and how far it can be trusted for this checkpoint's own
    images: the AUROC of the match score against the checker's (or evaluator's) verdict on generated images, from
    its metrics.json. "" when the checkpoint has no such measurement."""
    try:
        disc = json.loads((folder / "metrics.json").read_text()).get("discriminator") or {}
        auroc = float(disc["generated_match_auroc"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""
    verdict = ("a useful guide" if auroc >= TRUSTED_MATCH_AUROC
               else "only a weak hint: an image can score high and still be wrong")
    if disc.get("match_source") == "judge":
        source = ("Text match comes from the judge, a network trained on real images only that the generator "
                  "never trained against")
        own = disc.get("discriminator_generated_match_auroc")
        source += (f" (the discriminator's own match head, which it did train against: AUROC {own:.2f})"
                   if isinstance(own, (int, float)) else "")
        return (f"{source}. On this checkpoint's own images it separates right from wrong images with AUROC "
                f"{auroc:.2f} (0.5 = chance; `python -m dalle evaluate`): {verdict}.")
    return (f"Text match on this checkpoint's own images separates right from wrong images with AUROC "
            f"{auroc:.2f} (0.5 = chance; `python -m dalle evaluate`): {verdict}.")


def realism_trust(folder: Path) -> str:
    """One line on what the realism column says about this checkpoint's own images: the AUROC of realism
    against the checker's (or evaluator's) verdict on generated images, from its metrics.json; "" without one."""
    try:
        disc = json.loads((folder / "metrics.json").read_text()).get("discriminator") or {}
        auroc = float(disc["generated_realism_auroc"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""
    verdict = ("a useful guide to which image is right" if auroc >= TRUSTED_MATCH_AUROC
               else "it does not tell a right image from a wrong one: read it as how real an image looks")
    return (f"Realism on this checkpoint's own images separates right from wrong images with AUROC {auroc:.2f} "
            f"(0.5 = chance; `python -m dalle evaluate`): {verdict}.")


def rerank_choice(folder: Path) -> tuple[str, str]:
    """(the score best-of-N keeps images by, one line saying why) for a checkpoint: the score whose best of 4
    was right most often in its metrics.json ("best_of", measured by `python -m dalle evaluate`); without a
    measurement, `DEFAULT_SCORE` and no line."""
    try:
        best_of = json.loads((folder / "metrics.json").read_text()).get("best_of")
        score = chosen_score(best_of)
        part = best_of["parts"]["all"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return DEFAULT_SCORE, ""
    if score is None:
        return DEFAULT_SCORE, ""
    others = ", ".join(f"{name} {v['4']:.2f}" for name, v in part["by_score"].items() if name != score)
    return score, (f"Best of N keeps the images with the highest {score}: on `python -m dalle evaluate`'s "
                   f"{part['prompts']} prompts at ψ {best_of['psi']}, the best of 4 by it was right "
                   f"{part['by_score'][score]['4']:.2f} of the time, against {part['best_of_1']:.2f} for the first "
                   f"seed ({others}; any of 4: {part['oracle']['4']:.2f}).")


@dataclass
class ModelCard:
    name: str
    config: dict[str, Any]
    headline: str  # Markdown: the README results table's row for this checkpoint
    summary: str  # Markdown
    metrics: str  # Markdown
    readme: str  # Markdown (front matter removed)
    log: pd.DataFrame  # wide: one row per logged step
    samples: Image.Image | None  # samples.png
    sample_prompts: list[str]  # its rows' prompts (from its PNG metadata), [] when unknown

    def curves(self, columns: list[str]) -> pd.DataFrame:
        """Long format (step, series, value) of the given log columns, NaNs dropped."""
        cols = [c for c in columns if c in self.log.columns]
        if self.log.empty or not cols:
            return pd.DataFrame(columns=PLOT_COLUMNS)
        long = self.log.melt(id_vars="step", value_vars=cols, var_name="series", value_name="value")
        return long.dropna()[PLOT_COLUMNS].reset_index(drop=True)


def _read_text(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        data = f.read(MAX_TEXT_BYTES + 1)
    text = data[:MAX_TEXT_BYTES].decode("utf-8", errors="replace")
    return text + ("\n\n*(cut: file too long)*" if len(data) > MAX_TEXT_BYTES else "")


def strip_front_matter(text: str) -> str:
    return re.sub(r"\A---\s*\n.*?\n---\s*\n", "", text, count=1, flags=re.S)


def read_log(path: Path) -> pd.DataFrame:
    """log.csv as numbers (blank cells -> NaN); empty frame if absent or unreadable."""
    if not path.is_file():
        return pd.DataFrame(columns=["step"])
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame(columns=["step"])
    if "step" not in df.columns:
        return pd.DataFrame(columns=["step"])
    df = df.apply(pd.to_numeric, errors="coerce")
    return df.dropna(subset=["step"]).sort_values("step").reset_index(drop=True)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix or "value", value)]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = json.dumps(value)
    else:
        text = str(value)
    text = text if len(text) <= 120 else text[:119] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[tuple[str, Any]]) -> str:
    return "| field | value |\n|---|---|\n" + "\n".join(f"| {_cell(k)} | {_cell(v)} |" for k, v in rows)


def _short(value: Any) -> str | None:
    """A compact rendering of a config value, or None when it is too long for a table cell
    (the full config.json is shown separately)."""
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    if isinstance(value, dict) and len(value) <= 6 and all(isinstance(v, (str, int, float)) for v in value.values()):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    text = json.dumps(value)
    return text if len(text) <= 100 else None


def summary_markdown(info: CheckpointInfo) -> str:
    cfg = info.config
    model = cfg.get("model", {}) if isinstance(cfg.get("model"), dict) else {}
    compute = cfg.get("training_compute", {}) if isinstance(cfg.get("training_compute"), dict) else {}
    dataset = cfg.get("dataset")
    rows: list[tuple[str, Any]] = [("step", f"{info.step:,}"),
                                   ("images seen", f"{info.images_seen:,} ({info.images_seen / 1000:,.1f} k)")]
    if compute:
        hours = float(compute.get("wall_time_s", 0) or 0) / 3600
        rows.append(("training compute", f"{hours:.2f} h on {compute.get('device', '?')}, "
                                         f"{compute.get('world_size', 1)} process(es)"))
    rows += [("resolution", f"{model.get('resolution', '?')} px"), ("text encoder", model.get("text_encoder", "?"))]
    if isinstance(dataset, dict):
        for k, v in dataset.items():
            shown = _short(v)
            if shown is not None:
                rows.append(("dataset" if k == "name" else f"dataset {k.replace('_', ' ')}", shown))
    elif dataset:
        rows.append(("dataset", dataset))
    return table(rows)


def headline_markdown(info: CheckpointInfo, metrics: Any) -> str:
    """The checkpoint's row of the README's results table (same columns), under its name."""
    from dalle.evaluation.report import results_table

    title = f"## {info.name}\n\n"
    if metrics is None:
        return title + "*No metrics.json in this checkpoint: no headline numbers (`python -m dalle evaluate`).*"
    try:
        return title + results_table([metrics], [info.config])
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError):
        return title + "*metrics.json lacks the headline numbers (re-run `python -m dalle evaluate`).*"


def _read_samples(path: Path) -> tuple[Image.Image | None, list[str]]:
    """samples.png (RGB) and the prompts of its rows from its PNG text, if it has them."""
    if not path.is_file():
        return None, []
    try:
        with Image.open(path) as im:
            if im.width * im.height > 4096 * 4096:
                return None, []
            prompts = json.loads(getattr(im, "text", {}).get("prompts", "[]"))
            return im.convert("RGB"), [str(p) for p in prompts] if isinstance(prompts, list) else []
    except (OSError, Image.DecompressionBombError, json.JSONDecodeError):
        return None, []


def read_card(info: CheckpointInfo) -> ModelCard:
    folder = info.path
    metrics_text = _read_text(folder / "metrics.json")
    parsed = None
    if metrics_text is None:
        metrics = "*No metrics.json in this checkpoint.*"
    else:
        try:
            parsed = json.loads(metrics_text)
            metrics = table(_flatten(parsed))
        except json.JSONDecodeError as e:
            metrics = f"*metrics.json is not valid JSON ({e}).*"
    readme = _read_text(folder / "README.md")
    samples, prompts = _read_samples(folder / "samples.png")
    return ModelCard(name=info.name, config=info.config, headline=headline_markdown(info, parsed),
                     summary=summary_markdown(info), metrics=metrics,
                     readme=strip_front_matter(readme) if readme else "*No README.md (model card) in this checkpoint.*",
                     log=read_log(folder / "log.csv"), samples=samples, sample_prompts=prompts)
