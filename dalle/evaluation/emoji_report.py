"""How an emoji checkpoint's metrics.json reads: its lines of the text table, its headline columns and
targets, its cells of the README's results table, its truncation plot panels and its model card wording.

`dalle/datasets.py` gathers these into the emoji `Report`; `dalle/evaluation/report.py` and
`dalle/evaluation/model_card.py` lay out the parts every dataset shares around them.
"""

from __future__ import annotations

from ..rerank import gap_taken
from .numbers import fmt

VERDICT = "evaluator top-1"  # who calls a generated image right or wrong, in the table
CARD_JUDGE = "the evaluator (top-1 of 100 captions)"  # the same, in the model card's prose

# (what, summary column or function of the metrics, ">=" or "<=", bound): close to the real images on text and
# image statistics, seeds that differ as much as half a label's real styles, free phrasings found, honest scores
TARGETS = (("R-precision / real", "R-precision / real", ">=", 0.9),
           ("evaluator FID / floor", "FID / floor", "<=", 3.0),
           ("seed diversity / real styles' distance", "seeds / styles", ">=", 0.5),
           ("held-out captions, top 5", lambda m: (m.get("heldout_captions") or {}).get("generated", {}).get("mean"),
            ">=", 0.5),
           ("match AUROC, real images", "match AUROC", ">=", 0.9),
           ("match AUROC, generated images", lambda m: m["discriminator"].get("generated_match_auroc"), ">=", 0.8),
           ("best of 4, share of the gap to any of 4 taken", lambda m: gap_taken(m.get("best_of"), ("all",)), ">=", 0.5))


STYLE_NAMES = {"google": "Google (Noto)", "twitter": "Twitter (Twemoji)", "fluent": "Microsoft (Fluent Emoji, flat)"}


def _and(words: list[str]) -> str:
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def data_paragraph(dataset: dict) -> str:
    """The model card's Data paragraph: the emoji sources and the attribution recorded in the config's
    dataset block (its styles; Google and Twitter where a config predates the record)."""
    styles = [STYLE_NAMES.get(s, s) for s in (dataset.get("styles") or ["google", "twitter"])]
    lines = [f"{_and(styles)} emoji at 64 px, prepared by `python -m dalle prepare emoji` "
             "from npm packages checked against pinned sha512 integrity strings. Attribution:"]
    for a in dataset.get("attribution", []):
        lines.append(f"- {a.get('what', '')}: {a.get('source', '')} — {a.get('license', '')}"
                     + (f" ({a['note']})" if a.get("note") else ""))
    if dataset.get("changes"):
        lines.append(f"- changes: {dataset['changes']}")
    if dataset.get("heldout_caption_rule"):
        lines.append(f"- held-out captions, never trained on: {dataset['heldout_caption_rule']}")
    return "\n".join(lines)


def _style_distance(m: dict) -> float | None:
    """Evaluator distance between the real images of one label in different styles, the mean over pairs of
    styles; metrics measured before a third style give the Google-Twitter one (None if not measured)."""
    block = m.get("style_distance") or {}
    return block.get("between_styles", block.get("google_twitter"))


def _style_words(m: dict) -> str:
    """What `_style_distance` measured, in words: "Google-Twitter distance" for metrics of the two styles."""
    return "between-styles distance" if "between_styles" in (m.get("style_distance") or {}) \
        else "Google-Twitter distance"


def _style_list(m: dict) -> str:
    """The real styles `_style_distance` compared, as the model card names them: "Google, Twitter"."""
    styles = (m.get("style_distance") or {}).get("styles") or ["google", "twitter"]
    return ", ".join(s.capitalize() for s in styles)


def table_lines(m: dict) -> list[str]:
    """R-precision, FID, KID, memorisation and diversity, each with its real reference."""
    rp = m["r_precision"]
    lines = [f"R-precision (1 of {rp['distractors'] + 1}): generated {fmt(rp['generated']['mean'])} "
             f"± {fmt(rp['generated']['ci95'])}  real ceiling {fmt(rp['real_ceiling']['mean'])}  "
             f"(n={rp['generated']['n']})"]
    fid, kid = m["fid"], m["kid"]
    lines.append(f"FID (evaluator space): generated {fmt(fid['generated'], 4)}  floor matched-n "
                 f"{fmt(fid['floor_matched'], 4)}  floor halves {fmt(fid['floor_halves'], 4)}")
    lines.append(f"KID (evaluator space): generated {fmt(kid['generated']['mean'], 5)}  floor matched-n "
                 f"{fmt(kid['floor_matched']['mean'], 5)}  floor halves {fmt(kid['floor_halves']['mean'], 5)}")
    lines.append(f"Inception FID: {m['inception_fid'].split(':')[0]}")
    mem = m["memorisation"]
    lines.append(f"memorisation (NN cosine >= {mem['threshold']}): generated {fmt(mem['generated_share'])}  "
                 f"real reference {fmt(mem['real_reference_share'])}  (mean NN cosine "
                 f"{fmt(mem['generated_mean_nn_cosine'])} / {fmt(mem['real_reference_mean_nn_cosine'])})")
    d = m["diversity"]
    lines.append(f"diversity (evaluator distance, {d['prompts']} prompts x {d['seeds_per_prompt']} seeds): "
                 f"generated {fmt(d['generated'])}")
    lines.append(f"{_style_words(m)[0].upper()}{_style_words(m)[1:]} of the same labels' real images "
                 f"(not a seed spread): {fmt(_style_distance(m))}")
    held = m.get("heldout_captions")
    if held:
        lines.append(f"held-out captions (phrases no training image carried), top {held['top_k']} of "
                     f"{held['distractors'] + 1} names: generated {fmt(held['generated']['mean'])} "
                     f"± {fmt(held['generated']['ci95'])}  real ceiling {fmt(held['real_ceiling']['mean'])}  "
                     f"(n={held['generated']['n']}; e.g. {', '.join(repr(c) for c in held['examples'][:3])})")
    return lines


def sweep_lines(sw: dict) -> list[str]:
    """The truncation sweep's table: R-precision, FID, diversity and realism per psi, then the real reference."""
    lines = [f"truncation sweep     {'psi':>5s} {'R-prec':>7s} {'FID':>8s} {'diversity':>9s} "
             f"{'realism':>8s}"]
    for r in sw["rows"]:
        lines.append(f"                     {r['psi']:5.1f} {fmt(r['alignment']):>7s} {fmt(r['fid'], 4):>8s} "
                     f"{fmt(r['diversity']):>9s} {fmt(r['mean_realism']):>8s}")
    ref = sw["reference"]
    lines.append(f"  real reference           {fmt(ref['alignment']):>7s} {fmt(ref['fid_floor'], 4):>8s}")
    return lines


def summary(m: dict) -> dict[str, float | None]:
    """The headline columns: R-precision over its real ceiling, evaluator FID over its real floor, and the spread
    between seeds over the distance between a label's two real styles."""
    rp = m["r_precision"]
    style = _style_distance(m)
    return {"R-precision / real": rp["generated"]["mean"] / max(rp["real_ceiling"]["mean"], 1e-9),
            "FID / floor": m["fid"]["generated"] / max(m["fid"]["floor_matched"], 1e-9),
            "seeds / styles": m["diversity"]["generated"] / style if style else None}


def results_cells(m: dict, s: dict) -> tuple[str, str]:
    """The README results row's (headline, seed diversity) cells, from the metrics (`summary` s unused)."""
    head = (f"R-precision {fmt(m['r_precision']['generated']['mean'])} / "
            f"{fmt(m['r_precision']['real_ceiling']['mean'])}; evaluator FID {fmt(m['fid']['generated'])} "
            f"(real floor {fmt(m['fid']['floor_matched'])})")
    div = f"{fmt(m['diversity']['generated'])} (evaluator distance); {_style_words(m)} {fmt(_style_distance(m))}"
    return head, div


def plot_panels(ref: dict) -> list[tuple]:
    """The truncation plot's panels from the sweep's real reference: (title, [(label, row key)],
    [(label, reference value)])."""
    return [("R-precision", [("generated", "alignment")], [("real", ref.get("alignment"))]),
            ("diversity (evaluator distance)", [("generated", "diversity")],
             [("real styles' distance (not a seed spread)", ref.get("style_distance"))]),
            ("FID (evaluator space)", [("generated", "fid")], [("real floor", ref.get("fid_floor"))])]


SAME_ACROSS_SEEDS = 0.5  # seed spread below this share of the real styles' distance: seeds look alike


def card_notes(m: dict) -> list[str]:
    """The model card's sentence on seeds, when their spread is under half the distance between the real
    styles of one label (both in evaluator space); none when either was not measured."""
    spread, styles = (m.get("diversity") or {}).get("generated"), _style_distance(m)
    if spread is None or not styles or spread / styles >= SAME_ACROSS_SEEDS:
        return []
    between = (f"between the two real styles ({_style_list(m)})" if len((m.get("style_distance") or {})
               .get("styles") or [0, 0]) == 2 else f"on average between the real styles ({_style_list(m)})")
    return [f"Seeds change little: the images of one prompt differ by {fmt(spread)} between seeds (evaluator "
            f"distance), {spread / styles:.2f} of the {fmt(styles)} {between} "
            "of one label, so most prompts, and the training samples' columns (one per seed), look nearly the "
            "same for every seed."]
