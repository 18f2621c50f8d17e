"""Top-k retrieval of the held-out captions' images (`dalle/evaluation/heldout_captions.py`), on known vectors."""

import numpy as np
import torch

from dalle.evaluation.heldout_captions import top_k_hits


def test_a_name_counts_when_fewer_than_k_others_score_at_least_as_high():
    pool = torch.eye(6)  # six names, orthogonal
    image = torch.nn.functional.normalize(torch.tensor([[1.0, 0.9, 0.8, 0.0, 0.0, 0.0],
                                                        [1.0, 0.9, 0.8, 0.0, 0.0, 0.0]]), dim=1)
    true = pool[[2, 0]]  # image 0 is "name 2" (third best), image 1 is "name 0" (best)
    distractors = np.array([[0, 1, 3, 4], [1, 2, 3, 4]])
    assert top_k_hits(image, true, pool, distractors, k=3).tolist() == [True, True]
    assert top_k_hits(image, true, pool, distractors, k=2).tolist() == [False, True]
    assert top_k_hits(image, true, pool, distractors, k=1).tolist() == [False, True]


def test_a_tie_counts_against_the_true_name():
    pool = torch.eye(3)
    image = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=1)
    assert top_k_hits(image, pool[[0]], pool, np.array([[1, 2]]), k=1).tolist() == [False]
    assert top_k_hits(image, pool[[0]], pool, np.array([[1, 2]]), k=2).tolist() == [True]
