"""The 64 px emoji evaluator: its architecture record, the training step, the resizing every smaller image goes
through, the yardstick (`python -m dalle.evaluation.yardstick`) on tiny made-up data, and the data an emoji
evaluation asks for. Tiny evaluators (a few channels) and seeded generators throughout; nothing here reads the
shipped evaluator or the prepared data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dalle.evaluation.evaluator import (
    LEGACY_ARCH,
    Evaluator,
    EvaluatorArch,
    EvaluatorError,
    load_evaluator,
    save_evaluator,
)

TINY = EvaluatorArch(widths=(4, 8, 8), embed_dim=8, text_dim=16, text_hidden=8)


def tiny_evaluator(seed: int = 0, arch: EvaluatorArch = TINY) -> Evaluator:
    torch.manual_seed(seed)
    return Evaluator(arch)


# ---------------------------------------------------------------------- architecture
def test_default_stem_keeps_full_resolution_and_legacy_stem_halves_it():
    full, halved = tiny_evaluator(), tiny_evaluator(arch=EvaluatorArch(**{**TINY.to_dict(), **LEGACY_ARCH}))
    x = torch.zeros(2, 3, 64, 64)
    assert full.image.body[:3](x).shape[-1] == 64  # conv3x3/1 + BN + SiLU
    assert halved.image.body[:3](x).shape[-1] == 32  # conv4x4/2
    with pytest.raises(ValueError, match="stem"):
        EvaluatorArch(stem="conv7x7/4")


def test_a_version_1_config_loads_as_the_legacy_architecture(tmp_path):
    """Evaluators saved before the stem/stage keys existed (version 1) meant the 4x4 stride-2 stem."""
    legacy = tiny_evaluator(arch=EvaluatorArch(**{**TINY.to_dict(), **LEGACY_ARCH}))
    save_evaluator(legacy, tmp_path, {"note": "test"})
    cfg = json.loads((tmp_path / "config.json").read_text())
    for k in LEGACY_ARCH:
        del cfg["architecture"][k]
    cfg["version"] = 1
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = load_evaluator(tmp_path)
    assert loaded.arch.stem == "conv4x4/2" and loaded.arch.stage_convs == 1 and loaded.arch.last_stage_convs == 0
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    assert torch.allclose(loaded.image_embed(x), legacy.eval().half().float().image_embed(x), atol=2e-2)

    cfg["architecture"]["stem"] = "nonsense"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EvaluatorError, match="architecture"):
        load_evaluator(tmp_path)


def test_config_records_the_architecture(tmp_path):
    ev = tiny_evaluator(arch=EvaluatorArch(**{**TINY.to_dict(), "stage_convs": 2, "last_stage_convs": 1}))
    save_evaluator(ev, tmp_path, {"note": "test"})
    arch = json.loads((tmp_path / "config.json").read_text())["architecture"]
    assert (arch["stem"], arch["stage_convs"], arch["last_stage_convs"]) == ("conv3x3/1", 2, 1)
    assert "full input resolution" in arch["image_tower"] and arch["num_params"] == ev.num_params
    assert load_evaluator(tmp_path).arch == ev.arch


# ---------------------------------------------------------------------- resizing
def test_smaller_and_larger_images_are_judged_at_the_evaluators_resolution():
    from dalle.evaluation.emoji import resize_uint8

    ev = tiny_evaluator()
    assert ev.to_input(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 64, 64)
    assert ev.to_input(torch.zeros(2, 3, 128, 128)).shape == (2, 3, 64, 64)
    x = torch.rand(2, 3, 64, 64)
    assert ev.to_input(x) is x
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    assert ev.embed_uint8(small).shape == (5, 8)
    up = resize_uint8(small, 64)
    assert up.shape == (5, 64, 64, 3) and up.dtype == np.uint8
    # the evaluator upsamples a 32 px image exactly as resize_uint8 does (up to the uint8 rounding)
    assert torch.allclose(ev.embed_uint8(small), ev.embed_uint8(up), atol=2e-2)
    assert resize_uint8(up, 64) is up
    flat = np.full((2, 64, 64, 3), 200, np.uint8)
    assert (resize_uint8(flat, 32) == 200).all() and (resize_uint8(resize_uint8(flat, 32), 64) == 200).all()


def test_degrade_blurs_detail_but_keeps_the_size():
    from dalle.evaluation.yardstick import degrade

    crisp = np.full((1, 64, 64, 3), 255, np.uint8)
    crisp[0, ::2] = 0  # one-pixel stripes: detail no 32 px image can hold
    crude = degrade(crisp, 32)
    assert crude.shape == crisp.shape and crude.dtype == np.uint8
    assert np.abs(crude.astype(int) - crisp.astype(int)).mean() > 50
    blob = np.full((1, 64, 64, 3), 255, np.uint8)
    blob[0, 16:48, 16:48] = (200, 30, 30)  # a large square survives nearly unchanged
    assert np.abs(degrade(blob, 32).astype(int) - blob.astype(int)).mean() < 5


# ---------------------------------------------------------------------- training
def test_training_step_reduces_the_loss_on_a_toy_set():
    from dalle.evaluation.train_evaluator import training_step

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    n = 8  # eight solid-colour "emoji", each with its own random caption embedding
    colours = torch.randint(0, 256, (n, 3), generator=g).to(torch.uint8)
    images = colours[:, None, None, :].expand(n, 64, 64, 3).contiguous().numpy()
    pooled = torch.randn(n, 16, generator=g)
    also = torch.zeros(n, n, dtype=torch.bool)
    ev = tiny_evaluator()
    opt = torch.optim.AdamW(ev.parameters(), lr=1e-2)
    losses = [training_step(ev, opt, images, pooled, also, shift=0.0625, jitter=0.1) for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_colour_jitter_keeps_white_and_hue():
    from dalle.evaluation.train_evaluator import colour_jitter

    torch.manual_seed(0)
    x = torch.ones(4, 3, 8, 8)
    x[:, 0, 2:6, 2:6], x[:, 1:, 2:6, 2:6] = 0.8, -0.8  # a red square on white
    y = colour_jitter(x, 0.2)
    assert torch.equal(y[:, :, 0, 0], x[:, :, 0, 0])  # background stays white
    red = y[:, :, 3, 3]
    assert (red[:, 0] > red[:, 1]).all() and torch.allclose(red[:, 1], red[:, 2])  # still red, no hue shift
    assert not torch.equal(y, x) and colour_jitter(x, 0.0) is x


# ---------------------------------------------------------------------- yardstick
@pytest.fixture(scope="module")
def fake_emoji():
    """EmojiEvalData of 60 made-up labels x 2 styles of random 64 px pictures, all labels held out (fraction 1),
    a tiny evaluator that records that split, and a random text table."""
    from dalle.data.captioned import CaptionedImages
    from dalle.evaluation.emoji_data import EmojiEvalData, heldout_labels_sha256

    rng = np.random.default_rng(0)
    captions, images, entries, canonical, plain = [], [], [], [], []
    for k in range(60):
        captions.append(f"label{k}")
        for style in ("google", "twitter"):
            captions.append(f"label{k}, {style} style")
            images.append(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
            entries.append({"hexcode": f"{k:04X}", "style": style, "label": f"label{k}", "captions": []})
            canonical.append(len(captions) - 1)
            plain.append(captions.index(f"label{k}"))
    data = EmojiEvalData(CaptionedImages("emoji", np.stack(images), captions,
                                         [[c, p] for c, p in zip(canonical, plain)]), entries, canonical, plain)
    ev = tiny_evaluator().eval()
    ev.info = {"training": {"heldout_labels": {"fraction": 1.0,
                                               "sha256": heldout_labels_sha256(data.labels, 1.0)}}}
    table = torch.randn(len(captions), 16, generator=torch.Generator().manual_seed(2))
    return data, ev, table


def test_yardstick_runs_on_tiny_fake_data(fake_emoji):
    from dalle.evaluation.yardstick import degrade, format_yardstick, prompt_images, score_sets

    data, ev, table = fake_emoji
    prompts, real = prompt_images(data, ev.info, 40, seed=0)
    assert len(prompts) == len(real) == 40 and all(p.endswith(" style") for p in prompts)
    noise = np.random.default_rng(5).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)  # a "32 px checkpoint"
    rows = score_sets(ev, data, {"real 64->32->64": degrade(real, 32), "noise generated": noise}, 40, 0, table)
    assert [r["set"] for r in rows] == ["real 64", "real 64->32->64", "noise generated"]
    first = rows[0]
    assert first["r_precision_below_real"]["mean"] == 0.0 and first["fid"] == first["fid_floor_matched"]
    for r in rows:
        assert 0.0 <= r["r_precision"]["mean"] <= 1.0 and r["n"] == 40 and np.isfinite(r["fid"])
        assert r["r_precision"]["mean"] == pytest.approx(first["r_precision"]["mean"]
                                                         - r["r_precision_below_real"]["mean"])
    again = score_sets(ev, data, {"real 64->32->64": degrade(real, 32), "noise generated": noise}, 40, 0, table)
    assert again == rows  # seeded: the same prompts, distractors and KID subsets
    text = format_yardstick({"settings": {"num_samples": 40, "seed": 0, "truncation": 1.0},
                             "evaluators": [{"dir": "tiny", "sha256": None, "num_params": ev.num_params,
                                             "val_r_precision": None, "resolution": 64, "rows": rows}]})
    assert "real 64->32->64" in text and "noise generated" in text and "FID/floor" in text
    with pytest.raises(ValueError, match="images for 40 prompts"):
        score_sets(ev, data, {"short": noise[:3]}, 40, 0, table)


def test_yardstick_cli_errors_are_one_line(tmp_path, capsys):
    from dalle.evaluation.yardstick import main

    assert main(["--evaluator", str(tmp_path / "none"), "--checkpoint", "none"]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("error:") and "\n" not in out
    save_evaluator(tiny_evaluator(), tmp_path / "ev", {"note": "test"})
    assert main(["--evaluator", str(tmp_path / "ev"), "--checkpoint", "none",
                 "--data-root", str(tmp_path / "nodata")]) == 2
    assert "python -m dalle prepare emoji --resolution 64" in capsys.readouterr().out


# ---------------------------------------------------------------------- what an emoji evaluation loads
@pytest.mark.parametrize("resolution", [32, 64])
def test_an_emoji_evaluation_asks_for_the_64px_data(tmp_path, resolution):
    """Real references are the 64 px images whatever the checkpoint's resolution; a 32 px checkpoint also needs
    its own resolution (the discriminator scores real images at 32 px). The message names each command."""
    from dalle.evaluation import emoji

    save_evaluator(tiny_evaluator(), tmp_path / "ev", {"note": "test"})
    config = {"model": {"resolution": resolution}}
    with pytest.raises(FileNotFoundError) as err:
        emoji.load(config, tmp_path / "nodata", tmp_path / "ev")
    msg = str(err.value)
    assert "\n" not in msg and "judged at the evaluator's 64 px" in msg
    assert "run `python -m dalle prepare emoji --resolution 64 --data-root" in msg
    assert ("--resolution 32" in msg) == (resolution == 32)
