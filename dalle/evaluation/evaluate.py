"""`python -m dalle evaluate CHECKPOINT`: measure a checkpoint and write CHECKPOINT/metrics.json.

The dataset is read from the checkpoint's config.json ("shapes" or "emoji"):

* shapes: analytic compositional accuracy (`shapes_checker`) on seen and held-out prompts,
  with the same checker on real renders of the same scenes as the ceiling; pixel-space diversity.
* emoji: R-precision, FID/KID, memorisation and diversity in the feature space of the shipped
  evaluator (`checkpoints/evaluator`), each with a reference value measured on real images. Prompts,
  distractors and real references come only from the labels the evaluator never trained on
  (`emoji_reference`), so real and generated images are equally new to it.
* both: discriminator AUROCs (match: true vs mismatched caption on real images; match on generated
  images: correct vs wrong by the checker (shapes) or the evaluator (emoji); realism: real vs
  generated) and a truncation sweep (table rows + truncation.png).

Every number is measured in the run; docs/evaluation.md defines each one.
"""

from __future__ import annotations

import platform
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import read_config
from ..images import tensor_to_uint8, uint8_to_tensor
from ..pipeline import TextToImagePipeline, seed_latents
from ..shapes import checker as sc
from ..shapes.world import DEFAULT_HOLDOUT, render
from .code_version import code_record
from .metrics_io import write_metrics
from .stats import auroc, auroc_by_verdict, draw_distractors, mean_and_ci, mean_pairwise_distance, r_precision_hits

METRICS_FORMAT = 1
EVALUATION_VERSION = "4"  # 2: "seen" shapes scenes from a seed stream training never uses;
# 3: match score on generated images against the checker's / evaluator's verdict;
# 4: emoji prompts, distractors and real references only from the evaluator's held-out labels
PSIS = (0.0, 0.3, 0.5, 0.7, 1.0)
DEFAULT_NUM_SAMPLES = {"shapes": 1000, "emoji": 1000}
MEMORISATION_THRESHOLD = 0.95
R_PRECISION_DISTRACTORS = 99
_REPO = Path(__file__).resolve().parents[2]


def default_evaluator_dir() -> Path:
    local = Path("checkpoints/evaluator")
    return local if (local / "config.json").is_file() else _REPO / "checkpoints" / "evaluator"


# ---------------------------------------------------------------------- generation
class Generated:
    """Images for (prompt, seed) pairs at one truncation, memoised so the sweep can reuse main images."""

    def __init__(self, pipe: TextToImagePipeline, batch_size: int = 64):
        self.pipe, self.batch_size = pipe, batch_size
        self._memo: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @torch.inference_mode()
    def __call__(self, prompts: list[str], seeds: list[int], psi: float):
        """-> pixels uint8 [N, R, R, 3], realism [N], match [N]; sample i = (prompts[i], seeds[i])."""
        key = (tuple(prompts), tuple(seeds), float(psi))
        if key in self._memo:
            return self._memo[key]
        pipe, cfg = self.pipe, self.pipe.model_config
        unique = list(dict.fromkeys(prompts))
        where = {p: i for i, p in enumerate(unique)}
        text_u = pipe.encode(unique)
        centers_u = pipe.conditional_centers(unique, text_u) if psi != 1.0 else None
        idx = torch.tensor([where[p] for p in prompts], dtype=torch.long)
        z, eps = seed_latents(seeds, cfg.z_dim, cfg.cond_dim)
        pix, real, match = [], [], []
        for k in range(0, len(prompts), self.batch_size):
            i = idx[k:k + self.batch_size].to(pipe.device)
            t = text_u[i]
            imgs = pipe.synthesize(t, z[k:k + self.batch_size], eps[k:k + self.batch_size], psi,
                                   None if centers_u is None else centers_u[i])
            r, m = pipe.score_tensor(imgs, t)
            pix.append(tensor_to_uint8(imgs))
            real.append(r)
            match.append(m)
        out = (np.concatenate(pix), np.concatenate(real), np.concatenate(match))
        self._memo[key] = out
        return out


def score_real(pipe: TextToImagePipeline, images: np.ndarray, prompts: list[str], batch_size: int = 128):
    """Discriminator (realism, match) probabilities for real uint8 images with the given prompts."""
    text = pipe.encode(prompts)
    real, match = [], []
    for k in range(0, len(images), batch_size):
        r, m = pipe.score_tensor(uint8_to_tensor(images[k:k + batch_size], pipe.device), text[k:k + batch_size])
        real.append(r)
        match.append(m)
    return np.concatenate(real), np.concatenate(match)


def _mismatch(captions: list[str], rng: random.Random) -> list[str]:
    """For each caption, a caption of another item that differs from it as text."""
    out = []
    n = len(captions)
    for i, c in enumerate(captions):
        for _ in range(100):
            other = captions[rng.randrange(n)]
            if other != c:
                break
        else:
            raise ValueError("cannot build mismatched captions: all captions are the same")
        out.append(other)
    return out


def _seeds(base: int, n: int) -> list[int]:
    return [base + i for i in range(n)]


# ---------------------------------------------------------------------- shapes
def _pixel_diversity(images: np.ndarray, k: int) -> float:
    """images [P*k, R, R, 3] grouped by prompt -> mean over prompts of mean pairwise RMS distance in [0, 1] units."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255.0)
    groups = x.reshape(-1, k, x[0].numel())
    d = [mean_pairwise_distance(g) / np.sqrt(g.shape[1]) for g in groups]  # L2 / sqrt(D) = RMS
    return float(np.mean(d))


def _diversity_by_kind(scenes: list, generated: np.ndarray, real: np.ndarray, k: int) -> dict:
    """The diversity of `_pixel_diversity` per caption kind: "placed" singles (where the caption pins the shape, only
    the jitter and an unstated size may vary), "unplaced" singles, "pair" and "count". generated, real
    [len(scenes) * k, R, R, 3], grouped by scene -> {kind: {"generated", "real", "prompts"}}."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scenes):
        groups.setdefault(sc.caption_kind(s.caption), []).append(i)

    def of(images: np.ndarray, ids: list[int]) -> float:
        return _pixel_diversity(np.concatenate([images[i * k:(i + 1) * k] for i in ids]), k)

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


SHAPES_VERDICT = ("analytic checker 'exact': everything the caption states is right and there is no extra "
                  "object (single, pair and count captions)")
EMOJI_VERDICT = ("evaluator top-1: the true caption has the highest evaluator cosine among itself and "
                 "the 99 R-precision distractors (an R-precision hit)")


def _generated_match(match: np.ndarray, verdicts: np.ndarray, verdict: str) -> dict:
    """How well the match score [N] of generated images separates correct (verdicts [N] True) from wrong ones."""
    v = np.asarray(verdicts, dtype=bool)
    return {"generated_match_auroc": auroc_by_verdict(match, v),
            "generated_match_verdict": verdict,
            "generated_match_auroc_definition": "generated images that the verdict calls correct (positives) vs "
                                                "wrong (negatives), each scored with its own caption; "
                                                "null when one group is empty",
            "generated_match_n_correct": int(v.sum()), "generated_match_n_wrong": int((~v).sum()),
            "mean_match_generated_correct": float(np.mean(match[v])) if v.any() else None,
            "mean_match_generated_wrong": float(np.mean(match[~v])) if (~v).any() else None}


def _shapes_generated_match(match: np.ndarray, judgements: list[dict]) -> dict:
    """`_generated_match` with the checker's 'exact' verdict, plus colour+shape+position on the single-object
    captions that state a position."""
    out = _generated_match(match, np.array([bool(j["exact"]) for j in judgements]), SHAPES_VERDICT)
    idx = [i for i, j in enumerate(judgements) if j["colour_shape_position"] is not None]
    csp = np.array([bool(judgements[i]["colour_shape_position"]) for i in idx], dtype=bool)
    out["generated_match_auroc_colour_shape_position"] = auroc_by_verdict(match[idx], csp) if idx else None
    out["generated_match_colour_shape_position_n_correct"] = int(csp.sum())
    out["generated_match_colour_shape_position_n_wrong"] = int((~csp).sum())
    return out


def _acc(summary: dict, kind: str, key: str):
    return (summary.get(kind) or {}).get(key, {}).get("accuracy")


def evaluate_shapes(pipe: TextToImagePipeline, config: dict, num_samples: int, seed: int, psi: float,
                    sweep: bool, log) -> dict:
    res = pipe.model_config.resolution
    holdout = tuple(tuple(h) for h in (config.get("dataset") or {}).get("holdout", DEFAULT_HOLDOUT))
    seen = sc.seen_scenes(num_samples, seed, holdout)
    n_held = max(len(holdout), num_samples // 4) if holdout else 0
    held = sc.heldout_scenes(n_held, seed, holdout) if holdout else []
    gen = Generated(pipe)
    base = seed * 1_000_000
    seen_seeds, held_seeds = _seeds(base, len(seen)), _seeds(base + 200_000, len(held))

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

    # Diversity: same prompt, several seeds, pixel space.
    n_div = min(32, max(2, num_samples // 16))
    k_div = 8
    div_prompts = [s.caption for s in seen[:n_div]]
    div_seeds_one = _seeds(base + 500_000, k_div)
    div_prompt_list = [p for p in div_prompts for _ in range(k_div)]
    div_seed_list = div_seeds_one * n_div
    g_div, _, _ = gen(div_prompt_list, div_seed_list, psi)
    rng = random.Random(seed + 99)
    real_div = np.stack([render(sc.scene_for_spec(sc.parse_caption(p), rng), res) for p in div_prompt_list])
    out["diversity"] = {
        "space": "pixels: RMS difference of RGB values scaled to [0, 1]",
        "definition": "mean over prompts of the mean pairwise RMS pixel distance between the images of one prompt",
        "generated": _pixel_diversity(g_div, k_div),
        "real": _pixel_diversity(real_div, k_div),
        "real_definition": "same, over fresh real renders of each caption (unstated size/position, jitter and "
                           "pair/count placements drawn as the training sampler draws them)",
        "prompts": n_div, "seeds_per_prompt": k_div,
        "by_kind": _diversity_by_kind(seen[:n_div], g_div, real_div, k_div),
    }

    # Discriminator usefulness.
    rng = random.Random(seed + 5)
    captions = [s.caption for s in seen]
    _, m_true = score_real(pipe, real_seen, captions)
    _, m_wrong = score_real(pipe, real_seen, _mismatch(captions, rng))
    r_real, _ = score_real(pipe, real_all, [s.caption for s in seen + held])
    out["discriminator"] = {**_disc_block(m_true, m_wrong, r_real, r_gen_all, psi),
                            **_shapes_generated_match(m_gen_all, j_gen_all)}

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
            row["diversity"] = _pixel_diversity(g_d, k_div)
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


def _disc_block(m_true, m_wrong, r_real, r_gen, psi) -> dict:
    return {
        "match_auroc": auroc(m_true, m_wrong),
        "match_auroc_definition": "real images scored with their own caption (positives) vs with another "
                                  "item's caption (negatives)",
        "realism_auroc": auroc(r_real, r_gen),
        "realism_auroc_definition": f"real images (positives) vs generated images at psi={psi} (negatives)",
        "mean_match_true": float(np.mean(m_true)), "mean_match_mismatched": float(np.mean(m_wrong)),
        "mean_realism_real": float(np.mean(r_real)), "mean_realism_generated": float(np.mean(r_gen)),
        "n_match": int(len(m_true)), "n_real": int(len(r_real)), "n_generated": int(len(r_gen)),
    }


# ---------------------------------------------------------------------- emoji
def _fid_kid(evaluator, real_feats: torch.Tensor, fakes: dict[str, torch.Tensor], subset_size: int, seed: int) -> dict:
    """FID and KID (torchmetrics, evaluator feature space) of each fake set against `real_feats`.

    Real features are embedded once and kept across resets (reset_real_features=False). Fake sets
    are uint8 images [N, 3, H, W] (embedded by the metric's feature module) or precomputed
    embeddings [N, D] (passed through by `EvaluatorFeatures`).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from .evaluator import EvaluatorFeatures

    feat = EvaluatorFeatures(evaluator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fid = FrechetInceptionDistance(feature=feat, reset_real_features=False, normalize=False)
        kid = KernelInceptionDistance(feature=feat, reset_real_features=False, normalize=False, subsets=50,
                                      subset_size=subset_size)
    fid.update(real_feats, real=True)
    kid.update(real_feats, real=True)
    out = {}
    for name, fake in fakes.items():
        fid.reset()
        kid.reset()
        for k in range(0, len(fake), 256):
            fid.update(fake[k:k + 256], real=False)
            kid.update(fake[k:k + 256], real=False)
        torch.manual_seed(seed)  # KID draws random subsets
        kid_mean, kid_std = kid.compute()
        out[name] = {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std),
                     "n": int(len(fake))}
    return out


def _nn_cosine(query: torch.Tensor, bank: torch.Tensor, exclude: np.ndarray | None = None) -> torch.Tensor:
    """Max cosine of each query row against the bank (rows L2-normalised); exclude[i] = bank row to skip."""
    sims = query @ bank.t()
    if exclude is not None:
        sims[torch.arange(len(query)), torch.as_tensor(exclude)] = -2.0
    return sims.max(dim=1).values


def ab_split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image indices 0..n-1 split at random into half A (n // 2, where prompts and floors come from) and half B
    (the rest, the FID/KID reference). Both sorted int arrays."""
    perm = rng.permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


@dataclass
class EmojiReference:
    """Which real emoji images one evaluation uses; every index is a dataset image index."""

    heldout: np.ndarray  # sorted: every image of a label the evaluator never trained on
    half_a: np.ndarray  # sorted half of `heldout`: prompt images and the FID/KID floor
    half_b: np.ndarray  # sorted other half of `heldout`: the FID/KID reference
    prompts: np.ndarray  # sorted prompt images, drawn from half A
    distractors: np.ndarray  # [len(prompts), R_PRECISION_DISTRACTORS] held-out images with another label
    fraction: float  # held-out fraction recorded by the evaluator
    labels_sha256: str  # recorded fingerprint of the held-out labels (checked against the data)


def emoji_reference(labels: list[str], evaluator_info: dict | None, num_samples: int, seed: int) -> EmojiReference:
    """Draw prompts, distractors and A/B halves from the images of the evaluator's held-out labels only.

    `labels`: per-image labels of the dataset. `evaluator_info`: the evaluator's config.json (its
    `training.heldout_labels` record gives the split's fraction and the sha256 of the held-out label list,
    which must match the labels of this data). Raises ValueError when the record is missing or differs.
    """
    from .emoji_data import heldout_labels_sha256, label_split

    record = ((evaluator_info or {}).get("training") or {}).get("heldout_labels")
    if not record:
        raise ValueError("the evaluator records no held-out labels; retrain it with "
                         "`python -m dalle.evaluation.train_evaluator`")
    fraction = float(record["fraction"])
    digest = heldout_labels_sha256(labels, fraction)
    if digest != record["sha256"]:
        raise ValueError("the held-out labels of this emoji data differ from those the evaluator recorded "
                         "(prepare the data again or retrain the evaluator)")
    _, heldout = label_split(labels, fraction)
    rng = np.random.default_rng(seed)
    a, b = ab_split(len(heldout), rng)
    half_a, half_b = heldout[a], heldout[b]
    prompts = np.sort(rng.choice(half_a, size=min(num_samples, len(half_a)), replace=False))
    pool_labels = [labels[i] for i in heldout]
    dis = draw_distractors([labels[i] for i in prompts], pool_labels, R_PRECISION_DISTRACTORS, seed)
    return EmojiReference(heldout, half_a, half_b, prompts, heldout[dis], fraction, digest)


def _feature_diversity(emb: torch.Tensor, k: int) -> float:
    groups = emb.reshape(-1, k, emb.shape[-1])
    return float(np.mean([mean_pairwise_distance(g) for g in groups]))


def evaluate_emoji(pipe: TextToImagePipeline, config: dict, num_samples: int, seed: int, psi: float, sweep: bool,
                   evaluator, data, cache_dir: str | Path, log) -> dict:
    from ..text_encoder import encode_captions_cached

    ds = data.data
    enc = pipe.text_encoder if pipe.text_encoder.name == evaluator.text_encoder_name else None
    table = encode_captions_cached(evaluator.text_encoder_name, ds.captions, Path(cache_dir), encoder=enc).pooled
    text_emb = evaluator.embed_text(table)  # [C, E]
    log(f"emoji: embedding {len(ds)} real images with the evaluator")
    real_emb = evaluator.embed_uint8(ds.images)  # [N, E]
    labels = data.labels
    ref = emoji_reference(labels, getattr(evaluator, "info", None), num_samples, seed)
    half_a, half_b, chosen, distractors = ref.half_a, ref.half_b, ref.prompts, ref.distractors
    num_samples = len(chosen)
    prompts = [ds.captions[data.canonical[i]] for i in chosen]
    base = seed * 1_000_000
    seeds = _seeds(base, num_samples)
    gen = Generated(pipe)
    log(f"emoji: generating {num_samples} images at psi={psi}")
    g_pix, g_real, g_match = gen(prompts, seeds, psi)
    g_emb = evaluator.embed_uint8(g_pix)

    # R-precision (paired: the same distractors for generated and real images).
    pool_caps = torch.as_tensor(data.canonical)  # distractors are dataset image indices
    true_t = text_emb[[data.canonical[i] for i in chosen]]
    pool_t = text_emb[pool_caps]
    hits_gen = r_precision_hits(g_emb, true_t, pool_t, distractors)
    hits_real = r_precision_hits(real_emb[chosen], true_t, pool_t, distractors)
    out: dict = {"prompts": {"n": num_samples, "caption": "canonical 'label, style style'",
                             "source": f"random images of half A of a seeded split (seed {seed}) of the images "
                                       "of the evaluator's held-out labels",
                             "heldout_labels": {"labels": len({labels[i] for i in ref.heldout}),
                                                "images": int(len(ref.heldout)), "fraction": ref.fraction,
                                                "sha256": ref.labels_sha256}}}
    out["r_precision"] = {"generated": mean_and_ci(hits_gen), "real_ceiling": mean_and_ci(hits_real),
                          "distractors": R_PRECISION_DISTRACTORS,
                          "definition": "share of images whose true caption has the highest evaluator cosine "
                                        "among itself and 99 canonical captions of held-out images with other "
                                        "labels; real_ceiling: the real prompt images, which the evaluator "
                                        "never saw either"}

    # FID / KID against half B; floors with real images of the same size / the other half.
    subset = int(min(500, num_samples, len(half_b), len(half_a)))
    fakes = {"generated": torch.from_numpy(g_pix).permute(0, 3, 1, 2).contiguous(),
             "floor_matched": real_emb[chosen], "floor_halves": real_emb[half_a]}
    log("emoji: FID/KID")
    fk = _fid_kid(evaluator, real_emb[half_b], fakes, subset, seed)
    out["fid"] = {"generated": fk["generated"]["fid"], "floor_matched": fk["floor_matched"]["fid"],
                  "floor_halves": fk["floor_halves"]["fid"], "n_generated": num_samples,
                  "n_reference": int(len(half_b)), "n_floor_halves": int(len(half_a)),
                  "space": f"evaluator image embedding ({evaluator.arch.embed_dim}-d, L2-normalised)"}
    out["kid"] = {name: {"mean": v["kid"], "std": v["kid_std"]} for name, v in fk.items()}
    out["kid"].update(subsets=50, subset_size=subset, kernel="polynomial degree 3, gamma 1/d, coef 1")
    out["inception_fid"] = ("unavailable: no local Inception weights (torch-fidelity is not installed); "
                            "nothing is downloaded")

    # Memorisation: nearest real image in evaluator space.
    nn_gen = _nn_cosine(g_emb, real_emb)
    nn_real = _nn_cosine(real_emb[chosen], real_emb, exclude=chosen)
    out["memorisation"] = {
        "threshold": MEMORISATION_THRESHOLD,
        "generated_share": float((nn_gen >= MEMORISATION_THRESHOLD).float().mean()),
        "generated_mean_nn_cosine": float(nn_gen.mean()),
        "real_reference_share": float((nn_real >= MEMORISATION_THRESHOLD).float().mean()),
        "real_reference_mean_nn_cosine": float(nn_real.mean()),
        "definition": "share of generated images whose nearest real (training) image has evaluator cosine >= "
                      "threshold; reference: the same for the real prompt images against all *other* real images",
    }

    # Diversity: bare-label prompts (whose real images are both styles), several seeds each.
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    heldout_labels = {labels[i] for i in ref.heldout}
    two = sorted(lab for lab, idx in by_label.items() if len(idx) == 2 and lab in heldout_labels)
    n_div = min(64, max(2, num_samples // 16), len(two))
    div_labels = [two[i] for i in np.random.default_rng(seed + 1).choice(len(two), size=n_div, replace=False)]
    k_div = 4
    div_prompts = [lab for lab in div_labels for _ in range(k_div)]
    div_seeds = _seeds(base + 500_000, k_div) * n_div
    g_div, _, _ = gen(div_prompts, div_seeds, psi)
    real_pairs = torch.stack([real_emb[by_label[lab]] for lab in div_labels])  # [D, 2, E]
    space = "evaluator image embedding (L2-normalised); distance = Euclidean = sqrt(2 - 2 cos)"
    out["diversity"] = {
        "space": space,
        "definition": f"mean over {n_div} bare-label prompts (held-out labels) of the mean pairwise distance "
                      "between the "
                      f"{k_div} images generated from one prompt (different seeds)",
        "generated": _feature_diversity(evaluator.embed_uint8(g_div), k_div),
        "prompts": n_div, "seeds_per_prompt": k_div,
    }
    out["style_distance"] = {
        "space": space,
        "google_twitter": float((real_pairs[:, 0] - real_pairs[:, 1]).norm(dim=-1).mean()),
        "definition": f"mean distance between the Google and the Twitter image of each of the same {n_div} "
                      "labels: how far apart the two real images of one bare-label caption are. It is not a "
                      "spread across seeds (the data holds one image per style), so it is no diversity ceiling",
        "labels": n_div,
    }

    # Discriminator usefulness.
    wrong = [ds.captions[data.canonical[int(dis[0])]] for dis in distractors]  # another label's caption
    real_imgs = ds.images[chosen]
    r_real, m_true = score_real(pipe, real_imgs, prompts)
    _, m_wrong = score_real(pipe, real_imgs, wrong)
    out["discriminator"] = {**_disc_block(m_true, m_wrong, r_real, g_real, psi),
                            **_generated_match(g_match, hits_gen, EMOJI_VERDICT)}

    if sweep:
        n_sw = min(num_samples, 256)
        rows = []
        sw_floor = _fid_kid(evaluator, real_emb[half_b], {"floor": real_emb[chosen[:n_sw]]},
                            min(subset, n_sw), seed)["floor"]["fid"]
        for p in PSIS:
            t0 = time.time()
            pix, rr, _ = gen(prompts[:n_sw], seeds[:n_sw], p)
            emb = evaluator.embed_uint8(pix)
            hits = r_precision_hits(emb, true_t[:n_sw], pool_t, distractors[:n_sw])
            fid = _fid_kid(evaluator, real_emb[half_b], {"g": emb}, min(subset, n_sw), seed)["g"]["fid"]
            d_pix, _, _ = gen(div_prompts, div_seeds, p)
            row = {"psi": p, "alignment": float(hits.mean()), "fid": fid,
                   "diversity": _feature_diversity(evaluator.embed_uint8(d_pix), k_div),
                   "mean_realism": float(np.mean(rr)), "n": n_sw}
            rows.append(row)
            log(f"  psi={p}: R-precision {row['alignment']:.3f}, FID {fid:.4f}, diversity {row['diversity']:.3f} "
                f"({time.time() - t0:.0f}s)")
        out["truncation_sweep"] = {
            "alignment": "R-precision (evaluator, 99 distractors)",
            "diversity": out["diversity"]["space"] + "; " + out["diversity"]["definition"],
            "fid": f"evaluator-space FID of {n_sw} images vs half B ({len(half_b)} real images)",
            "reference": {"alignment": float(hits_real[:n_sw].mean()),
                          "style_distance": out["style_distance"]["google_twitter"], "fid_floor": sw_floor},
            "rows": rows}
    return out


# ---------------------------------------------------------------------- entry point
def plot_path(metrics_path: Path) -> Path:
    """truncation.png next to metrics.json; `<stem>-truncation.png` for other names (no clashes in one folder)."""
    if metrics_path.name == "metrics.json":
        return metrics_path.with_name("truncation.png")
    return metrics_path.with_name(metrics_path.stem + "-truncation.png")


def evaluate_checkpoint(checkpoint: str | Path, num_samples: int | None = None, seed: int = 0,
                        out: str | Path | None = None, truncation: float = 1.0,
                        evaluator_dir: str | Path | None = None, data_root: str | Path = "data",
                        sweep: bool = True, plot: bool = True, threads: int = 1, text_encoder=None,
                        log=print) -> dict:
    """Evaluate a checkpoint folder; write metrics.json (default CHECKPOINT/metrics.json) and truncation.png.

    `text_encoder`: an already loaded `TextEncoder` to reuse (when evaluating several checkpoints);
    it is used only if its name matches the checkpoint's encoder.

    Raises CheckpointError / FileNotFoundError / ValueError with one-line messages.
    """
    start = time.time()
    date = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if threads > 0:
        torch.set_num_threads(threads)
    checkpoint = Path(checkpoint)
    config = read_config(checkpoint)
    dataset = (config.get("dataset") or {}).get("name")
    if dataset not in ("shapes", "emoji"):
        raise ValueError(f"{checkpoint / 'config.json'}: dataset {dataset!r} has no evaluation "
                         "(only 'shapes' and 'emoji')")
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES[dataset]
    if num_samples < 2:
        raise ValueError("--num-samples must be at least 2")
    evaluator = data = None
    if dataset == "emoji":  # fail early, before the models are loaded
        from .emoji_data import load_emoji_eval
        from .evaluator import load_evaluator

        evaluator = load_evaluator(evaluator_dir or default_evaluator_dir())
        data = load_emoji_eval(data_root, int(config["model"]["resolution"]))

    pipe = TextToImagePipeline.from_pretrained(checkpoint, device="cpu", text_encoder=text_encoder)
    config = pipe.config  # the config read together with the weights (live checkpoints get replaced)
    if dataset == "shapes":
        results = evaluate_shapes(pipe, config, num_samples, seed, truncation, sweep, log)
        evaluator_info = {"kind": "analytic shapes checker (no learned judge)", "version": EVALUATION_VERSION,
                          "color_threshold": sc.COLOR_THRESHOLD, "min_area": sc.MIN_AREA}
    else:
        from .evaluator import evaluator_id

        results = evaluate_emoji(pipe, config, num_samples, seed, truncation, sweep, evaluator, data,
                                 Path(data_root) / "cache", log)
        evaluator_info = evaluator_id(evaluator)
    metrics = {
        "kind": "metrics",
        "format_version": METRICS_FORMAT,
        "dataset": dataset,
        "checkpoint": {"path": str(checkpoint), "name": config.get("name", checkpoint.name),
                       "step": config.get("step"), "images_seen": config.get("images_seen"),
                       "resolution": config["model"]["resolution"], "text_encoder": config["model"]["text_encoder"]},
        "run": {"num_samples": num_samples, "seed": seed, "truncation": truncation,
                "truncation_sweep": list(PSIS) if sweep else [],
                "evaluation_version": EVALUATION_VERSION, "code": code_record(), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "device": f"CPU ({platform.machine()})",
                "date": date},
        "evaluator": evaluator_info,
        "measured": MEASURED[dataset],
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


MEASURED = {
    "shapes": {
        "alignment": "analytic compositional accuracy of generated images (one image per prompt) for seen prompts "
                     "(training sampler, fixed seed) and held-out colour/shape pairs; ceiling_real: the same "
                     "checker on real renders of the same scenes",
        "diversity": "mean pairwise RMS pixel distance across seeds of one prompt, vs fresh real renders",
        "discriminator": "AUROC of the match score (true vs mismatched captions on real renders; on generated "
                         "images, correct vs wrong by the checker's 'exact' verdict) and of the realism score "
                         "(real renders vs generated images)",
        "truncation_sweep": "alignment (colour+shape+position), pixel diversity and mean realism at each psi",
    },
    "emoji": {
        "r_precision": "top-1 retrieval of the true canonical caption among 100 (evaluator cosine); "
                       "real_ceiling: the real images of the same prompts",
        "fid": "torchmetrics FID in evaluator feature space vs half B of the real data; floors: real images",
        "kid": "torchmetrics KID in evaluator feature space, same sets as FID",
        "memorisation": "share of generated images with a real image at evaluator cosine >= threshold",
        "diversity": "mean pairwise evaluator-space distance across seeds of a bare-label prompt",
        "style_distance": "evaluator-space distance between the Google and Twitter images of the same labels",
        "discriminator": "AUROC of the match score (true vs mismatched captions on real images; on generated "
                         "images, R-precision hits vs misses) and of the realism score (real vs generated images)",
        "truncation_sweep": "R-precision, evaluator FID, diversity and mean realism at each psi",
    },
}


__all__ = ["evaluate_checkpoint", "PSIS", "DEFAULT_NUM_SAMPLES"]
