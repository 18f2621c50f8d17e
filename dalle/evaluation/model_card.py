"""Model cards: a checkpoint's README.md, rendered from its config.json and metrics.json.

Numbers come from those files only; the one thing a person supplies is the list of
failure modes, written after looking at the checkpoint's samples.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from PIL import Image

from ..checkpoint import read_config
from ..judge import DISCRIMINATOR_TRUNK
from ..datasets import known_kind
from ..presets import command_note
from .metrics_io import read_metrics
from .report import card_notes, format_table, headline, targets


def _data_paragraph(dataset: dict) -> str:
    """The card's Data paragraph, written by the dataset's kind in the registry (`DatasetKind.describe`)."""
    kind = known_kind(dataset.get("name"))
    if kind is None:
        return f"The dataset `{dataset.get('name')}`, handed to the trainer by its caller; this card cannot say more."
    return kind.describe(dataset)


def _history_lines(history: list[dict]) -> list[str]:
    """One line per start from another checkpoint, and per resume that changed a setting (recorded by the trainer)."""
    lines = []
    for h in history:
        if "init_from" in h:
            added = "".join(f", D's new `{name}` head" for name in h.get("added", []))
            by = f", {h['from_kimg']} kimg, trained by `{h['from_command']}`" if h.get("from_command") else ""
            lines.append(f"- started from the weights of `{h['init_from']}` (its step {h.get('from_step', 0):,}{by}), "
                         f"with fresh optimizer state{added}")
            continue
        changes = ", ".join(f"{k} {'not set' if old is None else old} → {new}" for k, (old, new) in h["changed"].items())
        lines.append(f"- resumed at step {h['step']:,} ({h['kimg']} kimg) with changed settings: {changes}")
    return lines


def _command_line(recorded: str, continued: bool, resolution: int) -> str:
    """The Training section's command bullet: the plain preset command where the recorded flags only repeat the
    preset's current values (`dalle.presets.command_note`), with a note saying so."""
    shown, note = command_note(recorded, resolution)
    return (f"- {'continued' if continued else 'trained from scratch'} with `{shown}`"
            + (f" ({note})" if note else ""))


def _headline_lines(metrics: dict) -> list[str]:
    """The Metrics section's opening: the headline numbers (as in the README's results), each target with its
    value, and the dataset's own sentences on what the numbers mean (its report's `card_notes`)."""
    head, diversity = headline(metrics)
    found = targets(metrics)
    lines = [f"**Headline** (generated / real): {head}. Seed diversity: {diversity}.", "",
             f"**Targets**: {sum(ok for _, ok in found)} of {len(found)} met.", ""]
    lines += [f"- {text}" for text, _ in found] + [""]
    for note in card_notes(metrics):
        lines += [note, ""]
    return lines


def trust_lines(metrics: dict) -> list[str]:
    """Markdown lines on what the playground's match and realism scores are worth, from metrics["discriminator"]."""
    disc = metrics.get("discriminator") or {}
    kind = known_kind(metrics.get("dataset"))
    judge = kind.report.card_judge if kind and kind.report else "the dataset's verdict"

    def f(v) -> str:
        return "not measured" if v is None else f"{v:.3f}"

    if disc.get("match_source") == "judge":
        what = ("a fresh match head on the discriminator's frozen trunk" if (disc.get("judge") or {}).get("trunk")
                == DISCRIMINATOR_TRUNK else "a small image/text network of its own")
        source = (f"Text match comes from this checkpoint's judge (`judge.safetensors`, `dalle/judge.py`): {what}, "
                  "trained on real images only, which the generator never trained against. Realism comes from the "
                  "discriminator.")
    else:
        source = "Both scores come from the discriminator the generator trained against."
    lines = [f"{source} AUROC: 0.5 is chance, 1.0 a perfect ranking.", "",
             f"- text match, real images with their own vs another caption: {f(disc.get('match_auroc'))}"]
    if "discriminator_generated_match_auroc" in disc:
        lines.append(f"- the discriminator's own match head, which the generator trained against, for comparison: "
                     f"real {f(disc['discriminator_match_auroc'])}, generated "
                     f"{f(disc['discriminator_generated_match_auroc'])}")
    if "generated_match_auroc" in disc:
        lines.append(f"- text match, generated images that {judge} calls right vs wrong: "
                     f"{f(disc['generated_match_auroc'])} ({disc['generated_match_n_correct']} right, "
                     f"{disc['generated_match_n_wrong']} wrong); this is the case the playground's "
                     "match column faces")
    else:
        lines.append("- text match on generated images: not measured by this metrics.json")
    lines.append(f"- realism, real vs generated images: {f(disc.get('realism_auroc'))}")
    if "generated_realism_auroc" in disc:
        lines.append(f"- realism, generated images that {judge} calls right vs wrong: "
                     f"{f(disc['generated_realism_auroc'])}; this is the case the playground's realism column faces")
    if "generated_realism_rank_correlation" in disc:
        lines.append("- realism against the evaluator's cosine between a generated image and its caption, rank "
                     f"correlation (Spearman): {f(disc['generated_realism_rank_correlation'])}")
    best_of = metrics.get("best_of")
    if best_of:
        part, chosen = best_of["parts"]["all"], best_of["chosen"]
        lines.append(f"- best of N (the playground's reranking, ψ {best_of['psi']}): of {part['prompts']} prompts, "
                     f"the first seed is right for {f(part['best_of_1'])}; the best of 4 by {chosen}, the score the "
                     f"playground uses, for {f(part['by_score'][chosen]['4'])}; "
                     + "; ".join(f"by {name} {f(v['4'])}" for name, v in part["by_score"].items() if name != chosen)
                     + f"; any of the 4 for {f(part['oracle']['4'])}")
    return lines


GRID_FILE = "grid.png"  # a sample grid kept in the checkpoint folder for its card (rows: prompts, columns: seeds)


def grid_lines(folder: Path) -> list[str]:
    """The card's Samples section: `grid.png` of the folder, with its prompts, seeds and ψ read from the PNG's own
    metadata and the command that draws it again; nothing when the folder has no grid."""
    path = folder / GRID_FILE
    if not path.is_file():
        return []
    with Image.open(path) as im:
        text = dict(getattr(im, "text", {}))
    try:
        prompts, seed, psi = json.loads(text["prompts"]), json.loads(text["seed"]), json.loads(text["truncation"])
        columns = len(json.loads(text["seeds"])[0])
    except (KeyError, ValueError, IndexError, TypeError):
        return []  # a grid without the metadata `python -m dalle sample` writes: nothing to say about it
    command = ("python -m dalle sample --checkpoint checkpoints/" + folder.name
               + "".join(f" --prompt {shlex.quote(p)}" for p in prompts)
               + f" --seed {seed} --truncation {psi} --num-images {columns} --out checkpoints/{folder.name}/{GRID_FILE}")
    return ["## Samples",
            f"{len(prompts)} prompts × {columns} seeds (seeds {seed} to {seed + columns - 1}, ψ {psi}), one prompt "
            f"per row: {', '.join(repr(p) for p in prompts)}.", "", f"![samples]({GRID_FILE})", "",
            "Drawn with:", "", "```bash", command, "```", ""]


def render_model_card(folder: str | Path, failure_modes: list[str]) -> str:
    """The Markdown card of a checkpoint folder from its config.json and (if present) metrics.json."""
    folder = Path(folder)
    cfg = read_config(folder)
    ds = cfg.get("dataset", {})
    metrics_path = folder / "metrics.json"
    metrics = read_metrics(metrics_path) if metrics_path.exists() else None
    compute = cfg.get("training_compute", {})
    history = cfg.get("training_history") or []
    continued = any("init_from" in h for h in history)  # its first steps were another checkpoint's
    name = cfg.get("name", folder.name)
    holdout = ds.get("holdout")
    parts = [
        f"# {name}",
        "",
        f"A {cfg['model']['resolution']} px text-to-image GAN checkpoint of this project "
        f"(text encoder `{cfg['text_encoder']}`). Load it with "
        f"`TextToImagePipeline.from_pretrained(\"checkpoints/{name}\")` or pick it in the playground.",
        "",
        "## Data",
        _data_paragraph(ds),
        "",
        "## Holdout",
        (f"No training image contains: {', '.join(' '.join(h) for h in holdout)}. "
         "The held-out column of the metrics measures these combinations.") if holdout else
        "None: every image of the dataset was used for training.",
        "",
        "## Training",
        *([_command_line(compute["command"], continued, cfg["model"]["resolution"])] if compute.get("command") else []),
        f"- steps: {cfg['step']:,}; images seen: {cfg['images_seen']:,}",
        f"- hardware: {compute.get('device', 'unknown')}; world size {compute.get('world_size', 1)}",
        f"- wall time of the training steps: {compute.get('wall_time_s', 0) / 3600:.2f} h",
        f"- batch size {cfg['train']['batch_size']}, lr G/D {cfg['train']['lr_g']}/{cfg['train']['lr_d']}, "
        f"R1 γ {cfg['train']['r1_gamma']}, augmentation `{cfg['train']['augment'] or 'none'}`, reconstruction "
        f"`{cfg['train'].get('recon', 'none')}` ({cfg['train'].get('recon_loss', 'l1')}, weight "
        f"{cfg['train'].get('recon_weight', 0)}), warm-up {cfg['train'].get('warmup_kimg', 0)} kimg",
        *_history_lines(history),
        "- the shipped generator is the EMA of the training generator, stored in fp16",
        "",
        *grid_lines(folder),
        "## Metrics",
    ]
    if metrics:
        parts += [f"Measured by `python -m dalle evaluate checkpoints/{name} --out checkpoints/{name}/metrics.json` "
                  f"(seed {metrics.get('run', {}).get('seed', 0)}); the full record is `metrics.json`.", "",
                  *_headline_lines(metrics),
                  "<details>", "<summary>All measured numbers (the table of <code>python -m dalle evaluate</code>)"
                  "</summary>", "", "```", format_table(metrics), "```", "", "</details>", "",
                  "### How far to trust the discriminator's scores", "", *trust_lines(metrics)]
    else:
        parts.append("Not evaluated yet: run `python -m dalle evaluate` on this folder.")
    parts += ["", "## Known failure modes", "Seen in `samples.png` and in the playground:", ""]
    parts += [f"- {m}" for m in failure_modes] or ["- none recorded"]
    return "\n".join(parts) + "\n"


def write_model_card(folder: str | Path, failure_modes: list[str]) -> Path:
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(folder, failure_modes), encoding="utf-8")
    return path


def load_failure_modes(path: str | Path) -> dict[str, list[str]]:
    """A JSON file {checkpoint name: [failure mode, ...]}."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
