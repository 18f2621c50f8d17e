"""The text-match judge (`dalle/judge.py`): its loss, that no gradient of it reaches G, the shapes world's wrong
images, saving and loading, and that the pipeline scores match with it when a checkpoint has one."""

import json
import random

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL
from dalle.images import uint8_to_tensor
from dalle.judge import HeadOnDiscriminator, Judge, JudgeConfig, load_judge, save_judge, tower_widths
from dalle.training.judge import JudgeSettings, judge_loss, train_judge
from dalle.models.discriminator import Discriminator
from dalle.models.generator import Generator
from dalle.shapes import checker
from dalle.shapes.training import ShapesOptions, ShapesTraining
from dalle.shapes.world import WRONG_KINDS, ShapesWorld, allowed_objects, redraw, render, wrong_render
from dalle.text_encoder import TextCondition

TINY_JUDGE = JudgeConfig(resolution=32, text_dim=TINY_MODEL.text_dim, widths=(8, 8, 16, 16), embed_dim=8,
                         text_hidden=8)


def _text(n: int, seed: int) -> TextCondition:
    g = torch.Generator().manual_seed(seed)
    return TextCondition(torch.randn(n, TINY_MODEL.text_dim, generator=g),
                         torch.randn(n, TINY_MODEL.max_tokens, TINY_MODEL.text_dim, generator=g),
                         torch.ones(n, TINY_MODEL.max_tokens, dtype=torch.bool))


def _silent_judge() -> Judge:
    """A judge whose match logit is 0 for every pair: its logit scale is e^-inf-like (0) and its bias is 0."""
    torch.manual_seed(0)
    judge = Judge(TINY_JUDGE)
    with torch.no_grad():
        judge.logit_scale.fill_(-1e4)
        judge.bias.zero_()
    return judge


def test_the_loss_is_softplus_of_each_pair_with_a_known_value():
    """With every match logit 0, each binary term is softplus(0) = ln 2: the own pair, each rival caption, the wrong
    images; the in-batch contrastive term over B equal logits is ln B each way, and masked pairs leave it."""
    judge, real = _silent_judge(), torch.rand(4, 3, 32, 32) * 2 - 1
    own, rivals = _text(4, 1), [_text(4, 2), _text(4, 3)]
    loss, stats = judge_loss(judge, real, own, rivals, wrong=torch.rand(4, 3, 32, 32) * 2 - 1)
    assert loss.item() == pytest.approx(4 * np.log(2), rel=1e-6)
    loss, _ = judge_loss(judge, real, own, rivals[:1], wrong=None)
    assert loss.item() == pytest.approx(2 * np.log(2), rel=1e-6)
    assert stats["match_acc"] == 0.0  # ties: the own pair beats nothing
    loss, _ = judge_loss(judge, real, own, rivals[:1], wrong=None, contrast_weight=0.5)
    assert loss.item() == pytest.approx(2 * np.log(2) + 0.5 * np.log(4), rel=1e-5)
    same = torch.zeros(4, 4, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True  # images 0 and 1 share a caption: each has 3 candidates, not 4
    loss, _ = judge_loss(judge, real, own, rivals[:1], wrong=None, same=same, contrast_weight=1.0)
    assert loss.item() == pytest.approx(2 * np.log(2) + (2 * np.log(3) + 2 * np.log(4)) / 4, rel=1e-5)


def test_the_towers_widths_reach_4x4_at_each_resolution():
    assert tower_widths(64) == (16, 32, 64, 128, 256)
    assert tower_widths(32) == (32, 64, 128, 256)
    judge = Judge(JudgeConfig(resolution=64, text_dim=TINY_MODEL.text_dim))
    assert judge(torch.zeros(2, 3, 64, 64), _text(2, 0)).shape == (2,)
    with pytest.raises(ValueError, match="reads 64 px images, got 32 px"):
        judge(torch.zeros(2, 3, 32, 32), _text(2, 0))


def test_no_gradient_of_the_judge_reaches_the_generator():
    """The judge learns from real images; a generator's image scored by it passes no gradient back: the judge's loss
    is built on detached inputs, and G's parameters keep no gradient after the judge's backward."""
    torch.manual_seed(0)
    G, judge = Generator(TINY_MODEL), Judge(TINY_JUDGE)
    text = _text(2, 4)
    fake, _ = G(torch.randn(2, TINY_MODEL.z_dim), text)
    loss, _ = judge_loss(judge, fake.detach(), text, [_text(2, 5)], wrong=None, contrast_weight=1.0)
    loss.backward()
    assert all(p.grad is None for p in G.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in judge.parameters())


def test_training_learns_to_tell_an_images_caption_from_another():
    """On a toy dataset whose caption is the image's colour, a few hundred batches put own pairs above swapped ones."""
    from dalle.data.base import TrainingData

    colours = np.array([[255, 0, 0], [0, 0, 255], [0, 160, 0], [250, 200, 0]], dtype=np.uint8)

    class Colours(TrainingData):
        captions = ["red", "blue", "green", "yellow"]

        def sample(self, batch_size, rng, group=1):
            idx = np.array([rng.randrange(4) for _ in range(batch_size)])
            return np.broadcast_to(colours[idx][:, None, None], (batch_size, 32, 32, 3)).copy(), idx

        def describe(self):
            return {"name": "colours"}

    table = _text(4, 9)
    judge, record = train_judge(TINY_MODEL, Colours(), table, JudgeSettings(steps=150, batch_size=8, lr=1e-2),
                                log=lambda _: None)
    images = uint8_to_tensor(np.broadcast_to(colours[:, None, None], (4, 32, 32, 3)).copy())
    scores = torch.stack([judge.score(images, table[torch.full((4,), j)]) for j in range(4)], dim=1)  # [image, caption]
    assert (scores.argmax(1) == torch.arange(4)).all()
    assert record["images"] == 150 * 8 and record["negatives"] == ["another caption"]


@pytest.mark.parametrize("kind", [k for k in WRONG_KINDS if k != "ghost"])
def test_wrong_renders_fail_the_checker(kind):
    """Every solid wrong render of a scene fails the checker's exact verdict for the scene's caption (a single
    shape has nothing to leave out: `missing` gives it a ghost, tested below)."""
    world, rng = ShapesWorld(32), random.Random(0)
    objects = allowed_objects(world.holdout)
    failed = 0
    scenes = [redraw(world.scenes[i], rng) for i in rng.sample(range(len(world.captions)), 200)]
    scenes = [s for s in scenes if kind != "missing" or len(s.shapes) > 1][:60]
    for scene in scenes:
        near = [world.captions[j] for j in world._near[world._index[scene.caption]]]
        near_scene = redraw(world.scenes[world._index[rng.choice(near)]], rng) if near != [scene.caption] else None
        image, drawn = wrong_render(scene, 32, rng, objects, near_scene, kind)
        failed += not checker.check(image, scene.caption)["exact"]
    assert failed == len(scenes)


def test_ghosts_are_faint_extra_ink_on_a_clean_render():
    world, rng = ShapesWorld(32), random.Random(1)
    objects = allowed_objects(world.holdout)
    seen = 0
    for i in rng.sample(range(len(world.captions)), 40):
        scene = redraw(world.scenes[i], rng)
        image, drawn = wrong_render(scene, 32, rng, objects)
        if drawn == "ghost":
            seen += 1
            assert checker.ghosts(render(scene.shapes, 32), scene.caption) == 0
            assert np.abs(image.astype(int) - 255).sum() > 0
    assert seen > 10


def test_the_world_supplies_wrong_images_for_a_batch():
    data = ShapesTraining(32, ShapesOptions())
    images, idx = data.sample(6, random.Random(0))
    wrong = data.wrong_images(idx, random.Random(0))
    assert data.supplies_wrong_images and wrong.shape == images.shape and wrong.dtype == np.uint8


def test_a_saved_judge_scores_as_before_and_the_pipeline_uses_it(tmp_path, checkpoints_dir):
    """train_judge -> save_judge -> load_judge round trip (fp16), and from_pretrained's match comes from the judge."""
    import shutil

    from dalle.checkpoint import model_config, read_config
    from dalle.pipeline import TextToImagePipeline

    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoints_dir / "shapes-32", folder)
    for shipped in folder.glob("judge*"):  # start from a folder without a judge
        shipped.unlink()
    cfg = model_config(read_config(folder))
    data = ShapesTraining(cfg.resolution, ShapesOptions())
    pipe = TextToImagePipeline.from_pretrained(folder, device="cpu")
    assert pipe.match_source == "discriminator"
    table = pipe.encode(data.captions).to("cpu", torch.float32)
    judge_cfg = JudgeConfig.for_model(cfg)
    assert judge_cfg.word_order_tokens == cfg.word_order_tokens > 0  # shapes-32's D reads word order: so does its judge
    judge, record = train_judge(cfg, data, table, JudgeSettings(steps=2, batch_size=4), log=lambda _: None)
    assert record["images"] == 8 and "a wrong image of the caption" in record["negatives"]
    save_judge(judge, folder, record)
    loaded, again = load_judge(folder, cfg)
    assert again == {**record, "config": judge_cfg.to_dict()} and record["trunk"] == "its own"
    images = uint8_to_tensor(data.sample(3, random.Random(2))[0])
    text = table[:3]
    np.testing.assert_allclose(loaded.score(images, text), judge.score(images, text), atol=2e-2)
    with torch.no_grad():
        loaded.bias.fill_(40.0)  # a judge that calls everything a match
    pipe = TextToImagePipeline.from_pretrained(folder, device="cpu")
    assert pipe.match_source == "judge"
    pipe.judge = loaded.to(memory_format=torch.channels_last)
    out = pipe(["a red circle"], num_images=2)
    assert (out.match > 0.99).all()
    assert (pipe.discriminator_match(images, text) < 0.99).any()


def test_a_head_on_the_discriminator_keeps_its_trunk_and_trains_a_fresh_head():
    torch.manual_seed(3)
    D = Discriminator(TINY_MODEL)
    data = ShapesTraining(32, ShapesOptions())
    table = _text(len(data.captions), 7)
    settings = JudgeSettings(steps=2, batch_size=2, trunk="discriminator")
    with pytest.raises(ValueError, match="needs the checkpoint's discriminator"):
        train_judge(TINY_MODEL, data, table, settings, log=print)
    with pytest.raises(ValueError, match="expected 'own' or 'discriminator'"):
        train_judge(TINY_MODEL, data, table, JudgeSettings(steps=1, trunk="d"), log=print)
    judge, record = train_judge(TINY_MODEL, data, table, settings, log=lambda _: None, discriminator=D)
    ours, theirs = judge.net.state_dict(), D.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k.startswith(HeadOnDiscriminator.TRUNK))
    assert not torch.equal(ours["image_proj.weight"], theirs["image_proj.weight"])
    assert record["trunk"] == "the checkpoint's discriminator, frozen"


def test_a_head_on_the_discriminator_is_saved_without_the_trunk_and_loads_it_from_the_discriminator(tmp_path):
    from dalle.checkpoint import CheckpointError, load_tensors, save_checkpoint

    torch.manual_seed(4)
    G, D = Generator(TINY_MODEL), Discriminator(TINY_MODEL)
    folder = save_checkpoint(tmp_path / "ckpt", {"model": TINY_MODEL.to_dict()}, G, D)
    data = ShapesTraining(32, ShapesOptions())
    table = _text(len(data.captions), 8)
    judge, record = train_judge(TINY_MODEL, data, table, JudgeSettings(steps=1, batch_size=2, trunk="discriminator"),
                                log=lambda _: None, discriminator=D)
    save_judge(judge, folder, record)
    assert not any(k.startswith(HeadOnDiscriminator.TRUNK) for k in load_tensors(folder, "judge"))
    loaded, _ = load_judge(folder, TINY_MODEL)
    assert isinstance(loaded, HeadOnDiscriminator)
    images = uint8_to_tensor(data.sample(2, random.Random(0))[0])
    np.testing.assert_allclose(loaded.score(images, table[:2]), judge.score(images, table[:2]), atol=2e-2)
    (folder / "judge.json").write_text(json.dumps({k: v for k, v in record.items() if k != "trunk"}))
    with pytest.raises(CheckpointError, match="neither an own judge"):
        load_judge(folder, TINY_MODEL)
    (folder / "judge.json").write_text(json.dumps({**record, "config": {"resolution": 32, "colour": 1}}))
    with pytest.raises(CheckpointError, match="not a judge architecture"):
        load_judge(folder, TINY_MODEL)
