"""The distance between a label's real styles, with two styles or three, and how the report names it."""

import pytest
import torch

from dalle.evaluation.emoji import style_distances
from dalle.evaluation.emoji_report import card_notes, results_cells, summary, table_lines


def _unit(*xs: float) -> torch.Tensor:
    v = torch.tensor(xs, dtype=torch.float32)
    return v / v.norm()


def test_two_styles_give_the_google_twitter_distance():
    emb = torch.stack([_unit(1, 0), _unit(0, 1), _unit(1, 0), _unit(1, 0)])  # [4, 2]: two labels x two styles
    out = style_distances(emb, [[0, 1], [2, 3]], ["google", "twitter"] * 2)
    assert out["between_styles"] == pytest.approx(2 ** 0.5 / 2) == out["google_twitter"]
    assert out["styles"] == ["google", "twitter"]


def test_three_styles_average_every_pair():
    # one label: google and twitter alike, fluent orthogonal to both; another with two styles only
    emb = torch.stack([_unit(1, 0), _unit(1, 0), _unit(0, 1), _unit(1, 0), _unit(0, 1)])
    styles = ["google", "twitter", "fluent", "google", "fluent"]
    out = style_distances(emb, [[0, 1, 2], [3, 4]], styles)
    root2 = 2 ** 0.5
    assert out["between_styles"] == pytest.approx(((0 + root2 + root2) / 3 + root2) / 2)
    assert out["google_twitter"] == pytest.approx(0.0)  # only the first label has both
    assert out["styles"] == ["fluent", "google", "twitter"]
    assert style_distances(emb, [[3, 4]], styles)["google_twitter"] is None


def _metrics(style_distance: dict) -> dict:
    return {"r_precision": {"generated": {"mean": 0.5, "ci95": 0.1, "n": 10}, "real_ceiling": {"mean": 1.0, "ci95": 0},
                            "distractors": 99},
            "fid": {"generated": 2.0, "floor_matched": 1.0, "floor_halves": 1.0},
            "kid": {k: {"mean": 0.1} for k in ("generated", "floor_matched", "floor_halves")},
            "inception_fid": "unavailable: none", "diversity": {"generated": 0.1, "prompts": 4, "seeds_per_prompt": 4},
            "memorisation": {"threshold": 0.95, "generated_share": 0, "real_reference_share": 0,
                             "generated_mean_nn_cosine": 0.5, "real_reference_mean_nn_cosine": 0.5},
            "style_distance": style_distance}


def test_report_names_the_distance_it_has():
    old = _metrics({"google_twitter": 0.5})
    new = _metrics({"between_styles": 0.4, "google_twitter": 0.5, "styles": ["fluent", "google", "twitter"]})
    assert summary(old)["seeds / styles"] == pytest.approx(0.2)
    assert summary(new)["seeds / styles"] == pytest.approx(0.25)
    assert results_cells(old, {})[1].endswith("Google-Twitter distance 0.500")
    assert results_cells(new, {})[1].endswith("between-styles distance 0.400")
    assert "Between-styles distance of the same labels' real images (not a seed spread): 0.400" in table_lines(new)
    assert "between the two real styles (Google, Twitter) of one label" in card_notes(old)[0]
    assert "on average between the real styles (Fluent, Google, Twitter) of one label" in card_notes(new)[0]
