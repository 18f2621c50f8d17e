"""Best-of-N with known answers: which candidates each score keeps, how often they are right, and which score
a measurement picks."""

import numpy as np
import pytest

from dalle.rerank import BEST_OF, SCORES, best_of_rates, chosen_score, gap_taken, rerank


def test_rerank_keeps_the_best_by_each_score_ties_to_the_lower_column():
    realism = np.array([[0.9, 0.2, 0.9, 0.5]])
    match = np.array([[0.1, 0.9, 0.5, 0.5]])
    assert rerank(realism, match, 2, "realism").tolist() == [[0, 2]]  # tie: the lower column first
    assert rerank(realism, match, 1, "match").tolist() == [[1]]
    assert rerank(realism, match, 2, "realism x match").tolist() == [[2, 3]]  # 0.45, 0.25 beat 0.18, 0.09


def test_best_of_rates_count_the_kept_image_and_the_oracle():
    k = max(BEST_OF)
    right = np.zeros((2, k), dtype=bool)
    right[0, 3] = True  # prompt 0: only seed 3 is right
    right[1, 6] = True  # prompt 1: only seed 6, beyond the first 4
    realism = np.full((2, k), 0.1)
    realism[0, 3] = realism[1, 6] = 0.9  # realism finds them
    match = np.full((2, k), 0.5)
    match[:, 0] = 0.9  # match prefers the first seed, which is wrong
    rates = best_of_rates(right, realism, match)
    assert rates["best_of_1"] == 0.0
    assert rates["oracle"] == {"4": 0.5, "8": 1.0}
    assert rates["by_score"]["realism"] == {"4": 0.5, "8": 1.0}
    assert rates["by_score"]["match"] == {"4": 0.0, "8": 0.0}
    assert set(rates["by_score"]) == set(SCORES)


def test_chosen_score_is_the_best_of_4_over_all_prompts():
    part = {"prompts": 2, "best_of_1": 0.5, "oracle": {"4": 1.0, "8": 1.0},
            "by_score": {"realism": {"4": 0.7, "8": 0.9}, "match": {"4": 0.8, "8": 0.6},
                         "realism x match": {"4": 0.8, "8": 0.7}}}
    assert chosen_score({"parts": {"all": part}}) == "match"  # a tie goes to the order of SCORES
    assert chosen_score(None) is None


@pytest.mark.parametrize("name", list(SCORES))
def test_every_score_ranks_higher_probabilities_first(name):
    realism = np.array([[0.2, 0.8]])
    assert rerank(realism, realism, 1, name).tolist() == [[1]]


def test_gap_taken_pools_parts_by_their_prompts():
    def part(prompts, first, kept, oracle):
        return {"prompts": prompts, "best_of_1": first, "oracle": {"4": oracle, "8": 1.0},
                "by_score": {"match": {"4": kept, "8": kept}, "realism": {"4": first, "8": first}}}

    best_of = {"chosen": "match", "parts": {"pair": part(100, 0.6, 0.8, 1.0), "count": part(300, 0.2, 0.4, 0.6),
                                           "single": part(10, 1.0, 1.0, 1.0)}}
    assert gap_taken(best_of, ("pair",)) == pytest.approx(0.5)  # (0.8 - 0.6) / (1.0 - 0.6)
    # pooled by prompts: first 0.3, kept 0.5, any of 4 0.7 -> 0.2 / 0.4
    assert gap_taken(best_of, ("pair", "count")) == pytest.approx(0.5)
    best_of["chosen"] = "realism"
    assert gap_taken(best_of, ("pair", "count")) == pytest.approx(0.0)
    assert gap_taken(best_of, ("single",)) is None  # no room: every first seed is right
    assert gap_taken(best_of, ("all",)) is None and gap_taken(None, ("pair",)) is None
