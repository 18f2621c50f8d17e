"""A tiny end-to-end run: train on `shapes` at 32 px on CPU, then sample from what it saved. Plus every loss
configuration for a few steps under bf16 autocast, and starting a run from a checkpoint (`--init-from`)."""

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from conftest import LOG_HEADER, TINY_FLAGS, TINY_MODEL

from dalle.checkpoint import CheckpointError, load_into, load_tensors, model_config, read_config
from dalle.cli import main
from dalle.config import ModelConfig, TrainConfig
from dalle.data.captioned import CaptionedImages
from dalle.datasets import open_training_data
from dalle.evaluation.model_card import render_model_card
from dalle.images import read_png_metadata
from dalle.models.discriminator import Discriminator
from dalle.pipeline import TextToImagePipeline
from dalle.shapes.world import Shape, render, single_caption
from dalle.training import losses
from dalle.training.objective import Batch
from dalle.training.state import setting_changes
from dalle.training.trainer import LOG_FIELDS, Trainer, lr_scale


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Caption-embedding cache shared by the runs of this module (the first run of a caption set fills it)."""
    return tmp_path_factory.mktemp("caption-cache")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("run") / "shapes32"
    rc = main(["train", "--data", "shapes", "--out", str(out), "--max-steps", "6", "--sample-every", "3",
               "--checkpoint-every", "3", "--cache-dir", str(cache), *TINY_FLAGS])
    assert rc == 0
    return out


def tiny_dataset() -> CaptionedImages:
    """Six rendered one-shape scenes, one caption each."""
    specs = [("red", "circle", "large", "top left"), ("blue", "square", "small", "center"),
             ("green", "triangle", "large", "bottom right"), ("yellow", "circle", "small", "top"),
             ("black", "square", "large", "left"), ("orange", "triangle", "small", "right")]
    images = np.stack([render([Shape(c, s, z, cell)], 32) for c, s, z, cell in specs])
    return CaptionedImages("tiny", images, [single_caption(*spec) for spec in specs], [[i] for i in range(6)])


def shapes_trainer(model: ModelConfig, cfg: TrainConfig, **options) -> Trainer:
    """A Trainer on the shapes world at the model's resolution, with the world's own `options`."""
    return Trainer(model, cfg, open_training_data("shapes", model.resolution, options))


def tiny_trainer(out, cache, **train) -> Trainer:
    cfg = TrainConfig(data="tiny", out=str(out), batch_size=4, threads=1, sample_every=100, checkpoint_every=100,
                      cache_dir=str(cache), **train)
    return Trainer(dataclasses.replace(TINY_MODEL), cfg, tiny_dataset())


def test_training_writes_a_checkpoint_samples_and_log(trained):
    ck = trained / "checkpoint"
    cfg = json.loads((ck / "config.json").read_text())
    assert cfg["step"] == 6 and cfg["images_seen"] == 24
    assert cfg["dataset"]["holdout"] == [["purple", "triangle"], ["orange", "circle"], ["cyan", "square"]]
    assert cfg["model"]["resolution"] == 32 and cfg["text_encoder"] == "all-MiniLM-L6-v2"
    assert (ck / "samples.png").exists() and (ck / "log.csv").exists()
    rows = (trained / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,kimg,loss_d") and len(rows) == 3  # header + steps 3 and 6
    assert rows[0] == ",".join(LOG_FIELDS) and LOG_HEADER == rows[0] + "\n"  # the app tests' fake log agrees
    assert len(list((trained / "samples").glob("step-*.png"))) == 2


def test_sample_cli_writes_grid_with_metadata(trained, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    rc = main(["sample", "--checkpoint", str(trained / "checkpoint"), "--prompt", "a red circle",
               "--prompt", "two blue squares", "--seed", "11", "--truncation", "0.5", "--num-images", "3",
               "--out", str(grid), "--device", "cpu"])
    assert rc == 0
    from PIL import Image
    with Image.open(grid) as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)  # 3 columns (seeds), 2 rows (prompts), 2px padding
    meta = read_png_metadata(str(grid))
    assert json.loads(meta["prompts"]) == ["a red circle", "two blue squares"]
    assert meta["seed"] == "11" and meta["truncation"] == "0.5" and meta["checkpoint"] == "checkpoint"
    assert meta["step"] == "6"
    assert "realism=" in capsys.readouterr().out


def test_pipeline_is_deterministic_and_seed_j_is_seed_plus_j(trained):
    pipe = TextToImagePipeline.from_pretrained(trained / "checkpoint", device="cpu")
    a = pipe(["a red circle", "a blue square"], seed=3, truncation=0.7, num_images=3)
    b = pipe(["a blue square"], seed=4, truncation=0.7, num_images=1)
    assert a.pixels.shape == (2, 3, 32, 32, 3)
    assert (a.pixels == pipe(["a red circle", "a blue square"], seed=3, num_images=3).pixels).all()
    # image j uses seed + j, whatever the batch; CPU kernels chosen by batch size (AMX) may round one level apart
    assert np.abs(a.pixels[1, 1].astype(int) - b.pixels[0, 0].astype(int)).max() <= 1
    assert ((a.realism >= 0) & (a.realism <= 1)).all() and ((a.match >= 0) & (a.match <= 1)).all()
    assert a.seeds == [3, 4, 5]


def test_save_pretrained_round_trip(trained, tmp_path):
    pipe = TextToImagePipeline.from_pretrained(trained / "checkpoint", device="cpu")
    pipe.save_pretrained(tmp_path / "copy")
    again = TextToImagePipeline.from_pretrained(tmp_path / "copy", device="cpu", text_encoder=pipe.text_encoder)
    assert (pipe("a red circle", seed=1).pixels == again("a red circle", seed=1).pixels).all()


@pytest.mark.parametrize("recipe", [{}, {"recon": "posterior", "style_mixing": 0.5, "diversity_weight": 1.0},
                                    {"recon": "layout"}],
                         ids=["default", "posterior-mixing-diversity", "layout"])
def test_resume_continues_exactly(tmp_path, cache, recipe):
    def trainer(out):
        cfg = TrainConfig(data="shapes", out=str(out), batch_size=4, augment="translation,cutout", r1_every=2,
                          sample_every=100, checkpoint_every=100, cache_dir=str(cache), **recipe)
        return shapes_trainer(dataclasses.replace(TINY_MODEL), cfg)

    straight = trainer(tmp_path / "a")
    straight.run(max_steps=6)
    first = trainer(tmp_path / "b")
    first.run(max_steps=3)
    resumed = trainer(tmp_path / "b")
    resumed.run(resume=True, max_steps=6)
    assert resumed.step == 6 and resumed.images_seen == straight.images_seen
    for name in ("G", "G_ema", "D") + (("E",) if recipe.get("recon") in ("posterior", "layout") else ()):
        sa, sb = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k} differs after resume"


def test_resume_with_changed_settings_is_recorded(tmp_path, cache, capsys):
    """A resume may change the learning recipe and the shape-free model field cond_noise; the change is
    written into the state, the checkpoint's config.json and the model card. A shape-changing field is refused."""
    out = tmp_path / "run"
    common = ["train", "--data", "shapes", "--out", str(out), "--sample-every", "100", "--checkpoint-every", "2",
              "--cache-dir", str(cache), *TINY_FLAGS]
    assert main([*common, "--max-steps", "2", "--cond-noise", "1.0"]) == 0
    assert main([*common, "--max-steps", "4", "--resume", "--cond-noise", "0.25", "--r1-gamma", "2.0"]) == 0
    cfg = json.loads((out / "checkpoint" / "config.json").read_text())
    assert cfg["model"]["cond_noise"] == 0.25 and cfg["step"] == 4
    assert cfg["training_history"] == [{"step": 2, "kimg": 0.0,
                                        "changed": {"cond_noise": [1.0, 0.25], "r1_gamma": [1.0, 2.0]}}]
    assert json.loads((out / "state" / "state.json").read_text())["history"] == cfg["training_history"]
    card = render_model_card(out / "checkpoint", [])
    assert "resumed at step 2 (0.0 kimg) with changed settings: cond_noise 1.0 → 0.25, r1_gamma 1.0 → 2.0" in card
    capsys.readouterr()
    assert main([*common, "--max-steps", "6", "--resume", "--z-dim", "8"]) == 0  # shape fields: the run's own win
    assert json.loads((out / "checkpoint" / "config.json").read_text())["model"]["z_dim"] == 16


def test_setting_changes_ignores_bookkeeping():
    before = {"r1_gamma": 1.0, "threads": 1, "out": "a", "betas": (0.0, 0.99)}
    after = {"r1_gamma": 1.0, "threads": 2, "out": "b", "betas": [0.0, 0.99], "kl_weight": 0.001}
    assert setting_changes(before, after) == {"kl_weight": [None, 0.001]}


def test_data_parallel_under_torchrun(tmp_path, cache):
    """Two CPU ranks (gloo): each draws its own batch, rank 0 writes; no code changes needed."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "--master_addr=127.0.0.1", "-m", "dalle", "train", "--data", "shapes", "--out", str(out),
           "--max-steps", "2", "--checkpoint-every", "2", "--sample-every", "2",
           "--max-minutes", "30", "--lr-decay", "1.0",  # a time-based rate: rank 0's progress is broadcast
           "--cache-dir", str(cache), *TINY_FLAGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((out / "checkpoint" / "config.json").read_text())
    assert cfg["images_seen"] == 2 * 4 * 2 and cfg["training_compute"]["world_size"] == 2
    row = next(csv.DictReader(open(out / "log.csv")))
    assert 0.9 < float(row["lr_scale"]) < 1.0  # a few seconds into a 30-minute budget
    TextToImagePipeline.from_pretrained(out / "checkpoint", device="cpu")


# ------------------------------------------------------------------------------ every loss, bf16
LOSS_RECIPES = {  # id -> TrainConfig fields on top of the defaults
    "prior": {},
    "posterior-mixing": {"recon": "posterior", "style_mixing": 0.5},
    "none-diversity-no-contrastive": {"recon": "none", "diversity_weight": 1.0, "contrastive_weight": 0.0},
    "prior-all-on-augmented": {"style_mixing": 0.5, "diversity_weight": 1.0, "augment": "translation,cutout"},
    "posterior-all-no-contrastive": {"recon": "posterior", "style_mixing": 0.5, "diversity_weight": 1.0,
                                     "contrastive_weight": 0.0},
    "layout-diversity": {"recon": "layout", "diversity_weight": 1.0},
}


@pytest.mark.parametrize("recipe", list(LOSS_RECIPES.values()), ids=list(LOSS_RECIPES))
def test_every_loss_configuration_trains_under_bf16_autocast(tmp_path, cache, recipe):
    t = tiny_trainer(tmp_path / "run", cache, r1_every=2, **recipe)
    t.objective.autocast = True  # bf16 on this CPU even where it has no native bf16 (then it is only slow)
    cfg = t.cfg
    assert (t.E is not None) == (cfg.recon in ("posterior", "layout"))
    d_grads = {}
    t.opt_d.register_step_pre_hook(lambda opt, args, kwargs: d_grads.update(
        {id(p): p.grad.clone() for p in t.D.parameters() if p.grad is not None}))
    g_before = [p.detach().clone() for p in t.G.parameters()]
    for step in range(3):
        stats = t.train_step()
        expected = {"loss_d", "loss_g", "loss_joint_d", "loss_joint_g", "kl", "d_real_acc", "match_acc"}
        expected |= {"contrastive_d", "contrastive_g"} if cfg.contrastive_weight > 0 else set()
        expected |= {"recon"} if cfg.recon != "none" else set()
        expected |= {"vae_kl"} if cfg.recon in ("posterior", "layout") else set()  # no caption here places its shape
        expected |= {"diversity"} if cfg.diversity_weight > 0 else set()
        expected |= {"r1"} if step % cfg.r1_every == 0 else set()
        assert set(stats) == expected, (step, sorted(stats))
        assert all(math.isfinite(v) for v in stats.values()), stats
        # G's step leaves D frozen, and D's gradients are what D's own step produced: none came from G's loss
        assert not any(p.requires_grad for p in t.D.parameters())
        assert len(d_grads) == len(list(t.D.parameters()))
        assert all(torch.equal(p.grad, d_grads[id(p)]) for p in t.D.parameters())
        d_grads.clear()
        for name, module in (("G", t.G), ("E", t.E)):
            if module is not None:
                grads = [p.grad for p in module.parameters() if p.grad is not None]
                assert grads and all(torch.isfinite(g).all() for g in grads), name
                assert any(g.abs().sum() > 0 for g in grads), f"{name} got no gradient"
    # G's word attention starts as the identity (zero output projection) and learns from the first step
    assert any(b.attn is not None and b.attn.out.weight.abs().sum() > 0 for b in t.G.synthesis.blocks)
    assert any(not torch.equal(a, p) for a, p in zip(g_before, t.G.parameters()))
    assert all(torch.isfinite(p).all() for p in [*t.G.parameters(), *t.D.parameters(), *t.G_ema.parameters()])
    assert t.step == 3 and t.images_seen == 12


def test_d_weights_move_in_the_d_step_only(tmp_path, cache):
    """D's weights change in opt_d.step and nowhere else (G's optimizer does not hold them; that D gets no
    gradient from G's loss is checked in the test above)."""
    t = tiny_trainer(tmp_path / "run", cache, r1_every=2)
    after_d = {}
    t.opt_d.register_step_post_hook(lambda opt, args, kwargs: after_d.update(
        {k: v.clone() for k, v in t.D.state_dict().items()}))
    before = {k: v.clone() for k, v in t.D.state_dict().items()}
    t.train_step()
    now = t.D.state_dict()
    assert any(not torch.equal(before[k], now[k]) for k in now)  # D learned...
    assert all(torch.equal(after_d[k], now[k]) for k in now)  # ...in its own step only


# ------------------------------------------------------------------------------ --init-from
def test_init_from_starts_with_the_checkpoint_weights_and_fresh_optimizers(tmp_path, cache):
    first = tiny_trainer(tmp_path / "first", cache)
    ck = first.run(max_steps=2)
    assert json.loads((ck / "config.json").read_text())["step"] == 2

    second = tiny_trainer(tmp_path / "second", cache, init_from=str(ck))
    gen, disc = load_tensors(ck, "generator"), load_tensors(ck, "discriminator")
    for name, module, shipped in (("G", second.G, gen), ("G_ema", second.G_ema, gen), ("D", second.D, disc)):
        sd = {k: v.cpu() for k, v in module.state_dict().items()}
        assert set(sd) == set(shipped), name
        assert all(torch.equal(sd[k], shipped[k].float()) for k in sd), f"{name} differs from the checkpoint"
    # the checkpoint ships the EMA generator in fp16: that, rounded, is where G starts
    assert all(torch.equal(second.G.state_dict()[k], v.half().float()) for k, v in first.G_ema.state_dict().items())
    assert all(torch.equal(second.D.state_dict()[k], v.half().float()) for k, v in first.D.state_dict().items())
    assert len(second.opt_g.state) == 0 and len(second.opt_d.state) == 0  # fresh Adam moments
    assert second.step == 0 and second.images_seen == 0
    assert second.history == [{"step": 0, "kimg": 0.0, "init_from": str(ck), "from_step": 2, "from_kimg": 0.0,
                               "from_command": ""}]
    out = second.run(max_steps=1)
    assert len(second.opt_g.state) > 0
    assert json.loads((out / "config.json").read_text())["training_history"] == second.history

    # a different architecture cannot take these weights: refused by the folder's name, before any training
    cfg = TrainConfig(data="tiny", out=str(tmp_path / "third"), batch_size=4, threads=1, cache_dir=str(cache),
                      init_from=str(ck))
    with pytest.raises(CheckpointError, match="same model config") as e:
        Trainer(dataclasses.replace(TINY_MODEL, w_dim=32), cfg, tiny_dataset())
    assert str(e.value).startswith(str(ck)) and "\n" not in str(e.value)
    assert not (tmp_path / "third").exists()


def test_init_from_may_add_the_group_spread_head_to_d(tmp_path, cache):
    """A checkpoint without D's group-spread head starts a run with it: every tensor it has loads, the head keeps
    its fresh weights, and the run's history names what was added. The other way round is refused."""
    ck = tiny_trainer(tmp_path / "first", cache).run(max_steps=1)
    with_head = dataclasses.replace(TINY_MODEL, d_group_spread=True)
    cfg = TrainConfig(data="tiny", out=str(tmp_path / "second"), batch_size=4, threads=1, cache_dir=str(cache),
                      init_from=str(ck))
    second = Trainer(with_head, cfg, tiny_dataset())
    shipped = load_tensors(ck, "discriminator")
    sd = second.D.state_dict()
    assert set(sd) - set(shipped) == {k for k in sd if k.startswith("group_spread.")} != set()
    assert all(torch.equal(sd[k], v.float()) for k, v in shipped.items())
    assert second.history[0]["added"] == ["d_group_spread"]

    ck_head = second.run(max_steps=1)  # saved with the head; a run without it cannot take its D
    cfg = dataclasses.replace(cfg, out=str(tmp_path / "third"), init_from=str(ck_head))
    with pytest.raises(CheckpointError, match="same model config"):
        Trainer(dataclasses.replace(TINY_MODEL), cfg, tiny_dataset())


@pytest.fixture(scope="module")
def continued(trained, tmp_path_factory, cache):
    """One step of `train --init-from` the module's trained checkpoint, without model flags."""
    out = tmp_path_factory.mktemp("continued") / "run"
    assert main(["train", "--data", "shapes", "--out", str(out), "--max-steps", "1", "--batch-size", "4",
                 "--threads", "1", "--sample-every", "100", "--cache-dir", str(cache),
                 "--init-from", str(trained / "checkpoint")]) == 0
    return out


def test_init_from_on_the_command_line_takes_the_checkpoint_architecture(trained, continued):
    source = trained / "checkpoint"
    cfg = json.loads((continued / "checkpoint" / "config.json").read_text())
    assert cfg["model"] == json.loads((source / "config.json").read_text())["model"]  # not the default model
    assert cfg["step"] == 1 and cfg["train"]["init_from"] == str(source)
    source_cfg = json.loads((source / "config.json").read_text())
    assert cfg["training_history"] == [{"step": 0, "kimg": 0.0, "init_from": str(source), "from_step": 6,
                                        "from_kimg": round(source_cfg["images_seen"] / 1000, 1),
                                        "from_command": source_cfg["training_compute"]["command"]}]
    assert source_cfg["training_compute"]["command"].startswith("python -m dalle train ")


def test_init_from_on_the_command_line_adds_the_d_head_asked_for(trained, tmp_path, cache):
    source = trained / "checkpoint"
    out = tmp_path / "run"
    assert main(["train", "--data", "shapes", "--out", str(out), "--max-steps", "1", "--batch-size", "4",
                 "--threads", "1", "--sample-every", "100", "--cache-dir", str(cache),
                 "--init-from", str(source), "--d-group-spread", "true"]) == 0
    model = json.loads((out / "checkpoint" / "config.json").read_text())["model"]
    assert model == json.loads((source / "config.json").read_text())["model"] | {"d_group_spread": True}
    assert "with fresh optimizer state, D's new `d_group_spread` head" in render_model_card(out / "checkpoint", [])


def test_model_card_of_an_init_from_run(trained, continued):
    card = render_model_card(continued / "checkpoint", [])
    source_command = json.loads((trained / "checkpoint" / "config.json").read_text())["training_compute"]["command"]
    assert f"started from the weights of `{trained / 'checkpoint'}` (its step 6, " in card
    assert f"trained by `{source_command}`), with fresh optimizer state" in card
    assert "- continued with `python -m dalle train " in card and "trained from scratch" not in card
    assert "trained from scratch with `" in render_model_card(trained / "checkpoint", [])


def test_init_from_a_continued_checkpoint_keeps_its_whole_history(trained, continued, tmp_path, cache):
    """Continuing a continued checkpoint: the history lists both starts, oldest first, so the card goes back to
    the run from scratch."""
    out = tmp_path / "again"
    assert main(["train", "--data", "shapes", "--out", str(out), "--max-steps", "1", "--batch-size", "4",
                 "--threads", "1", "--sample-every", "100", "--cache-dir", str(cache),
                 "--init-from", str(continued / "checkpoint")]) == 0
    history = json.loads((out / "checkpoint" / "config.json").read_text())["training_history"]
    assert [h["init_from"] for h in history] == [str(trained / "checkpoint"), str(continued / "checkpoint")]
    assert history[1]["from_command"].endswith(f"--init-from {trained / 'checkpoint'}")
    card = render_model_card(out / "checkpoint", [])
    assert card.index(f"`{trained / 'checkpoint'}`") < card.index(f"`{continued / 'checkpoint'}`")


def test_warmup_trains_g_by_reconstruction_alone_then_hands_over_to_the_gan(tmp_path, cache):
    t = tiny_trainer(tmp_path / "run", cache, warmup_kimg=0.008)  # 8 images: two steps of 4
    d_before = {k: v.clone() for k, v in t.D.state_dict().items()}
    g_before = [p.detach().clone() for p in t.G.parameters()]
    for _ in range(2):
        assert set(t.train_step()) == {"kl", "recon"}
    assert all(torch.equal(d_before[k], v) for k, v in t.D.state_dict().items())  # D was not trained
    assert any(not torch.equal(a, p) for a, p in zip(g_before, t.G.parameters()))  # G was
    assert {"loss_d", "loss_g", "recon"} <= set(t.train_step())  # the full game from then on


def test_warmup_without_reconstruction_is_refused(tmp_path, cache):
    with pytest.raises(ValueError, match="warmup"):
        tiny_trainer(tmp_path / "run", cache, warmup_kimg=1.0, recon="none")


def test_hard_negatives_and_word_region_match_train_under_bf16(tmp_path, cache):
    """With hard_negatives=1 every mismatched caption of D's step is a near miss of the real one, and D's
    word-region term learns from the first step (its read-out starts at zero)."""
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), hard_negatives=1.0)
    t = shapes_trainer(dataclasses.replace(TINY_MODEL, d_word_attention=True), cfg)
    batch = t.batch()
    text_wrong, idx = batch.text_wrong, batch.idx
    for i, caption in enumerate(idx.tolist()):
        near = t.data._near[caption]
        assert any(torch.equal(text_wrong.pooled[i], t.text_table[torch.tensor([j])].pooled[0]) for j in near)
    t.objective.autocast = True
    for _ in range(2):
        stats = t.train_step()
        assert all(math.isfinite(v) for v in stats.values()), stats
    assert t.D.word_match.score.weight.abs().sum() > 0


def test_g_ranks_its_own_caption_above_the_near_miss_of_each_caption_that_has_one(tmp_path, cache, monkeypatch):
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=8, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), near_miss_weight=2.0, diversity_weight=1.0)
    t = shapes_trainer(dataclasses.replace(TINY_MODEL), cfg)
    batch = t.batch()
    near = [t.text_table.pooled.tolist().index(row) for row in batch.near[0].pooled.tolist()]
    assert all(j in t.data._near[i] for i, j in zip(batch.idx.tolist(), near))
    seen, original = {}, losses.near_miss_ranking_loss

    def ranking(own, near_logits, valid):
        seen.update(own=own, valid=valid)
        return original(own, near_logits, valid)

    monkeypatch.setattr(losses, "near_miss_ranking_loss", ranking)
    t.images_seen = 0
    stats = t.train_step()
    assert math.isfinite(stats["near_miss_g"]) and seen["own"].shape == (8,)
    # the diversity pairs repeat the first half's captions, and their near misses with them
    assert torch.equal(seen["valid"][:4], seen["valid"][4:8])
    with pytest.raises(ValueError, match="near_miss_weight"):
        shapes_trainer(dataclasses.replace(TINY_MODEL), dataclasses.replace(cfg, near_miss_weight=-1.0))
    with pytest.raises(ValueError, match="supplies near misses"):
        tiny_trainer(tmp_path / "tiny", cache, near_miss_weight=1.0)


def test_d_ranks_a_real_images_own_caption_above_its_near_miss(tmp_path, cache):
    """d_near_miss_weight: D's step reports the ranking loss of its match logits on the real images, and one
    step dominated by it lowers that loss on the same batch."""
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=8, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), d_near_miss_weight=100.0, r1_gamma=0.0,
                      contrastive_weight=0.0, lr_d=1e-3)
    t = shapes_trainer(dataclasses.replace(TINY_MODEL, d_word_order=True), cfg)
    t.objective.autocast = False  # fp32, so the step's own value can be checked exactly
    batch = t.batch()
    real, text, idx = batch.real, batch.text, batch.idx
    near_text, valid = batch.near
    near = torch.tensor([t.text_table.pooled.tolist().index(row) for row in near_text.pooled.tolist()])
    assert all(j in t.data._near[i] for i, j in zip(idx.tolist(), near.tolist()))
    assert torch.equal(valid, near != idx)
    assert valid.any()

    def ranking() -> float:
        with torch.no_grad():
            r = t.D.features(real)
            return losses.near_miss_ranking_loss(t.D.heads(r, text)[1], t.D.heads(r, near_text)[1], valid).item()

    before = ranking()
    loss, stats = t.objective.d_loss(batch, r1=False)
    t._optimise(t.opt_d, [t.D], loss)
    assert stats["near_miss_d"] == pytest.approx(before, rel=1e-4)
    assert ranking() < before
    assert "near_miss_d" in t.train_step()  # the training step passes them on
    t0 = shapes_trainer(dataclasses.replace(TINY_MODEL), dataclasses.replace(cfg, d_near_miss_weight=0.0, out=str(tmp_path / "r0")))
    assert "near_miss_d" not in t0.train_step()
    with pytest.raises(ValueError, match="d_near_miss_weight"):
        shapes_trainer(dataclasses.replace(TINY_MODEL), dataclasses.replace(cfg, d_near_miss_weight=-1.0))
    with pytest.raises(ValueError, match="supplies near misses"):
        tiny_trainer(tmp_path / "tiny", cache, d_near_miss_weight=1.0)


def test_diversity_term_acts_on_open_captions_after_the_warm_up(tmp_path, cache, monkeypatch):
    """diversity_weight > 0: in the GAN phase the first half's prompts are repeated in the second half, and the term
    compares only the pairs whose caption leaves the layout open; during the warm-up there are no pairs."""
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), diversity_weight=1.0)
    t = shapes_trainer(dataclasses.replace(TINY_MODEL), cfg)
    placed = t.data.captions.index("a red circle at the top left")
    pair = t.data.captions.index("a red circle left of a blue square")
    t.batch = lambda: _fixed_batch(t, [placed, pair, placed, placed])
    compared = []
    div = losses.g_diversity_loss
    monkeypatch.setattr(losses, "g_diversity_loss", lambda a, b, za, zb, cap: compared.append(
        (len(a), torch.equal(za, zb))) or div(a, b, za, zb, cap))
    stats = t.train_step()
    assert compared == [(1, False)]  # the pair's two images, from two z; not the placed circle's
    assert stats["diversity"] >= 0
    t.batch = lambda: _fixed_batch(t, [placed, placed, pair, pair])  # no open caption in the first half
    assert "diversity" not in t.train_step() and len(compared) == 1
    t.cfg.warmup_kimg, t.images_seen = 1.0, 0
    t.batch = lambda: _fixed_batch(t, [placed, pair, placed, placed])
    assert "diversity" not in t.train_step() and len(compared) == 1


def test_group_spread_game_trains_d_and_g_on_groups_of_one_caption(tmp_path, cache, monkeypatch):
    """group_size=2, spread_weight > 0: each caption comes twice in a row; D's group-spread head judges the real
    and the fake groups, G's fresh groups meet it too, and the head is saved with D."""
    model = dataclasses.replace(TINY_MODEL, d_group_spread=True)
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), group_size=2, spread_weight=1.0)
    t = shapes_trainer(model, cfg)
    idx = t.batch().idx
    assert idx[0] == idx[1] and idx[2] == idx[3]
    calls = []
    judge = t.D.spread_logits
    monkeypatch.setattr(t.D, "spread_logits", lambda r, text, group: calls.append((len(r), group)) or judge(r, text, group))
    before = [w.detach().clone() for w in t.D.group_spread.parameters()]
    stats = t.train_step()
    assert calls == [(4, 2), (4, 2), (4, 2)]  # D: real and fake groups; G: its fake groups
    assert math.isfinite(stats["spread_d"]) and math.isfinite(stats["spread_g"])
    assert any(not torch.equal(a, b) for a, b in zip(before, t.D.group_spread.parameters()))
    folder = t.export(tmp_path / "ck")
    d = Discriminator(model_config(read_config(folder)))
    load_into(d, folder, "discriminator")
    assert torch.allclose(d.group_spread.mlp[0].weight, t.D.group_spread.mlp[0].weight, atol=1e-3)  # stored as fp16


def test_spread_pairs_weighs_the_pairs_groups_in_the_spread_game(tmp_path, cache, monkeypatch):
    """spread_pairs=0: a pair's group takes no part in D's or G's spread loss; the other groups keep weight 1."""
    model = dataclasses.replace(TINY_MODEL, d_group_spread=True)
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), group_size=2, spread_weight=1.0)
    t = shapes_trainer(model, cfg, spread_pairs=0.0)
    pair, placed = "a red circle left of a blue square", "a red circle at the top left"
    pair, placed = t.data.captions.index(pair), t.data.captions.index(placed)
    t.batch = lambda: _fixed_batch(t, [pair, pair, placed, placed])
    weights = []
    d_loss, g_loss = losses.d_realism_loss, losses.g_realism_loss
    monkeypatch.setattr(losses, "d_realism_loss", lambda r, f, w=None: weights.append(("d", w)) or d_loss(r, f, w))
    monkeypatch.setattr(losses, "g_realism_loss", lambda f, w=None: weights.append(("g", w)) or g_loss(f, w))
    t.train_step()
    spread = [(side, w.tolist()) for side, w in weights if w is not None]
    assert spread == [("d", [0.0, 1.0]), ("g", [0.0, 1.0])]
    t.data.opts.spread_pairs, weights[:] = 1.0, []
    t.train_step()  # at 1 no weight is made: the game is as without the setting
    assert all(w is None for _, w in weights) and len(weights) == 5  # D: realism, spread; G: realism, joint, spread


@pytest.mark.parametrize("settings, message", [
    (dict(group_size=2, spread_weight=1.0, spread_pairs=-1.0, model=True), "spread_pairs"),
    (dict(group_size=3), "divide the batch"),
    (dict(group_size=2, spread_weight=1.0), "d-group-spread"),
    (dict(group_size=1, spread_weight=1.0, model=True), "group-size 2"),
    (dict(group_size=2, spread_weight=1.0, diversity_weight=1.0, model=True), "use one"),
])
def test_group_spread_settings_are_checked(tmp_path, cache, settings, message):
    model = dataclasses.replace(TINY_MODEL, d_group_spread=settings.pop("model", False))
    options = {k: settings.pop(k) for k in list(settings) if k == "spread_pairs"}
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, cache_dir=str(cache), **settings)
    with pytest.raises(ValueError, match=message):
        shapes_trainer(model, cfg, **options)


def test_d_calls_a_wrong_render_of_a_caption_fake(tmp_path, cache):
    """d_wrong_images: the batch carries a wrong render of each of its first half's captions, D's step reports
    softplus(u + m) on them (a known value: the same D scores them the same), and one step dominated by it lowers
    that loss on the same batch. G's step is untouched (it never sees the wrong images)."""
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=8, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), d_wrong_images=100.0, r1_gamma=0.0,
                      contrastive_weight=0.0, lr_d=1e-3)
    t = shapes_trainer(dataclasses.replace(TINY_MODEL), cfg)
    t.objective.autocast = False  # fp32, so the step's own value can be checked exactly
    batch = t.batch()
    assert batch.wrong.shape == (4, 3, 32, 32)
    assert not torch.equal(batch.wrong, batch.real[:4])  # each is a spoiled render, not the real image

    def wrong_loss() -> float:
        with torch.no_grad():
            u, m = t.D(batch.wrong, batch.text[:4])
            return torch.nn.functional.softplus(u + m).mean().item()

    before = wrong_loss()
    loss, stats = t.objective.d_loss(batch, r1=False)
    t._optimise(t.opt_d, [t.D], loss)
    assert stats["wrong_d"] == pytest.approx(before, rel=1e-4)
    assert wrong_loss() < before
    assert "wrong_d" in t.train_step()
    t0 = shapes_trainer(dataclasses.replace(TINY_MODEL), dataclasses.replace(cfg, d_wrong_images=0.0, out=str(tmp_path / "r0")))
    assert t0.batch().wrong is None and "wrong_d" not in t0.train_step()
    with pytest.raises(ValueError, match="d_wrong_images"):
        shapes_trainer(dataclasses.replace(TINY_MODEL), dataclasses.replace(cfg, d_wrong_images=-1.0))
    assert tiny_trainer(tmp_path / "tiny", cache, d_wrong_images=1.0).batch().wrong.shape == (2, 3, 32, 32)
    data = tiny_dataset()
    data.supplies_wrong_images = False  # a dataset that cannot draw them is refused by name
    with pytest.raises(ValueError, match="--d-wrong-images needs a dataset that draws wrong images"):
        Trainer(dataclasses.replace(TINY_MODEL), dataclasses.replace(cfg, data="tiny"), data)


def test_groups_need_a_dataset_that_draws_a_caption_again(tmp_path, cache):
    with pytest.raises(ValueError, match="draw a caption again"):
        tiny_trainer(tmp_path / "tiny", cache, group_size=2)


def test_layout_reconstruction_takes_open_captions_z_from_the_encoder(tmp_path, cache, monkeypatch):
    """recon="layout": in the first half of the batch, open captions take z from E and are reconstructed; in the
    second half they are the GAN's alone. Captions that place their shape are reconstructed from a prior z."""
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(cache), recon="layout")
    t = shapes_trainer(dataclasses.replace(TINY_MODEL), cfg)
    placed = t.data.captions.index("a red circle at the top left")
    pair = t.data.captions.index("a red circle left of a blue square")
    t.batch = lambda: _fixed_batch(t, [placed, pair, pair, placed])
    encoded, weights = [], []
    encode = t.E.forward
    monkeypatch.setattr(t.E, "forward", lambda images, text: encoded.append(len(images)) or encode(images, text))
    rec = losses.reconstruction_loss
    monkeypatch.setattr(losses, "reconstruction_loss",
                        lambda images, target, kind="l1", weight=None: weights.append(weight) or rec(images, target, kind, weight))
    stats = t.train_step()
    assert encoded == [1]  # the pair of the first half
    assert weights[-1].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert math.isfinite(stats["vae_kl"]) and "vae_kl" in stats


def test_layout_encoder_sees_where_the_shapes_are_not_their_colours():
    from dalle.images import uint8_to_tensor
    from dalle.models.image_encoder import LayoutEncoder, ink
    from dalle.shapes.world import COLORS

    scenes = {name: [Shape(name, "circle", "large", "top left"), Shape("black", "square", "small", "right")]
              for name in COLORS}
    images = uint8_to_tensor(np.stack([render(s, 32) for s in scenes.values()]))
    marks = ink(images)
    assert marks.shape == (len(COLORS), 1, 32, 32)
    assert marks[:, 0, 0, 0].max() < 0.01  # white background
    assert marks[:, 0, 5, 5].min() > 0.7  # inside the circle, whatever its colour
    torch.manual_seed(0)
    enc = LayoutEncoder(TINY_MODEL).eval()
    text = torch.nn.functional.normalize(torch.randn(1, TINY_MODEL.text_dim), dim=-1).expand(len(COLORS), -1)
    with torch.no_grad():
        mu, var = enc(images, text)
        moved = uint8_to_tensor(np.stack([render([Shape("red", "circle", "large", "bottom right")], 32)]))
        mu_moved, _ = enc(moved, text[:1])
    assert mu.shape == var.shape == (len(COLORS), TINY_MODEL.z_dim) and (var > 0).all()
    assert (mu - mu[:1]).abs().max() < 0.05 * mu.abs().max()  # a recoloured circle: (nearly) the same z
    assert (mu_moved - mu[:1]).abs().max() > 0.05 * mu.abs().max()  # a moved one: another z


def _fixed_batch(t: Trainer, caption_indices: list[int]):
    """A batch of real shapes images whose captions are the given ones (images are blank: only the captions matter)."""
    idx = torch.tensor(caption_indices)
    real = torch.ones(len(idx), 3, 32, 32)
    weights = t.data.group_weights(idx[::t.cfg.group_size]) if t.cfg.spread_weight > 0 else None
    return Batch(real, t.text_table[idx], t.text_table[idx.roll(1)], idx, group_weights=weights)


def test_hard_negatives_outside_0_1_are_refused(tmp_path, cache):
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, cache_dir=str(cache), hard_negatives=1.5)
    with pytest.raises(ValueError, match="hard_negatives"):
        shapes_trainer(dataclasses.replace(TINY_MODEL), cfg)


# ---------------------------------------------------------------------- data-parallel gradients
def _allreduce_problem(batch: int = 4):
    """A fixed generator and batch: (G, z, text, eps, target), the same in every process."""
    from dalle.models.generator import Generator
    from dalle.text_encoder import TextCondition

    torch.manual_seed(0)
    g = Generator(dataclasses.replace(TINY_MODEL))
    cfg = TINY_MODEL
    text = TextCondition(torch.randn(batch, cfg.text_dim), torch.randn(batch, cfg.max_tokens, cfg.text_dim),
                         torch.ones(batch, cfg.max_tokens, dtype=torch.bool))
    z, eps = torch.randn(batch, cfg.z_dim), torch.randn(batch, cfg.cond_dim)
    target = torch.rand(batch, 3, cfg.resolution, cfg.resolution) * 2 - 1
    return g, z, text, eps, target


def _allreduce_loss(g, z, text, eps, target) -> torch.Tensor:
    """A loss that is a mean over samples (reconstruction + KL), so half-batch means average to the full one."""
    from dalle.training import losses

    images, kl = g(z, text, eps=eps)
    return losses.reconstruction_loss(images, target, "l2") + kl


def _allreduce_rank(rank: int, world: int, init_file: str, out: str) -> None:
    """One rank: its share of the batch, backward, then the trainer's gradient all-reduce; rank 0 saves grads."""
    from types import SimpleNamespace

    import torch.distributed as dist
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        g, z, text, eps, target = _allreduce_problem()
        mine = torch.arange(rank, len(z), world)  # rank r takes samples r, r + world, ...
        _allreduce_loss(g, z[mine], text[mine], eps[mine], target[mine]).backward()
        Trainer._allreduce_grads(SimpleNamespace(world=world), g)
        if rank == 0:
            save_file({n: p.grad.contiguous() for n, p in g.named_parameters() if p.grad is not None}, out)
    finally:
        dist.destroy_process_group()


def test_two_ranks_on_half_batches_get_the_gradients_of_one_rank_on_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    out = tmp_path / "grads.safetensors"
    mp.spawn(_allreduce_rank, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    reduced = load_file(str(out))

    g, z, text, eps, target = _allreduce_problem()
    _allreduce_loss(g, z, text, eps, target).backward()
    whole = {n: p.grad for n, p in g.named_parameters() if p.grad is not None}
    assert reduced.keys() == whole.keys() and len(whole) > 10
    # Float rounding of two sums of halves against one sum, on the scale of the largest gradient (some
    # gradients are zero up to rounding, e.g. conv biases followed by GroupNorm).
    scale = max(grad.abs().max() for grad in whole.values())
    assert scale > 1e-3  # the comparison is not between zeros
    errors = {name: ((reduced[name] - grad).abs().max() / scale).item() for name, grad in whole.items()}
    assert max(errors.values()) < 1e-5, max(errors.items(), key=lambda kv: kv[1])


def test_nearest_z_reconstructs_from_the_closest_of_k_draws(tmp_path, cache):
    """recon_candidates=K: for each real image the G step uses the z whose image is nearest to it, out of K draws."""
    t = tiny_trainer(tmp_path / "run", cache, recon_candidates=4)
    t.objective.autocast = False  # fp32 both here and in the replay below, so the nearest draw is the same one
    batch = t.batch()
    real, text = batch.real, batch.text
    eps = torch.zeros(real.shape[0], TINY_MODEL.cond_dim)
    state = t.torch_rng.get_state()
    chosen = t.objective.nearest_z(eps, text, real)
    t.torch_rng.set_state(state)
    draws = torch.stack([t.objective.noise(real.shape[0])[0] for _ in range(4)])  # the same K draws, replayed
    with torch.no_grad():
        dists = torch.stack([(t.G(z, text, eps=eps)[0].float() - real).pow(2).flatten(1).mean(1) for z in draws])
    best = dists.argmin(0)
    assert torch.equal(chosen, draws[best, torch.arange(real.shape[0])])
    assert (dists.min(0).values <= dists.mean(0)).all()
    stats = t.train_step()
    assert math.isfinite(stats["recon"])


def test_nearest_z_searches_only_the_reconstructed_images(tmp_path, cache):
    """With a mask, only the masked images get the nearest of K draws; the others keep their first draw."""
    t = tiny_trainer(tmp_path / "run", cache, recon_candidates=3)
    t.objective.autocast = False
    batch = t.batch()
    real, text = batch.real, batch.text
    b = real.shape[0]
    eps = torch.zeros(b, TINY_MODEL.cond_dim)
    where = torch.arange(b) % 2 == 0
    state = t.torch_rng.get_state()
    chosen = t.objective.nearest_z(eps, text, real, where)
    t.torch_rng.set_state(state)
    draws = torch.stack([t.objective.noise(b)[0] for _ in range(3)])
    assert torch.equal(chosen[~where], draws[0][~where])  # not reconstructed: a plain prior draw
    with torch.no_grad():
        dists = torch.stack([(t.G(z, text, eps=eps)[0].float() - real).pow(2).flatten(1).mean(1) for z in draws])
    best = dists.argmin(0)
    assert torch.equal(chosen[where], draws[best, torch.arange(b)][where])
    t.torch_rng.set_state(state)
    assert torch.equal(t.objective.nearest_z(eps, text, real, torch.zeros(b, dtype=torch.bool)), draws[0])


def test_recon_candidates_need_prior_reconstruction(tmp_path, cache):
    with pytest.raises(ValueError, match="recon-candidates"):
        tiny_trainer(tmp_path / "run", cache, recon_candidates=4, recon="posterior")


def test_lr_scale_holds_then_falls_linearly_to_zero():
    assert [lr_scale(p, 0.5) for p in (0.0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 0.5, 0.0]
    assert lr_scale(0.9, 0.0) == 1.0  # no decay
    assert lr_scale(0.0, 1.0) == 1.0 and lr_scale(0.25, 1.0) == 0.75  # decay over the whole run


def test_lr_decay_scales_both_optimizers_by_the_run_progress(tmp_path, cache):
    t = tiny_trainer(tmp_path / "run", cache, total_kimg=0.016, lr_decay=0.5, lr_g=1e-3, lr_d=2e-3)  # 4 steps of 4
    d_lr = t.opt_d.param_groups[0]["lr"]  # lr_d scaled for lazy R1
    for _ in range(3):  # progress 0, 0.25, 0.5 at the start of each step: full rate
        assert t.train_step()["lr_scale"] == 1.0
    assert t.train_step()["lr_scale"] == 0.5  # progress 0.75: halfway down the last half
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(0.5e-3)
    assert t.opt_d.param_groups[0]["lr"] == pytest.approx(0.5 * d_lr)


def test_lr_decay_outside_0_1_is_refused(tmp_path, cache):
    with pytest.raises(ValueError, match="lr_decay"):
        tiny_trainer(tmp_path / "run", cache, lr_decay=1.5)


def test_the_log_records_both_near_miss_rankings(tmp_path, cache):
    out = tmp_path / "run"
    rc = main(["train", "--data", "shapes", "--out", str(out), "--max-steps", "2", "--sample-every", "2",
               "--checkpoint-every", "2", "--cache-dir", str(cache), "--d-near-miss-weight", "1",
               "--near-miss-weight", "1", *TINY_FLAGS])
    assert rc == 0
    with open(out / "log.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["near_miss_d"]) > 0 and float(row["near_miss_g"]) > 0  # softplus ranking losses are positive


def test_the_shapes_preset_runs_as_given(tmp_path, cache):
    """`--preset shapes` with its own model settings: its flags fit together (seeded layouts need z_dim >= 28 and
    prior reconstruction), and one step writes a checkpoint whose config records them."""
    from dalle.presets import PRESETS

    out = tmp_path / "run"
    rc = main(["train", "--preset", "shapes", "--out", str(out), "--max-steps", "1", "--batch-size", "4",
               "--sample-every", "1", "--checkpoint-every", "1", "--cache-dir", str(cache), "--max-minutes", "5"])
    assert rc == 0
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    recorded = {**config["model"], **config["train"]}
    for name, value in PRESETS["shapes"].items():
        if name not in ("out", "max_minutes"):  # given on the command line
            assert recorded[name] == value, name
