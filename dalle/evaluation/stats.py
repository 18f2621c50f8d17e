"""Small, dependency-light statistics used by the evaluation: AUROC, R-precision, distances."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative),
    ties counting one half (Mann-Whitney U / (n_pos * n_neg)). 0.5 = chance, 1.0 = perfect."""
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks for ties
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def auroc_by_verdict(scores: np.ndarray, verdicts: np.ndarray) -> float | None:
    """AUROC of `scores` [N] at separating items whose verdict [N] (bool) is True from those where it is False.

    None when one of the two groups is empty (the AUROC is undefined, not 0.5)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    v = np.asarray(verdicts, dtype=bool).ravel()
    if len(s) != len(v):
        raise ValueError(f"{len(s)} scores but {len(v)} verdicts")
    if v.all() or not v.any():
        return None
    return auroc(s[v], s[~v])


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two scores of the same N items (average ranks for ties): 1 = the same order,
    0 = unrelated, -1 = reversed. None when either score is constant (no order to compare)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"{len(a)} and {len(b)} scores")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def draw_distractors(true_labels: list, pool_labels: list, k: int, seed: int) -> np.ndarray:
    """For item i, `k` distinct pool indices whose label differs from true_labels[i]: int [N, k].

    The same draw is reused for real and generated images, so their R-precisions are paired.
    """
    rng = np.random.default_rng(seed)
    pool_labels = np.asarray(pool_labels, dtype=object)
    out = np.empty((len(true_labels), k), dtype=np.int64)
    for i, lab in enumerate(true_labels):
        allowed = np.flatnonzero(pool_labels != lab)
        if len(allowed) < k:
            raise ValueError(f"only {len(allowed)} candidates with another label; need {k}")
        out[i] = rng.choice(allowed, size=k, replace=False)
    return out


def r_precision_hits(image_emb: torch.Tensor, true_text: torch.Tensor, pool_text: torch.Tensor,
                     distractors: np.ndarray) -> np.ndarray:
    """Per item: is the true caption's cosine strictly above all its distractors' cosines? bool [N].

    image_emb [N, D], true_text [N, D], pool_text [M, D] are L2-normalised; distractors int [N, k].
    A tie counts as a miss (so a constant image never scores).
    """
    true_sim = (image_emb * true_text).sum(-1)  # [N]
    d = pool_text[torch.as_tensor(distractors)]  # [N, k, D]
    other = torch.einsum("nd,nkd->nk", image_emb, d)
    return (true_sim > other.max(dim=1).values).cpu().numpy()


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance over all unordered pairs of rows of x [K, D] (K >= 2)."""
    x = x.double().reshape(len(x), -1)
    if len(x) < 2:
        raise ValueError("need at least two rows")
    d = torch.cdist(x, x)
    iu = torch.triu_indices(len(x), len(x), offset=1)
    return float(d[iu[0], iu[1]].mean())


def mean_and_ci(values: np.ndarray) -> dict:
    """Mean of 0/1 (or real) values with a normal-approximation 95% half-width and the count."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"mean": None, "ci95": None, "n": 0}
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else None
    return {"mean": float(v.mean()), "ci95": None if half is None else float(half), "n": int(len(v))}
