"""Evaluation statistics on cases with known answers: AUROC, R-precision, distances, means with intervals.
The test selection of the statistics' mutation run (docs/testing.md)."""

import numpy as np
import pytest
import torch

from dalle.evaluation.stats import auroc, draw_distractors, mean_pairwise_distance, r_precision_hits


def test_r_precision_identity_features_is_one():
    n = 120
    eye = torch.eye(n)
    labels = [f"l{i}" for i in range(n)]
    dis = draw_distractors(labels, labels, 99, seed=0)
    assert all(labels[i] not in {labels[j] for j in row} for i, row in enumerate(dis))
    hits = r_precision_hits(eye, eye, eye, dis)
    assert hits.mean() == 1.0


def test_r_precision_known_fraction():
    # 100 labels and 99 distractors: every other label is a distractor. Items 0..29 look like
    # themselves (hit); items 30..99 look like label (i+1) % 100, which is always a distractor (miss).
    n = 100
    text = torch.eye(n)
    labels = list(range(n))
    images = torch.stack([text[i] if i < 30 else text[(i + 1) % n] for i in range(n)])
    dis = draw_distractors(labels, labels, 99, seed=1)
    assert r_precision_hits(images, text, text, dis).mean() == pytest.approx(0.30)
    # a constant image ties with everything: ties are misses
    assert r_precision_hits(torch.ones(n, n) / 10, text, text, dis).mean() == 0.0


def test_auroc_known_values():
    assert auroc([2, 3, 4], [0, 1]) == 1.0
    assert auroc([0, 1], [2, 3, 4]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    # 4 positive/negative pairs: (1>0) (1<2) (3>0) (3>2) -> 3/4
    assert auroc([1, 3], [0, 2]) == pytest.approx(0.75)
    # ties count one half: (1 vs 1) = 0.5, (2 vs 1) = 1 -> 0.75
    assert auroc([1, 2], [1]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="^auroc needs at least one positive and one negative score$"):
        auroc([], [1])


def test_mean_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert mean_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)
    assert mean_pairwise_distance(x[:2]) == pytest.approx(5.0)  # two rows: one pair
    with pytest.raises(ValueError, match="^need at least two rows$"):
        mean_pairwise_distance(x[:1])


def test_auroc_by_verdict():
    from dalle.evaluation.stats import auroc_by_verdict

    assert auroc_by_verdict([0.9, 0.1, 0.8, 0.2], [True, False, True, False]) == 1.0
    assert auroc_by_verdict([0.9, 0.1, 0.8, 0.2], [False, True, False, True]) == 0.0
    # pairs (right, wrong): (0.9, 0.5) (0.9, 0.95) (0.3, 0.5) (0.3, 0.95) -> 1 of 4
    assert auroc_by_verdict([0.9, 0.5, 0.3, 0.95], [True, False, True, False]) == pytest.approx(0.25)
    assert auroc_by_verdict([0.1, 0.2], [True, True]) is None
    assert auroc_by_verdict([0.1, 0.2], [False, False]) is None
    with pytest.raises(ValueError, match="2 scores but 1 verdicts"):
        auroc_by_verdict([0.1, 0.2], [True])
    # verdicts as 0/1 integers are verdicts, not row indices
    assert auroc_by_verdict([0.9, 0.5, 0.3, 0.95], [1, 0, 1, 0]) == pytest.approx(0.25)


def test_mean_and_ci_known_values():
    from dalle.evaluation.stats import mean_and_ci

    # values 0, 0, 1, 1: mean 0.5, sample std sqrt(1/3), half-width 1.96 * sqrt(1/3) / 2
    out = mean_and_ci(np.array([0, 0, 1, 1]))
    assert out["mean"] == 0.5 and out["n"] == 4
    assert out["ci95"] == pytest.approx(1.96 * (1 / 3) ** 0.5 / 2)
    assert mean_and_ci(np.array([0.0, 1.0]))["ci95"] == pytest.approx(1.96 * 0.5 ** 0.5 / 2 ** 0.5)  # two values
    assert mean_and_ci(np.array([0.25])) == {"mean": 0.25, "ci95": None, "n": 1}  # no spread from one value
    assert mean_and_ci(np.array([])) == {"mean": None, "ci95": None, "n": 0}


def test_distractors_are_distinct_other_labels_and_seeded():
    labels = ["a", "b", "c", "a", "d", "e", "b"]
    dis = draw_distractors(["a", "b"], labels, 4, seed=0)
    assert dis.shape == (2, 4) and dis.dtype == np.int64
    assert set(dis[0]) <= {1, 2, 4, 5, 6} and len(set(dis[0])) == 4  # not label "a", no repeats
    assert set(dis[1]) <= {0, 2, 3, 4, 5} and len(set(dis[1])) == 4
    assert np.array_equal(dis, draw_distractors(["a", "b"], labels, 4, seed=0))
    assert not all(np.array_equal(draw_distractors(["a", "b"], labels, 4, seed=s), dis) for s in range(1, 6))
    assert set(draw_distractors(["a"], labels, 5, seed=0)[0]) == {1, 2, 4, 5, 6}  # every candidate
    with pytest.raises(ValueError, match="only 5 candidates with another label; need 6"):
        draw_distractors(["a"], labels, 6, seed=0)


def test_r_precision_tie_is_a_miss_and_a_better_distractor_wins():
    text = torch.eye(3)
    image = torch.tensor([[0.8, 0.6, 0.0], [0.6, 0.8, 0.0], [0.7, 0.7, 0.0]])  # true label = row index
    dis = np.array([[1, 2], [0, 2], [0, 1]])
    # images 0 and 1 are closest to their own captions; image 2 is orthogonal to its own caption: a miss
    assert r_precision_hits(image, text, text, dis).tolist() == [True, True, False]
    tie = torch.tensor([[0.7, 0.7, 0.0]])
    assert r_precision_hits(tie, text[:1], text, np.array([[1]])).tolist() == [False]  # a tie is a miss


def test_rank_correlation_has_known_answers():
    from dalle.evaluation.stats import rank_correlation

    a = np.array([0.1, 0.5, 0.2, 0.9])
    assert rank_correlation(a, a ** 3) == pytest.approx(1.0)  # same order, other values
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert rank_correlation(a, np.ones(4)) is None  # a constant score has no order
    with pytest.raises(ValueError, match="4 and 3 scores"):
        rank_correlation(a, a[:3])
