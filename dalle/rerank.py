"""Best-of-N: which of N candidate images of a prompt to keep, by one of the discriminator's scores.

`python -m dalle evaluate` measures, for each score, how often the kept image is right (the shapes
checker's exact verdict, the evaluator's top-1 for emoji) and records it in metrics.json
("best_of"); the playground then reranks a checkpoint's candidates by the score that helped most.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# score name -> its value per image from the discriminator's probabilities (realism, match), both [P, K]
SCORES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "realism": lambda realism, match: realism,
    "match": lambda realism, match: match,
    "realism x match": lambda realism, match: realism * match,
}
DEFAULT_SCORE = "realism x match"  # where a checkpoint has no measurement
BEST_OF = (4, 8)  # the candidate counts evaluate measures
BEST_OF_PSI = 0.7  # the truncation evaluate measures best-of-N at: the playground's default


def rerank(realism: np.ndarray, match: np.ndarray, keep: int, score: str = DEFAULT_SCORE) -> np.ndarray:
    """Column indices [P, keep] of the best candidates of each row by `score` (best first, ties broken by the
    lower column). realism, match [P, K] probabilities."""
    value = SCORES[score](realism.astype(np.float64), match.astype(np.float64))
    return np.argsort(-value, axis=1, kind="stable")[:, :keep]


def best_of_rates(right: np.ndarray, realism: np.ndarray, match: np.ndarray) -> dict:
    """How often the kept image is right. right, realism, match [P, K >= max(BEST_OF)] for K seeds of P prompts.
    -> {"best_of_1": share of the first seeds that are right, "oracle": {"4": any of 4 right, ...},
        "by_score": {score: {"4": share right of the best of the first 4 by that score, "8": ...}}}"""
    rows = np.arange(len(right))
    out = {"best_of_1": float(right[:, 0].mean()),
           "oracle": {str(k): float(right[:, :k].any(1).mean()) for k in BEST_OF},
           "by_score": {}}
    for name in SCORES:
        out["by_score"][name] = {str(k): float(right[rows, rerank(realism[:, :k], match[:, :k], 1, name)[:, 0]].mean())
                                 for k in BEST_OF}
    return out


def chosen_score(best_of: dict | None) -> str | None:
    """The score whose best of 4 was right most often over all measured prompts (metrics.json's "best_of"
    block), or None when there is no measurement. Ties go to the order of SCORES."""
    if not best_of:
        return None
    by_score = best_of["parts"]["all"]["by_score"]
    return max(SCORES, key=lambda name: by_score[name]["4"])


def gap_taken(best_of: dict | None, parts: tuple[str, ...], k: int = 4) -> float | None:
    """How much of the room best-of-k leaves the chosen score takes, over `parts` of metrics.json's "best_of"
    block pooled by their prompts: (kept right - first seed right) / (any of k right - first seed right).
    1 = it always keeps a right image when there is one, 0 = no better than the first seed; None when not
    measured or when there is no room (every first seed that could be right already is)."""
    if not best_of or any(p not in best_of["parts"] for p in parts):
        return None
    rows = [best_of["parts"][p] for p in parts]
    n = sum(r["prompts"] for r in rows)

    def pooled(value) -> float:
        return sum(value(r) * r["prompts"] for r in rows) / n

    first = pooled(lambda r: r["best_of_1"])
    room = pooled(lambda r: r["oracle"][str(k)]) - first
    kept = pooled(lambda r: r["by_score"][best_of["chosen"]][str(k)])
    return None if room <= 0 else (kept - first) / room
