"""Human-readable views of a metrics dict: a text table, headline numbers, targets, the README's results table
and the truncation-sweep plot.

The lines every dataset shares are laid out here; the dataset's own come from its `Report` in the dataset
registry (`dalle/datasets.py`; shapes: `dalle/shapes/report.py`, emoji: `dalle/evaluation/emoji_report.py`).
"""

from __future__ import annotations

from pathlib import Path

from ..datasets import Report, known_kind
from .numbers import fmt


def _report(m: dict) -> Report:
    """The report parts of the metrics' dataset, from the registry."""
    kind = known_kind(m["dataset"])
    if kind is None or kind.report is None:
        raise ValueError(f"no report for metrics of dataset {m['dataset']!r}")
    return kind.report


def format_table(m: dict) -> str:
    """The text table of a metrics dict: the run, the dataset's own lines, the discriminator, the sweep."""
    ck = m["checkpoint"]
    run = m["run"]
    report = _report(m)
    kimg = (ck.get("images_seen") or 0) / 1000
    lines = [f"{ck['name']} ({m['dataset']}, {ck['resolution']}px)  step {ck.get('step')}  {kimg:.1f} kimg  "
             f"| psi={run['truncation']} seed={run['seed']} num_samples={run['num_samples']} "
             f"| {run['wall_time_s']:.0f}s"]
    lines += report.table(m)
    disc = m["discriminator"]
    source = " (the judge's; dalle/judge.py)" if disc.get("match_source") == "judge" else ""
    lines.append(f"discriminator AUROC: match{source} {fmt(disc['match_auroc'])}  realism {fmt(disc['realism_auroc'])}")
    if "discriminator_generated_match_auroc" in disc:
        lines.append(f"  the discriminator's own match head, which G trained against: real "
                     f"{fmt(disc['discriminator_match_auroc'])}, generated {fmt(disc['discriminator_generated_match_auroc'])}")
    if "generated_match_auroc" in disc:
        lines.append(f"  match score on generated images, right vs wrong by {report.verdict}: "
                     f"{fmt(disc['generated_match_auroc'])} (n={disc['generated_match_n_correct']} right / "
                     f"{disc['generated_match_n_wrong']} wrong)")
        if "generated_realism_auroc" in disc:
            lines.append(f"  realism score on generated images, same verdict: {fmt(disc['generated_realism_auroc'])}")
        if "generated_realism_rank_correlation" in disc:
            lines.append("  realism vs the evaluator's image-caption cosine on generated images, rank correlation: "
                         f"{fmt(disc['generated_realism_rank_correlation'])}")
        if "generated_match_auroc_colour_shape_position" in disc:
            lines.append(f"  same, single objects by colour+shape+position: "
                         f"{fmt(disc['generated_match_auroc_colour_shape_position'])} "
                         f"(n={disc['generated_match_colour_shape_position_n_correct']} right / "
                         f"{disc['generated_match_colour_shape_position_n_wrong']} wrong)")
    lines += best_of_lines(m.get("best_of"))
    sw = m.get("truncation_sweep")
    if sw:
        lines += report.sweep_table(sw)
    return "\n".join(lines)


def best_of_lines(best_of: dict | None) -> list[str]:
    """Text lines of metrics.json's "best_of" block: for each part and N, the share of prompts whose kept image
    is right, keeping the first seed, the best by each score, or any right one (oracle)."""
    if not best_of:
        return []
    parts = best_of["parts"]
    counts = sorted(next(iter(parts.values()))["oracle"], key=int)
    cols = [(part, k) for part in parts for k in counts]
    rows = [("first seed", lambda r, k: r["best_of_1"])]
    rows += [(name, lambda r, k, name=name: r["by_score"][name][k]) for name in next(iter(parts.values()))["by_score"]]
    rows += [("any (oracle)", lambda r, k: r["oracle"][k])]
    lines = [f"best of N at psi {best_of['psi']}: share of prompts right ({best_of['verdict'].split(':')[0]}); "
             f"the playground reranks by {best_of['chosen']}",
             f"  {'kept by':<18}" + "".join(f"{f'{part} {k}':>11}" for part, k in cols),
             f"  {'(prompts)':<18}" + "".join(f"{parts[part]['prompts']:>11}" for part, _ in cols)]
    lines += [f"  {label:<18}" + "".join(f"{fmt(value(parts[part], k)):>11}" for part, k in cols)
              for label, value in rows]
    return lines


def summary(m: dict) -> dict[str, float | None]:
    """The headline numbers of a metrics dict, by column name: kimg, the dataset's own, match AUROC."""
    ck = m["checkpoint"]
    row: dict[str, float | None] = {"kimg": round((ck.get("images_seen") or 0) / 1000, 1)}
    row.update(_report(m).summary(m))
    row["match AUROC"] = m["discriminator"]["match_auroc"]
    return row


def targets(m: dict) -> list[tuple[str, bool]]:
    """Each target of the checkpoint's dataset as ("what value (verdict: op bound)", met); a value that was not
    measured counts as not met."""
    s = summary(m)
    out = []
    for what, source, op, bound in _report(m).targets:
        value = source(m) if callable(source) else s[source]
        ok = value is not None and (value >= bound if op == ">=" else value <= bound)
        verdict = "not measured" if value is None else "met" if ok else "not met"
        out.append((f"{what} {fmt(value)} ({verdict}: {op} {bound:g})", ok))
    return out


def target_lines(m: dict) -> list[str]:
    """Markdown bullets: each target of the checkpoint's dataset with the measured value and whether it is met
    (a value that was not measured counts as not met)."""
    parts = targets(m)
    met = sum(ok for _, ok in parts)
    return [f"- `{m['checkpoint']['name']}`: {met} of {len(parts)} targets met. "
            + "; ".join(text for text, _ in parts) + "."]


def headline(m: dict) -> tuple[str, str]:
    """The (headline, seed diversity) of a metrics dict, as the README's results row words them."""
    return _report(m).results_cells(m, summary(m))


def card_notes(m: dict) -> list[str]:
    """The dataset's own sentences for the model card, drawn from the metrics (e.g. seeds that change little)."""
    return _report(m).card_notes(m)


def results_table(metrics: list[dict], configs: list[dict]) -> str:
    """The README's results: a Markdown table with one row per (metrics.json, config.json) pair, then each
    checkpoint's targets with the measured values."""
    rows = ["| checkpoint | data | images seen | training time | headline (generated / real) | seed diversity "
            "| match AUROC, real / generated images |",
            "|---|---|---|---|---|---|---|"]
    for m, cfg in zip(metrics, configs):
        s = summary(m)
        minutes = (cfg.get("training_compute") or {}).get("wall_time_s", 0) / 60
        head, div = _report(m).results_cells(m, s)
        gen_match = m["discriminator"].get("generated_match_auroc")
        rows.append(f"| `{m['checkpoint']['name']}` | {m['dataset']} | {s['kimg']:.0f}k | {minutes:.0f} min | "
                    f"{head} | {div} | {fmt(s['match AUROC'])} / {fmt(gen_match)} |")
    rows += ["", "Each checkpoint against its targets:", ""]
    for m in metrics:
        rows += target_lines(m)
    return "\n".join(rows)


def plot_truncation(m: dict, path: str | Path) -> Path:
    """The dataset's sweep panels (alignment, diversity, ...) against psi, with the real references dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sw = m["truncation_sweep"]
    rows, ref = sw["rows"], sw["reference"]
    psi = [r["psi"] for r in rows]
    panels = _report(m).plot_panels(ref)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (title, series, refs) in zip(axes, panels):
        for label, key in series:
            ys = [r.get(key) for r in rows]
            if any(y is not None for y in ys):
                ax.plot(psi, [float("nan") if y is None else y for y in ys], marker="o", label=label)
        merged: dict[float, list[str]] = {}  # equal references share one line and one label
        for label, value in refs:
            if value is not None:
                merged.setdefault(value, []).append(label)
        for value, labels in merged.items():
            ax.axhline(value, linestyle="--", linewidth=1, color="gray")
            ax.annotate(", ".join(labels), (psi[0], value), fontsize=7, color="gray", va="bottom")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("truncation psi")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ck = m["checkpoint"]
    fig.suptitle(f"{ck['name']} step {ck.get('step')}: truncation sweep", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
