"""The emoji evaluation: what `python -m dalle evaluate` measures on an emoji checkpoint.

R-precision, FID/KID, memorisation and diversity in the feature space of the shipped evaluator
(`checkpoints/evaluator`), each with a reference value measured on real images; the discriminator's
AUROCs, on generated images against the evaluator's top-1 verdict; and a truncation sweep. Prompts,
distractors and real references come only from the labels the evaluator never trained on
(`emoji_reference`), so real and generated images are equally new to it. Everything is judged at the
evaluator's resolution (64 px): the real references are the prepared 64 px images, and a checkpoint's images
of another size are resized to it (bilinear; a 32 px image is upsampled), so a checkpoint is compared with
the crisp images, not with real images as crude as its own. Only the discriminator's scores of real images
use the data at the checkpoint's own resolution. `load` and `measure` are what
the dataset registry (`dalle/datasets.py`) hands to `dalle/evaluation/evaluate.py`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..pipeline import TextToImagePipeline
from .emoji_data import EmojiEvalData, prepare_command
from .heldout_captions import heldout_caption_block
from .sampling import (PSIS, Generated, best_of_block, discriminator_block, discriminator_head_block, generated_match,
                       sample_seeds, score_real)
from .stats import draw_distractors, mean_and_ci, mean_pairwise_distance, r_precision_hits, rank_correlation

MEMORISATION_THRESHOLD = 0.95
R_PRECISION_DISTRACTORS = 99
BEST_OF_PROMPTS = 192  # held-out prompts in the best-of-N measurement

EMOJI_VERDICT = ("evaluator top-1: the true caption has the highest evaluator cosine among itself and "
                 "the 99 R-precision distractors (an R-precision hit)")
_REPO = Path(__file__).resolve().parents[2]


def default_evaluator_dir() -> Path:
    local = Path("checkpoints/evaluator")
    return local if (local / "config.json").is_file() else _REPO / "checkpoints" / "evaluator"


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, R, R, 3] -> uint8 [N, size, size, 3]: bilinear, antialiased when shrinking (plain bilinear when
    enlarging, as the evaluator reads smaller images), rounded. Unchanged when already `size` px."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


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


def style_distances(emb: torch.Tensor, groups: list[list[int]], styles: list[str]) -> dict:
    """Evaluator-space distances between the real images of one label in different styles.

    emb: [N, E] image embeddings (L2-normalised); groups: per label, its image indices (two or more, one a
    style); styles: per image, its style. -> {"between_styles": mean over labels of the mean distance over the
    pairs of its images, "google_twitter": mean over the labels with both of the Google-Twitter distance (None
    when none has both), "styles": the styles present, sorted}.
    """
    per_label, pair = [], []
    for idx in groups:
        rows = emb[list(idx)].float()
        dist = (rows[:, None] - rows[None]).norm(dim=-1)  # [k, k]
        upper = torch.triu_indices(len(idx), len(idx), offset=1)
        per_label.append(float(dist[upper[0], upper[1]].mean()))
        by_style = {styles[i]: k for k, i in enumerate(idx)}
        if "google" in by_style and "twitter" in by_style:
            pair.append(float(dist[by_style["google"], by_style["twitter"]]))
    return {"between_styles": float(np.mean(per_label)), "google_twitter": float(np.mean(pair)) if pair else None,
            "styles": sorted({styles[i] for idx in groups for i in idx})}


def _feature_diversity(emb: torch.Tensor, k: int) -> float:
    """Embeddings [P*k, E] grouped by prompt -> mean over prompts of their mean pairwise distance."""
    groups = emb.reshape(-1, k, emb.shape[-1])
    return float(np.mean([mean_pairwise_distance(g) for g in groups]))


def evaluate_emoji(pipe: TextToImagePipeline, config: dict, num_samples: int, seed: int, psi: float, sweep: bool,
                   evaluator, data: EmojiEvalData, cache_dir: str | Path, log,
                   disc_images: np.ndarray | None = None) -> dict:
    """Measure an emoji checkpoint with up to `num_samples` prompts of the evaluator's held-out labels at
    truncation `psi`; `sweep`: also the truncation sweep over `PSIS`. Every draw comes from `seed`.

    `data`: the emoji data at the evaluator's resolution (the real references; generated images of another
    size are resized to it inside the evaluator). `disc_images`: the same real images, in the same order, at
    the checkpoint's resolution, for the discriminator's scores of real images (default: `data`'s images,
    resized to the checkpoint's resolution when they differ).

    -> metrics.json blocks {"prompts", "r_precision", "fid", "kid", "inception_fid", "memorisation",
    "diversity", "style_distance", "discriminator"[, "truncation_sweep"]}.
    """
    from ..text_encoder import encode_captions_cached

    ds = data.data
    own = int(pipe.model_config.resolution)
    if disc_images is None:
        disc_images = resize_uint8(ds.images, own)
    if len(disc_images) != len(ds) or disc_images.shape[1] != own:
        raise ValueError(f"disc_images: expected {len(ds)} images at {own} px, got {disc_images.shape}")
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
    seeds = sample_seeds(base, num_samples)
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
    judged = int(ds.images.shape[1])
    out: dict = {"prompts": {"n": num_samples, "caption": "canonical 'label, style style'",
                             "judged_at": {"px": judged, "generated_px": int(g_pix.shape[1]), "real_px": judged,
                                           "resize": "generated images resized to the evaluator's resolution "
                                                     "(bilinear, antialiased when shrinking); real references "
                                                     "are the prepared images at that resolution"},
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

    # Diversity: bare-label prompts (whose real images are two or three styles), several seeds each.
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    heldout_labels = {labels[i] for i in ref.heldout}
    multi = sorted(lab for lab, idx in by_label.items() if len(idx) >= 2 and lab in heldout_labels)
    n_div = min(64, max(2, num_samples // 16), len(multi))
    div_labels = [multi[i] for i in np.random.default_rng(seed + 1).choice(len(multi), size=n_div, replace=False)]
    k_div = 4
    div_prompts = [lab for lab in div_labels for _ in range(k_div)]
    div_seeds = sample_seeds(base + 500_000, k_div) * n_div
    g_div, _, _ = gen(div_prompts, div_seeds, psi)
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
        **style_distances(real_emb, [by_label[lab] for lab in div_labels], [e["style"] for e in data.entries]),
        "definition": f"between_styles: mean over the same {n_div} labels of the mean distance between the real "
                      "images of one label in different styles (every pair of its styles); google_twitter: the "
                      "same for the Google and the Twitter image alone. How far apart the real images of one "
                      "bare-label caption are; not a spread across seeds (the data holds one image per style), "
                      "so no diversity ceiling",
        "labels": n_div,
    }

    # Best-of-N by each score, at the app's truncation: the first prompts, 8 seeds each, judged by the
    # evaluator's top-1 against each prompt's own distractors.
    n_bo = min(BEST_OF_PROMPTS, num_samples)

    def top1(bo_prompts: list[str], pixels: np.ndarray) -> np.ndarray:
        rows = np.repeat(np.arange(n_bo), len(bo_prompts) // n_bo)
        return r_precision_hits(evaluator.embed_uint8(pixels), true_t[rows], pool_t, distractors[rows])

    log(f"emoji: best-of-8 on {n_bo} prompts")
    out["best_of"] = {**best_of_block(gen, {"labels": prompts[:n_bo]}, top1, base + 700_000),
                      "verdict": EMOJI_VERDICT}

    # Discriminator usefulness.
    wrong = [ds.captions[data.canonical[int(dis[0])]] for dis in distractors]  # another label's caption
    real_imgs = disc_images[chosen]  # at the checkpoint's resolution: the discriminator's own input
    r_real, m_true = score_real(pipe, real_imgs, prompts)
    _, m_wrong = score_real(pipe, real_imgs, wrong)
    out["discriminator"] = {**discriminator_block(m_true, m_wrong, r_real, g_real, psi),
                            **generated_match(g_match, hits_gen, EMOJI_VERDICT, g_real),
                            "generated_realism_rank_correlation": rank_correlation(g_real, (g_emb * true_t).sum(-1)),
                            "generated_realism_rank_correlation_definition":
                                "Spearman's rank correlation, on the generated images, of realism with the "
                                "evaluator's cosine between the image and its own caption",
                            **discriminator_head_block(pipe, real_imgs, prompts, wrong, g_pix, prompts, hits_gen)}

    # Prompts as people write them: the held-out phrases no training image carried.
    log("emoji: held-out captions")
    block = heldout_caption_block(gen, evaluator, data, text_emb, real_emb, ref.heldout, psi, seed)
    if block is not None:
        out["heldout_captions"] = block

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
                          "style_distance": out["style_distance"]["between_styles"], "fid_floor": sw_floor},
            "rows": rows}
    return out



@dataclass
class EmojiInputs:
    """What an emoji evaluation needs beyond the checkpoint, loaded before the models (so it fails early)."""

    evaluator: object  # dalle.evaluation.evaluator.Evaluator
    data: EmojiEvalData  # the prepared emoji data at the evaluator's resolution (64 px): the real references
    cache_dir: Path  # where encoded captions are cached
    disc_images: np.ndarray | None = None  # the same real images at the checkpoint's resolution, when it differs


def missing_data(data_root: str | Path, judged: int, own: int) -> str | None:
    """One line naming every emoji file an evaluation needs but lacks, each with the command that prepares it;
    None when nothing is missing. `judged`: the evaluator's resolution (real references, always needed);
    `own`: the checkpoint's (the discriminator's scores of real images)."""
    root = Path(data_root) / "emoji"
    why = {own: f"the discriminator of this {own} px checkpoint scores real images at {own} px",
           judged: f"emoji checkpoints are judged at the evaluator's {judged} px against the real {judged} px "
                   "images"}  # when own == judged, the judging is the reason given
    parts = []
    for res in dict.fromkeys((judged, own)):
        gone = [p for p in (root / f"emoji-{res}.npz", root / f"emoji-{res}.json") if not p.is_file()]
        if gone:
            parts.append(f"{gone[0]} not found ({why[res]}); run `{prepare_command(data_root, res)}` first")
    return "; and ".join(parts) or None


def load(config: dict, data_root: str | Path, evaluator_dir: str | Path | None) -> EmojiInputs:
    """The evaluator (`evaluator_dir`, default `default_evaluator_dir()`), the emoji data under `data_root` at the
    evaluator's resolution (64 px) and, when the checkpoint's resolution differs, the same images at the
    checkpoint's (for the discriminator). Raises EvaluatorError / FileNotFoundError / ValueError with one-line
    messages; a missing file's message names `python -m dalle prepare emoji --resolution R` for each R needed."""
    from .emoji_data import load_emoji_eval
    from .evaluator import load_evaluator

    evaluator = load_evaluator(evaluator_dir or default_evaluator_dir())
    judged, own = int(evaluator.arch.resolution), int(config["model"]["resolution"])
    missing = missing_data(data_root, judged, own)
    if missing:
        raise FileNotFoundError(missing)
    data = load_emoji_eval(data_root, judged)
    disc_images = None
    if own != judged:
        own_data = load_emoji_eval(data_root, own)
        if [(e["hexcode"], e["style"]) for e in own_data.entries] != [(e["hexcode"], e["style"]) for e in data.entries]:
            raise ValueError(f"{Path(data_root) / 'emoji'}: emoji-{own} and emoji-{judged} hold different images; "
                             f"prepare both again (`{prepare_command(data_root, judged)}` and "
                             f"`{prepare_command(data_root, own)}`)")
        disc_images = own_data.data.images
    return EmojiInputs(evaluator, data, Path(data_root) / "cache", disc_images)


def measure(pipe: TextToImagePipeline, config: dict, loaded: EmojiInputs, num_samples: int, seed: int, psi: float,
            sweep: bool, log) -> tuple[dict, dict]:
    """`evaluate_emoji` -> (its metric blocks, metrics.json's "evaluator" record: which evaluator judged)."""
    from .evaluator import evaluator_id

    results = evaluate_emoji(pipe, config, num_samples, seed, psi, sweep, loaded.evaluator, loaded.data,
                             loaded.cache_dir, log, disc_images=loaded.disc_images)
    return results, evaluator_id(loaded.evaluator)


MEASURED = {
    "r_precision": "top-1 retrieval of the true canonical caption among 100 (evaluator cosine, at the evaluator's "
                   "64 px: generated images resized to it); real_ceiling: the real 64 px images of the same prompts",
    "fid": "torchmetrics FID in evaluator feature space vs half B of the real data; floors: real images",
    "kid": "torchmetrics KID in evaluator feature space, same sets as FID",
    "memorisation": "share of generated images with a real image at evaluator cosine >= threshold",
    "diversity": "mean pairwise evaluator-space distance across seeds of a bare-label prompt",
    "style_distance": "evaluator-space distance between the real images of the same labels in different styles "
                      "(mean over pairs of styles; and the Google-Twitter pair alone)",
    "discriminator": "AUROC of the match score (true vs mismatched captions on real images; on generated "
                     "images, R-precision hits vs misses) and of the realism score (real vs generated images; on generated "
                     "images, hits vs misses)",
    "truncation_sweep": "R-precision, evaluator FID, diversity and mean realism at each psi",
    "best_of": "share of prompts whose kept image is an evaluator top-1 hit when the best of the first 4 or 8 "
               "seeds is kept by each discriminator score, at the playground's psi; best_of_1: the first seed; "
               "oracle: any of them a hit",
}
