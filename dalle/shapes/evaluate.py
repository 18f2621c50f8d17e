"""The shapes world's evaluation: what `python -m dalle evaluate` measures on a shapes checkpoint.

Analytic compositional accuracy (`dalle/shapes/checker.py`) of generated images for seen prompts and for
held-out colour/shape pairs, with the same checker on real renders of the same scenes as the ceiling;
pixel-space diversity across seeds, against fresh real renders; the discriminator's AUROCs, on generated
images against the checker's 'exact' verdict; and a truncation sweep. `measure` is what the dataset
registry (`dalle/datasets.py`) hands to `dalle/evaluation/evaluate.py`.
"""

from __future__ import annotations

import random
import time

import numpy as np

from ..evaluation.sampling import (
    EVALUATION_VERSION,
    PSIS,
    Generated,
    best_of_block,
    discriminator_block,
    discriminator_head_block,
    generated_match,
    mismatched_captions,
    pixel_diversity,
    sample_seeds,
    score_real,
)
from ..evaluation.stats import auroc_by_verdict
from ..pipeline import TextToImagePipeline
from . import checker as sc
from .world import DEFAULT_HOLDOUT, render

BEST_OF_PROMPTS = 96  # seen prompts of each kind in the best-of-N measurement

SHAPES_VERDICT = ("analytic checker 'exact': everything the caption states is right and there is no extra "
                  "object (single, pair and count captions)")


def _diversity_by_kind(scenes: list, generated: np.ndarray, real: np.ndarray, k: int) -> dict:
    """The diversity of `pixel_diversity` per caption kind: "placed" singles (where the caption pins the shape, only
    the jitter and an unstated size may vary), "unplaced" singles, "pair" and "count". generated, real
    [len(scenes) * k, R, R, 3], grouped by scene -> {kind: {"generated", "real", "prompts"}}."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scenes):
        groups.setdefault(sc.caption_kind(s.caption), []).append(i)

    def of(images: np.ndarray, ids: list[int]) -> float:
        return pixel_diversity(np.concatenate([images[i * k:(i + 1) * k] for i in ids]), k)

    return {kind: {"generated": of(generated, ids), "real": of(real, ids), "prompts": len(ids)}
            for kind, ids in sorted(groups.items())}


def _judge(images: np.ndarray, scenes: list) -> list[dict]:
    """Checker judgements of images uint8 [N, R, R, 3] against their scenes' captions: N dicts."""
    return [sc.check(img, s.caption) for img, s in zip(images, scenes)]


def _shapes_alignment(judgements: list[dict], scenes: list) -> dict:
    """Judgements grouped by caption kind -> {kind: sc.summarize(...)}."""
    groups: dict[str, list] = {}
    for j, s in zip(judgements, scenes):
        groups.setdefault(s.kind, []).append(j)
    return {kind: sc.summarize(js) for kind, js in sorted(groups.items())}


def _shapes_generated_match(match: np.ndarray, judgements: list[dict], realism: np.ndarray) -> dict:
    """`generated_match` with the checker's 'exact' verdict, plus colour+shape+position on the single-object
    captions that state a position."""
    out = generated_match(match, np.array([bool(j["exact"]) for j in judgements]), SHAPES_VERDICT, realism)
    idx = [i for i, j in enumerate(judgements) if j["colour_shape_position"] is not None]
    csp = np.array([bool(judgements[i]["colour_shape_position"]) for i in idx], dtype=bool)
    out["generated_match_auroc_colour_shape_position"] = auroc_by_verdict(match[idx], csp) if idx else None
    out["generated_match_colour_shape_position_n_correct"] = int(csp.sum())
    out["generated_match_colour_shape_position_n_wrong"] = int((~csp).sum())
    return out


def _ghost_shares(images: np.ndarray, scenes: list) -> dict:
    """{kind: {"share": share of the images [N, R, R, 3] of that caption kind with a ghost, "n"}}."""
    out: dict = {}
    for kind in ("single", "pair", "count"):
        idx = [i for i, s in enumerate(scenes) if s.kind == kind]
        has = [sc.ghosts(images[i], scenes[i].caption) > 0 for i in idx]
        out[kind] = {"share": float(np.mean(has)) if has else None, "n": len(has)}
    return out


def _exact_each(prompts: list[str], images: np.ndarray) -> list[bool]:
    """The checker's exact verdict of image i [N, R, R, 3] against prompt i [N]."""
    return sc.exact_verdicts(prompts, images[:, None])


def _acc(summary: dict, kind: str, key: str) -> float | None:
    """The accuracy of one check (`key`) on one caption kind of a `_shapes_alignment` part, or None."""
    return (summary.get(kind) or {}).get(key, {}).get("accuracy")


def evaluate_shapes(pipe: TextToImagePipeline, config: dict, num_samples: int, seed: int, psi: float,
                    sweep: bool, log) -> dict:
    """Measure a shapes checkpoint with `num_samples` seen scenes (and a quarter as many held-out ones) at
    truncation `psi`; `sweep`: also the truncation sweep over `PSIS`. Every draw comes from `seed`.

    -> metrics.json blocks {"prompts", "alignment", "diversity", "discriminator"[, "truncation_sweep"]}.
    """
    res = pipe.model_config.resolution
    holdout = tuple(tuple(h) for h in (config.get("dataset") or {}).get("holdout", DEFAULT_HOLDOUT))
    seen = sc.seen_scenes(num_samples, seed, holdout)
    n_held = max(len(holdout), num_samples // 4) if holdout else 0
    held = sc.heldout_scenes(n_held, seed, holdout) if holdout else []
    gen = Generated(pipe)
    base = seed * 1_000_000
    seen_seeds, held_seeds = sample_seeds(base, len(seen)), sample_seeds(base + 200_000, len(held))

    log(f"shapes: generating {len(seen)} seen + {len(held)} held-out images at psi={psi}")
    g_seen, r_seen, m_seen = gen([s.caption for s in seen], seen_seeds, psi)
    out: dict = {"prompts": {"seen": len(seen), "heldout": len(held), "heldout_pairs": [list(h) for h in holdout],
                             "seen_source": f"dalle.shapes.world.sample_scene with random.Random('evaluation:{seed}')",
                             "heldout_source": "single-object captions of the held-out colour/shape pairs, "
                                               "size and position always stated"}}
    real_seen = np.stack([render(s.shapes, res) for s in seen])
    j_seen = _judge(g_seen, seen)
    alignment = {"generated": {"seen": _shapes_alignment(j_seen, seen)},
                 "ceiling_real": {"seen": _shapes_alignment(_judge(real_seen, seen), seen)}}
    r_gen_all, m_gen_all, j_gen_all, real_all = r_seen, m_seen, j_seen, real_seen
    if held:
        g_held, r_held, m_held = gen([s.caption for s in held], held_seeds, psi)
        real_held = np.stack([render(s.shapes, res) for s in held])
        j_held = _judge(g_held, held)
        alignment["generated"]["heldout"] = _shapes_alignment(j_held, held)
        alignment["ceiling_real"]["heldout"] = _shapes_alignment(_judge(real_held, held), held)
        r_gen_all = np.concatenate([r_seen, r_held])
        m_gen_all = np.concatenate([m_seen, m_held])
        j_gen_all = j_seen + j_held
        real_all = np.concatenate([real_seen, real_held])
    gen_a, real_a = alignment["generated"], alignment["ceiling_real"]
    headline = {
        "seen_colour_shape_position": _acc(gen_a["seen"], "single", "colour_shape_position"),
        "heldout_colour_shape_position": _acc(gen_a.get("heldout", {}), "single", "colour_shape_position"),
        "ceiling_seen_colour_shape_position": _acc(real_a["seen"], "single", "colour_shape_position"),
        "ceiling_heldout_colour_shape_position": _acc(real_a.get("heldout", {}), "single", "colour_shape_position"),
    }
    checks = [entry for part in real_a.values() for summary in part.values() for entry in summary.values()
              if isinstance(entry, dict)]  # every {"accuracy", "n"} of the real-render ceiling
    num = sum(j["accuracy"] * j["n"] for j in checks if j["accuracy"] is not None)
    den = sum(j["n"] for j in checks if j["accuracy"] is not None)
    alignment["ceiling_all_judgements"] = num / den if den else None
    alignment["headline"] = headline
    out["alignment"] = alignment

    # Ghosts: faint blobs the checker drops, or objects beyond the caption's number, on the seen images.
    out["ghosts"] = {
        "definition": "share of images with a ghost: an ink component of at least the checker's minimum area "
                      "that holds no detected object (too faint for the palette), or a detected object beyond "
                      "the number the caption asks for (`dalle.shapes.checker.ghosts`)",
        "generated": _ghost_shares(g_seen, seen), "real": _ghost_shares(real_seen, seen)}

    # Diversity: same prompt, several seeds, pixel space.
    n_div = min(32, max(2, num_samples // 16))
    k_div = 8
    div_prompts = [s.caption for s in seen[:n_div]]
    div_seeds_one = sample_seeds(base + 500_000, k_div)
    div_prompt_list = [p for p in div_prompts for _ in range(k_div)]
    div_seed_list = div_seeds_one * n_div
    g_div, _, _ = gen(div_prompt_list, div_seed_list, psi)
    rng = random.Random(seed + 99)
    real_div = np.stack([render(sc.scene_for_spec(sc.parse_caption(p), rng), res) for p in div_prompt_list])
    out["diversity"] = {
        "space": "pixels: RMS difference of RGB values scaled to [0, 1]",
        "definition": "mean over prompts of the mean pairwise RMS pixel distance between the images of one prompt",
        "generated": pixel_diversity(g_div, k_div),
        "real": pixel_diversity(real_div, k_div),
        "real_definition": "same, over fresh real renders of each caption (unstated size/position, jitter and "
                           "pair/count placements drawn as the training sampler draws them)",
        "prompts": n_div, "seeds_per_prompt": k_div,
        "by_kind": _diversity_by_kind(seen[:n_div], g_div, real_div, k_div),
    }

    # Discriminator usefulness.
    rng = random.Random(seed + 5)
    captions = [s.caption for s in seen]
    _, m_true = score_real(pipe, real_seen, captions)
    _, m_wrong = score_real(pipe, real_seen, mismatched_captions(captions, rng))
    r_real, _ = score_real(pipe, real_all, [s.caption for s in seen + held])
    wrong_captions = mismatched_captions(captions, random.Random(seed + 5))  # the same draw as m_wrong's
    out["discriminator"] = {**discriminator_block(m_true, m_wrong, r_real, r_gen_all, psi),
                            **_shapes_generated_match(m_gen_all, j_gen_all, r_gen_all),
                            **discriminator_head_block(pipe, real_seen, captions, wrong_captions, g_seen, captions,
                                                       np.array([bool(j["exact"]) for j in j_seen]))}

    # Best-of-N by each score, at the app's truncation: 96 seen prompts of each kind, 8 seeds each.
    by_kind = {kind: [s.caption for s in seen if s.kind == kind][:BEST_OF_PROMPTS] for kind in ("single", "pair", "count")}
    log(f"shapes: best-of-8 on {sum(map(len, by_kind.values()))} prompts")
    out["best_of"] = {**best_of_block(gen, by_kind, _exact_each, base + 700_000), "verdict": SHAPES_VERDICT}

    if sweep:
        singles = [i for i, s in enumerate(seen) if s.kind == "single" and sc.parse_caption(s.caption).cell]
        singles = singles[:min(len(singles), 256)]
        held_sub = list(range(min(len(held), 96)))
        rows = []
        for p in PSIS:
            t0 = time.time()
            imgs, rr, _ = gen([seen[i].caption for i in singles], [seen_seeds[i] for i in singles], p)
            acc = [sc.check(im, seen[i].caption)["colour_shape_position"] for im, i in zip(imgs, singles)]
            row = {"psi": p, "alignment_seen": float(np.mean(acc)) if acc else None, "n_seen": len(acc)}
            if held_sub:
                himgs, _, _ = gen([held[i].caption for i in held_sub], [held_seeds[i] for i in held_sub], p)
                hacc = [sc.check(im, held[i].caption)["colour_shape_position"] for im, i in zip(himgs, held_sub)]
                row.update(alignment_heldout=float(np.mean(hacc)), n_heldout=len(hacc))
            g_d, _, _ = gen(div_prompt_list, div_seed_list, p)
            row["diversity"] = pixel_diversity(g_d, k_div)
            row["mean_realism"] = float(np.mean(rr)) if len(rr) else None
            rows.append(row)
            log(f"  psi={p}: alignment {row['alignment_seen']}, diversity {row['diversity']:.4f} "
                f"({time.time() - t0:.0f}s)")
        out["truncation_sweep"] = {
            "alignment": "colour+shape+position accuracy of single-object prompts that state a position "
                         "(analytic checker)",
            "diversity": out["diversity"]["space"] + "; " + out["diversity"]["definition"],
            "reference": {"alignment_seen": headline["ceiling_seen_colour_shape_position"],
                          "alignment_heldout": headline["ceiling_heldout_colour_shape_position"],
                          "diversity": out["diversity"]["real"]},
            "rows": rows}
    return out


def load(config: dict, data_root, evaluator_dir) -> None:
    """Nothing to load before the models: the world draws its own scenes and the checker is a rule."""
    return None


def measure(pipe: TextToImagePipeline, config: dict, loaded: None, num_samples: int, seed: int, psi: float,
            sweep: bool, log) -> tuple[dict, dict]:
    """`evaluate_shapes` -> (its metric blocks, metrics.json's "evaluator" record: the checker's settings)."""
    results = evaluate_shapes(pipe, config, num_samples, seed, psi, sweep, log)
    return results, {"kind": "analytic shapes checker (no learned judge)", "version": EVALUATION_VERSION,
                     "color_threshold": sc.COLOR_THRESHOLD, "min_area": sc.MIN_AREA}


MEASURED = {
    "alignment": "analytic compositional accuracy of generated images (one image per prompt) for seen prompts "
                 "(training sampler, fixed seed) and held-out colour/shape pairs; ceiling_real: the same "
                 "checker on real renders of the same scenes",
    "diversity": "mean pairwise RMS pixel distance across seeds of one prompt, vs fresh real renders",
    "discriminator": "AUROC of the match score (true vs mismatched captions on real renders; on generated "
                     "images, correct vs wrong by the checker's 'exact' verdict) and of the realism score "
                     "(real renders vs generated images; on generated images, correct vs wrong by the same verdict)",
    "truncation_sweep": "alignment (colour+shape+position), pixel diversity and mean realism at each psi",
    "ghosts": "share of seen images, per caption kind, with a faint blob the checker drops or an extra object; "
              "the same on real renders of the same scenes",
    "best_of": "share of prompts whose kept image is exactly right (checker) when the best of the first 4 or 8 "
               "seeds is kept by each discriminator score, at the playground's psi; best_of_1: the first seed; "
               "oracle: any of them right",
}
