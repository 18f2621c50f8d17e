"""The common judge of the Compare tab: one scorer for every checkpoint of a dataset.

Each checkpoint's own discriminator is a different judge, so its realism and match scores
rank images of that checkpoint only. The common judge scores every checkpoint's images
with the same fixed network or rule, so checkpoints of one dataset can be ranked:

- emoji: the shipped evaluator (`<checkpoints>/evaluator`), the cosine between an image's
  embedding and its prompt's embedding (both L2-normalised; higher = closer to the prompt);
- shapes: the world's analytic checker, the share of images in which everything the prompt
  states (colour, shape, position, size, relation, count) is right. Prompts outside the
  world's grammar are not judged.

Which of the two judges a dataset comes from the dataset registry (`dalle/datasets.py`): a dataset
with a `checker` is judged by that rule; any other by the evaluator, where the evaluator was trained
on it. Other datasets get no common judge (`Verdict.score` is None, and `judge` says why).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dalle.datasets import Checker, known_kind
from dalle.prompts import spell_out_emoji
from dalle.text_encoder import TextEncoder

from .results import Generation

log = logging.getLogger(__name__)
EVALUATOR_FOLDER = "evaluator"  # inside the checkpoints folder
EVALUATOR_JUDGE = "evaluator cosine (image vs prompt)"


Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def wilson(right: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a share right / n (sound at 0 / n and n / n, unlike p ± z·se)."""
    if n <= 0:
        return 0.0, 1.0
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Verdict:
    """The common judge's mean score over the images it could judge, and its 95% interval.

    A handful of images decides little (8 of 8 right is 0.68-1.00), so the Compare tab shows n and
    the interval: two checkpoints differ where their intervals part."""

    judge: str  # which judge scored, or why none did
    score: float | None  # None when no image could be judged
    judged: int  # images judged (n)
    sd: float | None = None  # standard deviation of the per-image scores; None: the score is a share right

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% interval of the score: Wilson's for a share right, mean ± 1.96 standard errors for a
        mean of per-image scores; None without a score."""
        if self.score is None or self.judged <= 0:
            return None
        if self.sd is None:
            return wilson(round(self.score * self.judged), self.judged)
        half = Z95 * self.sd / math.sqrt(self.judged)
        return self.score - half, self.score + half


class CommonJudge:
    """Scores generations with the dataset's checker (shapes) or the evaluator (emoji).

    Args:
        evaluator_dir: folder of the shipped evaluator; loaded on first use, once.
        encoder: returns the (shared) text encoder for an encoder name.
    """

    def __init__(self, evaluator_dir: Path, encoder: Callable[[str], TextEncoder]):
        self.evaluator_dir = Path(evaluator_dir)
        self._encoder = encoder
        self._lock = threading.Lock()
        self._evaluator = None  # dalle.evaluation.evaluator.Evaluator once loaded
        self._error: str | None = None

    def _load(self):
        """The evaluator, or None (with `self._error` saying why)."""
        from dalle.evaluation.evaluator import EvaluatorError, load_evaluator

        with self._lock:
            if self._evaluator is None and self._error is None:
                try:
                    self._evaluator = load_evaluator(self.evaluator_dir)
                except (EvaluatorError, KeyError, TypeError, ValueError) as e:  # the page names no server path
                    log.warning("no common judge for emoji: %s", str(e).splitlines()[0] if str(e) else type(e))
                    self._error = f"no usable evaluator in the checkpoints folder's {self.evaluator_dir.name}/"
            return self._evaluator

    def covers(self) -> str | None:
        """The dataset the evaluator was trained on, or None when there is no usable evaluator."""
        ev = self._load()
        if ev is None:
            return None
        return str(((ev.info.get("training") or {}).get("data") or {}).get("dataset", "")).lower() or None

    def __call__(self, gen: Generation, dataset: str) -> Verdict:
        dataset = dataset.lower()
        kind = known_kind(dataset)
        if kind is not None and kind.checker is not None:
            return self._checked(gen, kind.checker)
        if dataset and dataset == self.covers():
            return self._cosine(gen)
        reason = self._error or f"the evaluator does not cover {dataset!r}"
        return Verdict(f"none: {reason}", None, 0)

    def _cosine(self, gen: Generation) -> Verdict:
        """Mean cosine of evaluator image embeddings [P*N, E] and their prompts' embeddings [P, E]."""
        ev = self._evaluator
        p, n = gen.shape
        pooled = self._encoder(ev.text_encoder_name).embed([spell_out_emoji(t) for t in gen.prompts])  # [P, D]
        with self._lock:
            text = ev.embed_text(pooled)  # [P, E]
            images = ev.embed_uint8(gen.pixels.reshape(p * n, *gen.pixels.shape[2:])).reshape(p, n, -1)  # [P, N, E]
        cosine = (images * text[:, None, :]).sum(-1)  # [P, N]
        return Verdict(EVALUATOR_JUDGE, float(cosine.mean()), p * n,
                       float(np.asarray(cosine, dtype=np.float64).std(ddof=1)) if p * n > 1 else 0.0)

    @staticmethod
    def _checked(gen: Generation, checker: Checker) -> Verdict:
        """Share of the images [P, N, R, R, 3] that the checker calls right, over the prompts it can read."""
        right = checker.verdicts(gen.prompts, gen.pixels)
        if not right:
            return Verdict(f"none: no prompt is {checker.reads}", None, 0)
        return Verdict(checker.name, float(np.mean(right)), len(right))
