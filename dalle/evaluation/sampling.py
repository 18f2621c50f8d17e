"""What every dataset's evaluation shares: generating scored samples, and the discriminator's numbers.

`Generated` draws a checkpoint's images for (prompt, seed) pairs at one truncation, with the
discriminator's realism and match scores; `score_real` scores real images. `discriminator_block` and
`generated_match` turn those scores into the AUROCs of metrics.json's "discriminator" block. The
datasets' own evaluations (`dalle/shapes/evaluate.py`, `dalle/evaluation/emoji.py`) build on these.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ..images import tensor_to_uint8, uint8_to_tensor
from ..pipeline import TextToImagePipeline, seed_latents
from ..rerank import BEST_OF, BEST_OF_PSI, best_of_rates, chosen_score
from .stats import auroc, auroc_by_verdict, mean_pairwise_distance

EVALUATION_VERSION = "5"  # 2: "seen" shapes scenes from a seed stream training never uses;
# 3: match score on generated images against the checker's / evaluator's verdict;
# 4: emoji prompts, distractors and real references only from the evaluator's held-out labels;
# 5: emoji judged at 64 px by the second evaluator, three styles; the match score from the judge where there is one
PSIS = (0.0, 0.3, 0.5, 0.7, 1.0)  # the truncations of the sweep


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
    """Discriminator (realism [N], match [N]) probabilities for real uint8 images [N, R, R, 3] with the given
    N prompts."""
    text = pipe.encode(prompts)
    real, match = [], []
    for k in range(0, len(images), batch_size):
        r, m = pipe.score_tensor(uint8_to_tensor(images[k:k + batch_size], pipe.device), text[k:k + batch_size])
        real.append(r)
        match.append(m)
    return np.concatenate(real), np.concatenate(match)


def mismatched_captions(captions: list[str], rng: random.Random) -> list[str]:
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


def sample_seeds(base: int, n: int) -> list[int]:
    """The n consecutive latent seeds base, base + 1, ...: each part of an evaluation draws from its own base."""
    return [base + i for i in range(n)]


def pixel_diversity(images: np.ndarray, k: int) -> float:
    """images [P*k, R, R, 3] grouped by prompt -> mean over prompts of mean pairwise RMS distance in [0, 1] units."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255.0)
    groups = x.reshape(-1, k, x[0].numel())
    d = [mean_pairwise_distance(g) / np.sqrt(g.shape[1]) for g in groups]  # L2 / sqrt(D) = RMS
    return float(np.mean(d))


def discriminator_block(m_true, m_wrong, r_real, r_gen, psi) -> dict:
    """The match AUROC (real images, match scores m_true [M] with their own vs m_wrong [M] with another caption)
    and the realism AUROC (realism r_real [N] of real vs r_gen [G] of generated images at truncation psi)."""
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


def discriminator_head_block(pipe: TextToImagePipeline, real: np.ndarray, own: list[str], other: list[str],
                             generated: np.ndarray, prompts: list[str], verdicts: np.ndarray,
                             batch_size: int = 128) -> dict:
    """Where the match score comes from, and, when it is the judge's, the discriminator's own (adversarial) match
    head measured the same way: on real uint8 images [M, R, R, 3] with their own captions `own` vs `other`, and on
    generated images [N, R, R, 3] of `prompts` against `verdicts` [N]."""
    out: dict = {"match_source": pipe.match_source}
    if pipe.judge is None:
        return out

    def head(images: np.ndarray, captions: list[str]) -> np.ndarray:
        text = pipe.encode(captions)
        return np.concatenate([pipe.discriminator_match(uint8_to_tensor(images[k:k + batch_size], pipe.device),
                                                        text[k:k + batch_size])
                               for k in range(0, len(images), batch_size)])

    v = np.asarray(verdicts, dtype=bool)
    out["discriminator_match_auroc"] = auroc(head(real, own), head(real, other))
    out["discriminator_generated_match_auroc"] = auroc_by_verdict(head(generated, prompts), v)
    out["judge"] = {k: (pipe.judge_record or {}).get(k) for k in ("trunk", "images", "seconds", "negatives")}
    return out


def generated_match(match: np.ndarray, verdicts: np.ndarray, verdict: str, realism: np.ndarray) -> dict:
    """How well the match score [N] of generated images separates correct (verdicts [N] True) from wrong ones,
    and how well their realism score [N] does; `verdict` says who judged."""
    v = np.asarray(verdicts, dtype=bool)
    return {"generated_match_auroc": auroc_by_verdict(match, v),
            "generated_realism_auroc": auroc_by_verdict(realism, v),
            "generated_match_verdict": verdict,
            "generated_match_auroc_definition": "generated images that the verdict calls correct (positives) vs "
                                                "wrong (negatives), each scored with its own caption; "
                                                "null when one group is empty",
            "generated_match_n_correct": int(v.sum()), "generated_match_n_wrong": int((~v).sum()),
            "mean_match_generated_correct": float(np.mean(match[v])) if v.any() else None,
            "mean_match_generated_wrong": float(np.mean(match[~v])) if (~v).any() else None}


def best_of_block(gen: Generated, parts: dict[str, list[str]], verdicts, seed: int) -> dict:
    """Best-of-N as the playground does it: for each prompt of each part, the candidates of seeds s, s+1, ...
    at truncation BEST_OF_PSI; `verdicts(prompts [N], pixels uint8 [N, R, R, 3]) -> bool [N]` says which images
    are right. -> metrics.json's "best_of" block: per part `best_of_rates`, over all parts too, and the score
    the playground reranks by (`chosen_score`)."""
    k = max(BEST_OF)
    parts = {name: prompts for name, prompts in parts.items() if prompts}  # a small sample may lack a kind
    every = [p for prompts in parts.values() for p in prompts]
    prompts = [p for p in every for _ in range(k)]
    seeds = sample_seeds(seed, len(prompts))  # prompt i: seeds seed + i*k, ..., + k - 1, as the app draws them
    pixels, realism, match = gen(prompts, seeds, BEST_OF_PSI)
    right = np.asarray(verdicts(prompts, pixels), dtype=bool).reshape(-1, k)
    realism, match = realism.reshape(-1, k), match.reshape(-1, k)
    out: dict = {"psi": BEST_OF_PSI, "candidates": k, "parts": {}}
    start = 0
    for name, part in [("all", every)] + (list(parts.items()) if len(parts) > 1 else []):
        rows = slice(0, len(every)) if name == "all" else slice(start, start + len(part))
        out["parts"][name] = {"prompts": len(part), **best_of_rates(right[rows], realism[rows], match[rows])}
        start += 0 if name == "all" else len(part)
    out["chosen"] = chosen_score(out)
    return out
