"""Human-readable views of a metrics dict: a text table and the truncation-sweep plot."""

from __future__ import annotations

from pathlib import Path


def _f(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _acc(block: dict | None, kind: str, key: str) -> tuple[float | None, int]:
    entry = ((block or {}).get(kind) or {}).get(key) or {}
    return entry.get("accuracy"), entry.get("n", 0)


_SHAPES_ROWS = [("single", "colour_shape", "single: colour+shape"),
                ("single", "position", "single: position"),
                ("single", "size", "single: size"),
                ("single", "count", "single: exactly one object"),
                ("single", "colour_shape_position", "single: colour+shape+position  <- headline"),
                ("single", "exact", "single: everything stated, one object"),
                ("pair", "colour_shape", "pair: both objects present"),
                ("pair", "relation", "pair: relation"),
                ("pair", "count", "pair: exactly two objects"),
                ("count", "colour_shape", "count: all objects right colour+shape"),
                ("count", "count", "count: right number of objects")]


def format_table(m: dict) -> str:
    ck = m["checkpoint"]
    run = m["run"]
    kimg = (ck.get("images_seen") or 0) / 1000
    lines = [f"{ck['name']} ({m['dataset']}, {ck['resolution']}px)  step {ck.get('step')}  {kimg:.1f} kimg  "
             f"| psi={run['truncation']} seed={run['seed']} num_samples={run['num_samples']} "
             f"| {run['wall_time_s']:.0f}s"]
    if m["dataset"] == "shapes":
        a = m["alignment"]
        gen, real = a["generated"], a["ceiling_real"]
        has_held = "heldout" in gen
        header = f"{'accuracy (generated / real ceiling)':46s} {'seen':>22s}"
        lines.append(header + (f" {'held-out':>22s}" if has_held else ""))
        for kind, key, label in _SHAPES_ROWS:
            cells = []
            for part in ("seen", "heldout") if has_held else ("seen",):
                g, n = _acc(gen.get(part), kind, key)
                r, _ = _acc(real.get(part), kind, key)
                cells.append(f"{_f(g)} / {_f(r)} (n={n})" if n else "-")
            if any(c != "-" for c in cells):
                lines.append(f"  {label:44s} " + " ".join(f"{c:>22s}" for c in cells))
        lines.append(f"  checker on real renders, all judgements: {_f(a.get('ceiling_all_judgements'), 4)}")
        d = m["diversity"]
        lines.append(f"diversity (pixel RMS, {d['prompts']} prompts x {d['seeds_per_prompt']} seeds): "
                     f"generated {_f(d['generated'], 4)}  real {_f(d['real'], 4)}")
    else:
        rp = m["r_precision"]
        lines.append(f"R-precision (1 of {rp['distractors'] + 1}): generated {_f(rp['generated']['mean'])} "
                     f"± {_f(rp['generated']['ci95'])}  real ceiling {_f(rp['real_ceiling']['mean'])}  "
                     f"(n={rp['generated']['n']})")
        fid, kid = m["fid"], m["kid"]
        lines.append(f"FID (evaluator space): generated {_f(fid['generated'], 4)}  floor matched-n "
                     f"{_f(fid['floor_matched'], 4)}  floor halves {_f(fid['floor_halves'], 4)}")
        lines.append(f"KID (evaluator space): generated {_f(kid['generated']['mean'], 5)}  floor matched-n "
                     f"{_f(kid['floor_matched']['mean'], 5)}  floor halves {_f(kid['floor_halves']['mean'], 5)}")
        lines.append(f"Inception FID: {m['inception_fid'].split(':')[0]}")
        mem = m["memorisation"]
        lines.append(f"memorisation (NN cosine >= {mem['threshold']}): generated {_f(mem['generated_share'])}  "
                     f"real reference {_f(mem['real_reference_share'])}  (mean NN cosine "
                     f"{_f(mem['generated_mean_nn_cosine'])} / {_f(mem['real_reference_mean_nn_cosine'])})")
        d = m["diversity"]
        lines.append(f"diversity (evaluator distance, {d['prompts']} prompts x {d['seeds_per_prompt']} seeds): "
                     f"generated {_f(d['generated'])}")
        lines.append(f"Google-Twitter distance of the same labels' real images (not a seed spread): "
                     f"{_f(_style_distance(m))}")
    disc = m["discriminator"]
    lines.append(f"discriminator AUROC: match {_f(disc['match_auroc'])}  realism {_f(disc['realism_auroc'])}")
    if "generated_match_auroc" in disc:
        verdict = "checker 'exact'" if m["dataset"] == "shapes" else "evaluator top-1"
        lines.append(f"  match score on generated images, right vs wrong by {verdict}: "
                     f"{_f(disc['generated_match_auroc'])} (n={disc['generated_match_n_correct']} right / "
                     f"{disc['generated_match_n_wrong']} wrong)")
        if "generated_match_auroc_colour_shape_position" in disc:
            lines.append(f"  same, single objects by colour+shape+position: "
                         f"{_f(disc['generated_match_auroc_colour_shape_position'])} "
                         f"(n={disc['generated_match_colour_shape_position_n_correct']} right / "
                         f"{disc['generated_match_colour_shape_position_n_wrong']} wrong)")
    sw = m.get("truncation_sweep")
    if sw:
        rows = sw["rows"]
        if m["dataset"] == "shapes":
            lines.append(f"truncation sweep     {'psi':>5s} {'align seen':>10s} {'align held':>10s} "
                         f"{'diversity':>9s} {'realism':>8s}")
            for r in rows:
                lines.append(f"                     {r['psi']:5.1f} {_f(r['alignment_seen']):>10s} "
                             f"{_f(r.get('alignment_heldout')):>10s} {_f(r['diversity'], 4):>9s} "
                             f"{_f(r['mean_realism']):>8s}")
            ref = sw["reference"]
            lines.append(f"  real reference           {_f(ref['alignment_seen']):>10s} "
                         f"{_f(ref['alignment_heldout']):>10s} {_f(ref['diversity'], 4):>9s}")
        else:
            lines.append(f"truncation sweep     {'psi':>5s} {'R-prec':>7s} {'FID':>8s} {'diversity':>9s} "
                         f"{'realism':>8s}")
            for r in rows:
                lines.append(f"                     {r['psi']:5.1f} {_f(r['alignment']):>7s} {_f(r['fid'], 4):>8s} "
                             f"{_f(r['diversity']):>9s} {_f(r['mean_realism']):>8s}")
            ref = sw["reference"]
            lines.append(f"  real reference           {_f(ref['alignment']):>7s} {_f(ref['fid_floor'], 4):>8s}")
    return "\n".join(lines)


def _style_distance(m: dict) -> float | None:
    """Emoji: evaluator distance between the Google and Twitter images of one label (None if not measured)."""
    return (m.get("style_distance") or {}).get("google_twitter")


def _generated_acc(m: dict, part: str, kind: str, key: str) -> float | None:
    """Accuracy of generated images for (part, kind, key), or None."""
    return _acc(m["alignment"]["generated"].get(part), kind, key)[0]


def summary(m: dict) -> dict[str, float | None]:
    """The headline numbers of a metrics dict, by column name."""
    ck = m["checkpoint"]
    row: dict[str, float | None] = {"kimg": round((ck.get("images_seen") or 0) / 1000, 1)}
    if m["dataset"] == "shapes":
        row.update({"seen c+s+p": _generated_acc(m, "seen", "single", "colour_shape_position"),
                    "held-out c+s+p": _generated_acc(m, "heldout", "single", "colour_shape_position"),
                    "relation": _generated_acc(m, "seen", "pair", "relation"),
                    "count": _generated_acc(m, "seen", "count", "count"),
                    "diversity / real": m["diversity"]["generated"] / max(m["diversity"]["real"], 1e-9)})
    else:
        rp = m["r_precision"]
        row.update({"R-precision / real": rp["generated"]["mean"] / max(rp["real_ceiling"]["mean"], 1e-9),
                    "FID / floor": m["fid"]["generated"] / max(m["fid"]["floor_matched"], 1e-9)})
    row["match AUROC"] = m["discriminator"]["match_auroc"]
    return row


# Targets of the shipped checkpoints: (what, summary column or function of the metrics, ">=" or "<=", bound).
TARGETS: dict[str, list[tuple]] = {
    "shapes": [("colour+shape+position, seen", "seen c+s+p", ">=", 0.95),
               ("colour+shape+position, held-out", "held-out c+s+p", ">=", 0.80),
               ("relation", "relation", ">=", 0.80),
               ("count", "count", ">=", 0.80),
               ("seed diversity / real", "diversity / real", ">=", 0.5),
               ("match AUROC, real images", "match AUROC", ">=", 0.9),
               ("match AUROC, generated images", lambda m: m["discriminator"].get("generated_match_auroc"), ">=", 0.8)],
    "emoji": [("R-precision / real", "R-precision / real", ">=", 0.5),
              ("evaluator FID / floor", "FID / floor", "<=", 5.0),
              ("match AUROC, real images", "match AUROC", ">=", 0.9)],
}


def target_lines(m: dict) -> list[str]:
    """Markdown bullets: each target of the checkpoint's dataset with the measured value and whether it is met
    (a value that was not measured counts as not met)."""
    s = summary(m)
    parts, met = [], 0
    for what, source, op, bound in TARGETS[m["dataset"]]:
        value = source(m) if callable(source) else s[source]
        ok = value is not None and (value >= bound if op == ">=" else value <= bound)
        met += ok
        verdict = "not measured" if value is None else "met" if ok else "not met"
        parts.append(f"{what} {_f(value)} ({verdict}: {op} {bound:g})")
    return [f"- `{m['checkpoint']['name']}`: {met} of {len(parts)} targets met. " + "; ".join(parts) + "."]


def results_table(metrics: list[dict], configs: list[dict]) -> str:
    """The README's results: a Markdown table with one row per (metrics.json, config.json) pair, then each
    checkpoint's targets with the measured values."""
    rows = ["| checkpoint | data | images seen | training time | headline (generated / real) | seed diversity "
            "| match AUROC, real / generated images |",
            "|---|---|---|---|---|---|---|"]
    for m, cfg in zip(metrics, configs):
        s = summary(m)
        minutes = (cfg.get("training_compute") or {}).get("wall_time_s", 0) / 60
        if m["dataset"] == "shapes":
            real = m["alignment"]["ceiling_real"]
            head = (f"colour+shape+position seen {_f(s['seen c+s+p'])} / "
                    f"{_f(_acc(real.get('seen'), 'single', 'colour_shape_position')[0])}, held-out "
                    f"{_f(s['held-out c+s+p'])}; relation {_f(s['relation'])} / "
                    f"{_f(_acc(real.get('seen'), 'pair', 'relation')[0])}; count {_f(s['count'])} / "
                    f"{_f(_acc(real.get('seen'), 'count', 'count')[0])}")
            div = f"{_f(s['diversity / real'], 2)} x real renders (pixel RMS)"
        else:
            head = (f"R-precision {_f(m['r_precision']['generated']['mean'])} / "
                    f"{_f(m['r_precision']['real_ceiling']['mean'])}; evaluator FID {_f(m['fid']['generated'])} "
                    f"(real floor {_f(m['fid']['floor_matched'])})")
            div = (f"{_f(m['diversity']['generated'])} (evaluator distance); Google-Twitter distance "
                   f"{_f(_style_distance(m))}")
        gen_match = m["discriminator"].get("generated_match_auroc")
        rows.append(f"| `{m['checkpoint']['name']}` | {m['dataset']} | {s['kimg']:.0f}k | {minutes:.0f} min | "
                    f"{head} | {div} | {_f(s['match AUROC'])} / {_f(gen_match)} |")
    rows += ["", "Each checkpoint against its targets:", ""]
    for m in metrics:
        rows += target_lines(m)
    return "\n".join(rows)


def plot_truncation(m: dict, path: str | Path) -> Path:
    """Alignment, diversity (and FID for emoji) against psi, with the real references dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sw = m["truncation_sweep"]
    rows, ref = sw["rows"], sw["reference"]
    psi = [r["psi"] for r in rows]
    if m["dataset"] == "shapes":
        panels = [("alignment (colour+shape+position)", [("seen", "alignment_seen"), ("held-out", "alignment_heldout")],
                   [("real seen", ref.get("alignment_seen")), ("real held-out", ref.get("alignment_heldout"))]),
                  ("diversity (pixel RMS)", [("generated", "diversity")], [("real", ref.get("diversity"))])]
    else:
        panels = [("R-precision", [("generated", "alignment")], [("real", ref.get("alignment"))]),
                  ("diversity (evaluator distance)", [("generated", "diversity")],
                   [("Google-Twitter distance (not a seed spread)", ref.get("style_distance"))]),
                  ("FID (evaluator space)", [("generated", "fid")], [("real floor", ref.get("fid_floor"))])]
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
