"""Evaluation: metrics.json, an end-to-end smoke run, and `evaluate_shapes` / `evaluate_emoji` with stand-in
generators and evaluators whose answers are known. The checker and the statistics have their own files
(test_shapes_checker.py, test_stats.py)."""

import hashlib
import json
import random

import numpy as np
import pytest
import torch

from dalle.evaluation.metrics_io import read_metrics, write_metrics
from dalle.shapes import checker as sc
from dalle.shapes.world import render


# ---------------------------------------------------------------------- metrics.json
def test_metrics_round_trip(tmp_path):
    m = {"a": np.float32(0.5), "b": [np.int64(3), True, None], "c": {"d": float("nan"), "e": "x"},
         "t": torch.tensor([1.0, 2.0])}
    path = write_metrics(tmp_path / "sub" / "metrics.json", m)
    assert read_metrics(path) == {"a": 0.5, "b": [3, True, None], "c": {"d": None, "e": "x"}, "t": [1.0, 2.0]}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary left behind
    write_metrics(path, {"a": 1})
    assert read_metrics(path) == {"a": 1}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError):
        read_metrics(tmp_path / "bad.json")


# ---------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_shapes_checkpoint(tmp_path_factory):
    from dalle.checkpoint import save_checkpoint
    from dalle.config import ModelConfig
    from dalle.models.discriminator import Discriminator
    from dalle.models.generator import Generator

    torch.manual_seed(0)
    cfg = ModelConfig(resolution=32, channel_base=256, d_channel_base=256)
    dest = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(dest, {"model": cfg.to_dict(), "name": "tiny", "dataset": {"name": "shapes"},
                           "step": 7, "images_seen": 224}, Generator(cfg), Discriminator(cfg))
    return dest


class HashTextEncoder:
    """Stand-in for the default text encoder: a fixed random unit vector and word states per prompt (no
    transformers import, so the smoke test measures the evaluation code, not model loading)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def condition(self, prompts, max_tokens):
        from dalle.text_encoder import TextCondition, fixed_length

        pooled, tokens, mask = [], [], []
        for p in prompts:
            g = torch.Generator().manual_seed(int(hashlib.sha256(p.encode()).hexdigest()[:15], 16))
            pooled.append(torch.nn.functional.normalize(torch.randn(self.dim, generator=g), dim=0))
            words = len(p.split()) + 2  # [CLS] words [SEP]
            tokens.append(torch.randn(words, self.dim, generator=g))
            mask.append(torch.ones(words, dtype=torch.bool))
        pad = torch.nn.utils.rnn.pad_sequence
        t, m = fixed_length(pad(tokens, batch_first=True), pad(mask, batch_first=True), max_tokens)
        return TextCondition(torch.stack(pooled), t, m)

    def embed(self, prompts):
        return self.condition(prompts, 1).pooled

    def encode(self, prompts):
        return self.condition(prompts, 16)

    def is_too_long(self, prompt):
        return False


def test_evaluate_smoke_shapes(tiny_shapes_checkpoint):
    from dalle.evaluation.evaluate import PSIS, evaluate_checkpoint
    from dalle.evaluation.report import format_table

    m = evaluate_checkpoint(tiny_shapes_checkpoint, num_samples=12, seed=1, text_encoder=HashTextEncoder(),
                            log=lambda *_: None)
    on_disk = read_metrics(tiny_shapes_checkpoint / "metrics.json")
    assert on_disk["checkpoint"]["step"] == 7 and on_disk["run"]["num_samples"] == 12
    assert (tiny_shapes_checkpoint / "truncation.png").stat().st_size > 0
    assert on_disk["dataset"] == "shapes" and on_disk["run"]["seed"] == 1 and on_disk["run"]["wall_time_s"] > 0
    a = m["alignment"]
    assert set(a["generated"]) == {"seen", "heldout"}
    head = a["headline"]
    for key in ("seen_colour_shape_position", "heldout_colour_shape_position"):
        assert head[key] is None or 0.0 <= head[key] <= 1.0
    assert head["ceiling_heldout_colour_shape_position"] == 1.0
    assert a["ceiling_all_judgements"] >= 0.99
    for block in (m["diversity"]["generated"], m["diversity"]["real"]):
        assert 0.0 <= block <= 1.0
    by_kind = m["diversity"]["by_kind"]
    assert sum(v["prompts"] for v in by_kind.values()) == m["diversity"]["prompts"]
    assert set(by_kind) <= {"placed", "unplaced", "pair", "count"}
    for key in ("match_auroc", "realism_auroc"):
        assert 0.0 <= m["discriminator"][key] <= 1.0
    rows = m["truncation_sweep"]["rows"]
    assert [r["psi"] for r in rows] == list(PSIS)
    assert all(0.0 <= r["diversity"] <= 1.0 for r in rows)
    text = format_table(on_disk)
    assert "headline" in text and "truncation sweep" in text
    json.dumps(on_disk)


def test_cli_errors_are_one_line(tmp_path, capsys, tiny_shapes_checkpoint):
    from dalle.cli import main

    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "nope" in err

    emoji = tmp_path / "emoji-ckpt"
    emoji.mkdir()
    cfg = json.loads((tiny_shapes_checkpoint / "config.json").read_text())
    cfg["dataset"] = {"name": "emoji"}
    (emoji / "config.json").write_text(json.dumps(cfg))
    assert main(["evaluate", str(emoji), "--evaluator", str(tmp_path / "no-evaluator")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "evaluator" in err

    fake_eval = tmp_path / "evaluator"
    fake_eval.mkdir()
    from dalle.evaluation.evaluator import Evaluator, EvaluatorArch, save_evaluator
    save_evaluator(Evaluator(EvaluatorArch(widths=(8, 8), embed_dim=8, text_hidden=8)), fake_eval, {"note": "test"})
    assert main(["evaluate", str(emoji), "--evaluator", str(fake_eval), "--data-root", str(tmp_path / "nodata")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "python -m dalle prepare emoji" in err


def test_evaluator_save_load_round_trip(tmp_path):
    from dalle.evaluation.evaluator import (
        Evaluator,
        EvaluatorArch,
        EvaluatorError,
        EvaluatorFeatures,
        load_evaluator,
        save_evaluator,
    )

    torch.manual_seed(0)
    model = Evaluator(EvaluatorArch(widths=(8, 16), embed_dim=16, text_hidden=16)).eval()
    save_evaluator(model, tmp_path / "ev", {"note": "test"})
    cfg = json.loads((tmp_path / "ev" / "config.json").read_text())
    assert cfg["kind"] == "evaluator" and cfg["version"] == 2  # 2: the stem and stage keys of the architecture
    loaded = load_evaluator(tmp_path / "ev")
    imgs = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    a, b = model.embed_uint8(imgs), loaded.embed_uint8(imgs)
    assert torch.allclose(a, b, atol=2e-2)  # fp16 weights
    assert torch.allclose(b.norm(dim=-1), torch.ones(5), atol=1e-5)
    feat = EvaluatorFeatures(loaded)
    chw = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    assert torch.allclose(feat(chw), b) and torch.equal(feat(b), b)
    (tmp_path / "ev" / "config.json").write_text(json.dumps({**cfg, "kind": "something"}))
    with pytest.raises(EvaluatorError):
        load_evaluator(tmp_path / "ev")


# ---------------------------------------------------------------------- evaluation with stand-in generators
class _KnownGenerated:
    """Stand-in for `dalle.evaluation.sampling.Generated`: for even seeds the right image of the prompt (from
    `right`), for odd seeds a blank white one; the match score is `match_right` for even seeds and 1 - that for
    odd ones."""

    match_right = 1.0
    right = None  # callable (prompt, seed, resolution) -> uint8 [R, R, 3]

    def __init__(self, pipe, batch_size=64):
        self.res = pipe.model_config.resolution

    def __call__(self, prompts, seeds, psi):
        blank = np.full((self.res, self.res, 3), 255, np.uint8)
        pix = np.stack([type(self).right(p, s, self.res) if s % 2 == 0 else blank for p, s in zip(prompts, seeds)])
        even = np.array([s % 2 == 0 for s in seeds])
        match = np.where(even, self.match_right, 1.0 - self.match_right)
        return pix, np.zeros(len(prompts)), match


@pytest.fixture(scope="module")
def tiny_pipe(tiny_shapes_checkpoint):
    from dalle.pipeline import TextToImagePipeline

    return TextToImagePipeline.from_pretrained(tiny_shapes_checkpoint, device="cpu", text_encoder=HashTextEncoder())


def _render_caption(prompt, seed, res):
    return render(sc.scene_for_spec(sc.parse_caption(prompt), random.Random(seed)), res)


@pytest.mark.parametrize("match_right", [1.0, 0.0])
def test_shapes_match_auroc_on_generated_images_follows_the_checker(tiny_pipe, monkeypatch, match_right):
    """Right images (real renders) scored `match_right`, wrong ones (blank) the opposite: AUROC 1 or 0."""
    from dalle.shapes import evaluate

    gen = type("Gen", (_KnownGenerated,), {"match_right": match_right, "right": staticmethod(_render_caption)})
    monkeypatch.setattr(evaluate, "Generated", gen)
    out = evaluate.evaluate_shapes(tiny_pipe, tiny_pipe.config, 40, 0, 1.0, False, lambda *_: None)
    disc = out["discriminator"]
    n = out["prompts"]["seen"] + out["prompts"]["heldout"]
    assert disc["generated_match_n_correct"] + disc["generated_match_n_wrong"] == n
    # half the seeds are even; their real renders pass the checker (it is right on >= 99% of real renders)
    assert abs(disc["generated_match_n_correct"] - n / 2) <= 1
    assert disc["generated_match_auroc"] == pytest.approx(match_right, abs=0.03)
    assert disc["generated_match_auroc_colour_shape_position"] == pytest.approx(match_right, abs=0.03)
    assert "exact" in disc["generated_match_verdict"]


def test_shapes_match_auroc_on_generated_images_is_null_with_one_class(tiny_pipe, monkeypatch):
    from dalle.shapes import evaluate

    blank = type("Gen", (_KnownGenerated,), {"right": staticmethod(lambda p, s, r: np.full((r, r, 3), 255, np.uint8))})
    monkeypatch.setattr(evaluate, "Generated", blank)
    disc = evaluate.evaluate_shapes(tiny_pipe, tiny_pipe.config, 8, 0, 1.0, False, lambda *_: None)["discriminator"]
    assert disc["generated_match_n_correct"] == 0 and disc["generated_match_auroc"] is None


N_LABELS = 60  # 120 images: enough for 99 distractors with another label


def _label_colour(k: int) -> tuple[int, int, int]:
    return (4 * k, 40, 200)


class ColourEvaluator(torch.nn.Module):
    """Stand-in evaluator with known answers: an image of label k is a solid `_label_colour(k)`; its embedding
    is the one-hot vector of k (any other image: the extra last axis). A caption's embedding is the one-hot
    vector of its label."""

    text_encoder_name = HashTextEncoder.name

    def __init__(self, caption_labels: list[int]):
        from dalle.evaluation.emoji_data import heldout_labels_sha256

        super().__init__()
        self.arch = type("Arch", (), {"embed_dim": N_LABELS + 1})()
        self.caption_labels = caption_labels
        labels = [f"label{k}" for k in range(N_LABELS) for _ in range(2)]
        # fraction 1.0: every label held out, so all N_LABELS x 2 images are evaluation images
        self.info = {"training": {"heldout_labels": {"fraction": 1.0, "sha256": heldout_labels_sha256(labels, 1.0)}}}

    def embed_uint8(self, images):
        x = torch.as_tensor(np.ascontiguousarray(images))
        if x.shape[1] == 3:
            x = x.permute(0, 2, 3, 1)
        pixel = x[:, 0, 0].long()  # [N, 3]
        k = torch.where((pixel[:, 1] == 40) & (pixel[:, 2] == 200), pixel[:, 0] // 4, N_LABELS)
        return torch.nn.functional.one_hot(k, N_LABELS + 1).float()

    def embed_text(self, pooled):
        assert len(pooled) == len(self.caption_labels)
        return torch.nn.functional.one_hot(torch.tensor(self.caption_labels), N_LABELS + 1).float()


@pytest.fixture(scope="module")
def colour_emoji():
    """EmojiEvalData of N_LABELS labels x (google, twitter) solid-colour 32 px images, and its evaluator."""
    from dalle.data.captioned import CaptionedImages
    from dalle.evaluation.emoji_data import EmojiEvalData

    captions, caption_labels, images, entries, canonical, plain = [], [], [], [], [], []
    for k in range(N_LABELS):
        captions.append(f"label{k}")
        caption_labels.append(k)
        for style in ("google", "twitter"):
            captions.append(f"label{k}, {style} style")
            caption_labels.append(k)
            images.append(np.broadcast_to(np.array(_label_colour(k), np.uint8), (32, 32, 3)))
            entries.append({"hexcode": f"{k:04X}", "style": style, "label": f"label{k}", "captions": []})
            canonical.append(len(captions) - 1)
            plain.append(captions.index(f"label{k}"))
    data = CaptionedImages("emoji", np.stack(images), captions, [[c, p] for c, p in zip(canonical, plain)])
    return EmojiEvalData(data, entries, canonical, plain), ColourEvaluator(caption_labels)


def _colour_of_prompt(prompt, seed, res):
    k = int(prompt.split(",")[0].removeprefix("label"))
    return np.broadcast_to(np.array(_label_colour(k), np.uint8), (res, res, 3)).copy()


@pytest.mark.parametrize("match_right", [1.0, 0.0])
def test_evaluate_emoji_known_answers(tiny_pipe, colour_emoji, monkeypatch, tmp_path, match_right):
    """Even seeds draw the label's own image, odd seeds a blank one: R-precision 1/2 (real 1), half the images
    are copies of training images, and the match score on generated images ranks by the evaluator's verdict."""
    from dalle.evaluation import emoji

    data, evaluator = colour_emoji
    gen = type("Gen", (_KnownGenerated,), {"match_right": match_right, "right": staticmethod(_colour_of_prompt)})
    monkeypatch.setattr(emoji, "Generated", gen)
    out = emoji.evaluate_emoji(tiny_pipe, tiny_pipe.config, 40, 0, 1.0, False, evaluator, data, tmp_path,
                                  lambda *_: None)
    assert out["r_precision"]["generated"]["mean"] == 0.5 and out["r_precision"]["real_ceiling"]["mean"] == 1.0
    disc = out["discriminator"]
    assert (disc["generated_match_n_correct"], disc["generated_match_n_wrong"]) == (20, 20)
    assert disc["generated_match_auroc"] == match_right
    assert "top-1" in disc["generated_match_verdict"]
    mem = out["memorisation"]
    assert mem["generated_share"] == 0.5 and mem["generated_mean_nn_cosine"] == pytest.approx(0.5)
    assert mem["real_reference_share"] == 1.0  # the other style of the same label has the same colour
    # 4 seeds per prompt, two right (same embedding) and two blank: 4 of 6 pairs at distance sqrt(2)
    assert out["diversity"]["generated"] == pytest.approx(4 * np.sqrt(2) / 6)
    assert "real" not in out["diversity"]  # no seed spread of real images exists to compare with
    assert out["style_distance"]["google_twitter"] == 0.0  # both styles of a label share its colour here
    assert (out["fid"]["n_reference"], out["fid"]["n_floor_halves"]) == (N_LABELS, N_LABELS)  # halves B and A
    assert out["prompts"]["heldout_labels"]["labels"] == N_LABELS


def test_evaluate_emoji_refuses_an_evaluator_whose_heldout_labels_differ(tiny_pipe, colour_emoji, tmp_path):
    """The evaluation reads its split from the evaluator's record: a record of another split is refused."""
    from dalle.evaluation import emoji
    from dalle.evaluation.emoji_data import heldout_labels_sha256

    data, colour = colour_emoji
    other = ColourEvaluator(colour.caption_labels)
    other.info["training"]["heldout_labels"]["sha256"] = heldout_labels_sha256(data.labels[2:], 1.0)  # label0 gone
    with pytest.raises(ValueError, match="held-out labels"):
        emoji.evaluate_emoji(tiny_pipe, tiny_pipe.config, 40, 0, 1.0, False, other, data, tmp_path,
                                lambda *_: None)
    other.info = {"training": {}}  # an evaluator trained before labels were held out
    with pytest.raises(ValueError, match="no held-out labels"):
        emoji.evaluate_emoji(tiny_pipe, tiny_pipe.config, 40, 0, 1.0, False, other, data, tmp_path,
                                lambda *_: None)


# ---------------------------------------------------------------------- known answers of the pieces
class _Features(torch.nn.Module):
    """An 'evaluator' whose features are given directly (EvaluatorFeatures passes [N, dim] floats through)."""

    def __init__(self, dim: int):
        super().__init__()
        self.arch = type("Arch", (), {"embed_dim": dim})()


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3, unbiased (no self pairs)."""
    x, y = x.double(), y.double()
    m, d = len(x), x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    off = m * (m - 1)
    return float((kxx.sum() - kxx.diag().sum()) / off + (kyy.sum() - kyy.diag().sum()) / off - 2 * kxy.mean())


def test_fid_and_kid_known_answers():
    """Same set: FID 0. A set shifted by c with the same covariance: FID = |c|^2. KID with subsets as large as
    the sets is the unbiased MMD^2 of the whole sets, computed here by hand."""
    from dalle.evaluation.emoji import _fid_kid

    g = torch.Generator().manual_seed(0)
    real, other = torch.randn(200, 6, generator=g), torch.randn(200, 6, generator=g) + 0.3
    shift = torch.tensor([0.5, -0.5, 0.0, 0.25, 0.0, 0.0])
    out = _fid_kid(_Features(6), real, {"same": real.clone(), "shifted": real + shift, "other": other},
                   subset_size=200, seed=0)
    assert out["same"]["fid"] == pytest.approx(0.0, abs=1e-4)
    assert out["shifted"]["fid"] == pytest.approx(float(shift.pow(2).sum()), rel=1e-4)  # 0.5625
    for name, fake in (("shifted", real + shift), ("other", other)):
        assert out[name]["kid"] == pytest.approx(_unbiased_mmd2(real, fake), rel=1e-4), name
    assert out["other"]["n"] == 200


def test_nearest_neighbour_cosine():
    from dalle.evaluation.emoji import _nn_cosine

    bank = torch.eye(4)
    query = torch.stack([bank[1], bank[2], torch.nn.functional.normalize(torch.tensor([1.0, 1.0, 0.0, 0.0]), dim=0)])
    assert torch.allclose(_nn_cosine(query, bank), torch.tensor([1.0, 1.0, 2 ** -0.5]))
    # excluding each query's own bank row (the real image itself): the nearest other row is orthogonal
    assert torch.allclose(_nn_cosine(query[:2], bank, exclude=np.array([1, 2])), torch.zeros(2))


def test_ab_split_halves_are_disjoint_complete_and_seeded():
    from dalle.evaluation.emoji import ab_split

    a, b = ab_split(101, np.random.default_rng(3))
    assert len(a) == 50 and len(b) == 51
    assert not set(a) & set(b) and sorted(set(a) | set(b)) == list(range(101))
    assert (np.diff(a) > 0).all() and (np.diff(b) > 0).all()
    a2, _ = ab_split(101, np.random.default_rng(3))
    a3, _ = ab_split(101, np.random.default_rng(4))
    assert np.array_equal(a, a2) and not np.array_equal(a, a3)


def test_diversity_by_kind_known_answer():
    from dalle.shapes.evaluate import _diversity_by_kind
    from dalle.shapes.world import Scene

    scenes = [Scene([], "a red circle at the top left", "single"), Scene([], "two red circles", "count"),
              Scene([], "a red circle", "single")]
    white, black = np.full((32, 32, 3), 255, np.uint8), np.zeros((32, 32, 3), np.uint8)
    generated = np.stack([white, white, white, black, white, white])  # groups of 2: same, opposite, same
    real = np.stack([white, black, white, black, white, black])
    out = _diversity_by_kind(scenes, generated, real, 2)
    assert out == {"count": {"generated": 1.0, "real": 1.0, "prompts": 1},
                   "placed": {"generated": 0.0, "real": 1.0, "prompts": 1},
                   "unplaced": {"generated": 0.0, "real": 1.0, "prompts": 1}}
