"""The text-match judge (`dalle/judge.py`): its loss, that no gradient of it reaches G, the shapes world's wrong
images, and that the pipeline scores match with it when a checkpoint has one."""

import random

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL
from dalle.images import uint8_to_tensor
from dalle.judge import load_judge, save_judge
from dalle.training.judge import JudgeSettings, judge_loss, train_judge
from dalle.models.discriminator import Discriminator
from dalle.models.generator import Generator
from dalle.shapes import checker
from dalle.shapes.training import ShapesOptions, ShapesTraining
from dalle.shapes.world import WRONG_KINDS, ShapesWorld, allowed_objects, redraw, render, wrong_render
from dalle.text_encoder import TextCondition


def _text(n: int, seed: int) -> TextCondition:
    g = torch.Generator().manual_seed(seed)
    return TextCondition(torch.randn(n, TINY_MODEL.text_dim, generator=g),
                         torch.randn(n, TINY_MODEL.max_tokens, TINY_MODEL.text_dim, generator=g),
                         torch.ones(n, TINY_MODEL.max_tokens, dtype=torch.bool))


def _silent_judge() -> Discriminator:
    """A judge whose match logit is 0 for every pair: its image projection and bias are zero."""
    torch.manual_seed(0)
    judge = Discriminator(TINY_MODEL)
    with torch.no_grad():
        judge.image_proj.weight.zero_()
        judge.image_proj.bias.zero_()
        judge.match_bias.zero_()
    return judge


def test_the_loss_is_softplus_of_each_pair_with_a_known_value():
    """With every match logit 0, each term is softplus(0) = ln 2: the own pair, each rival caption, the wrong images."""
    judge, real = _silent_judge(), torch.rand(4, 3, 32, 32) * 2 - 1
    own, rivals = _text(4, 1), [_text(4, 2), _text(4, 3)]
    loss, stats = judge_loss(judge, real, own, rivals, wrong=torch.rand(4, 3, 32, 32) * 2 - 1)
    assert loss.item() == pytest.approx(4 * np.log(2), rel=1e-6)
    loss, _ = judge_loss(judge, real, own, rivals[:1], wrong=None)
    assert loss.item() == pytest.approx(2 * np.log(2), rel=1e-6)
    assert stats["match_acc"] == 0.0  # ties: the own pair beats nothing


def test_no_gradient_of_the_judge_reaches_the_generator():
    """The judge learns from real images; a generator's image scored by it passes no gradient back: the judge's loss
    is built on detached inputs, and G's parameters keep no gradient after the judge's backward."""
    torch.manual_seed(0)
    G, judge = Generator(TINY_MODEL), Discriminator(TINY_MODEL)
    text = _text(2, 4)
    fake, _ = G(torch.randn(2, TINY_MODEL.z_dim), text)
    loss, _ = judge_loss(judge, fake.detach(), text, [_text(2, 5)], wrong=None)
    loss.backward()
    assert all(p.grad is None for p in G.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in judge.parameters())


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
    judge, record = train_judge(cfg, data, table, JudgeSettings(steps=2, batch_size=4, frozen_trunk=False),
                                log=lambda _: None)
    assert record["images"] == 8 and "a wrong image of the caption" in record["negatives"]
    save_judge(judge, folder, record)
    loaded, again = load_judge(folder, cfg)
    assert again == record
    images = uint8_to_tensor(data.sample(3, random.Random(2))[0])
    text = table[:3]
    np.testing.assert_allclose(loaded.score(images, text)["match"], judge.score(images, text)["match"], atol=2e-2)
    with torch.no_grad():
        loaded.match_bias.fill_(20.0)  # a judge that calls everything a match
    pipe = TextToImagePipeline.from_pretrained(folder, device="cpu")
    assert pipe.match_source == "judge"
    pipe.judge = loaded.to(memory_format=torch.channels_last)
    out = pipe(["a red circle"], num_images=2)
    assert (out.match > 0.99).all()
    assert (pipe.discriminator_match(images, text) < 0.99).any()


def test_a_frozen_trunk_judge_keeps_the_discriminators_trunk_and_trains_a_fresh_head():
    from dalle.judge import TRUNK

    torch.manual_seed(3)
    D = Discriminator(TINY_MODEL)
    data = ShapesTraining(32, ShapesOptions())
    table = _text(len(data.captions), 7)
    with pytest.raises(ValueError, match="needs the checkpoint's discriminator"):
        train_judge(TINY_MODEL, data, table, JudgeSettings(steps=1, batch_size=2, frozen_trunk=True), log=print)
    judge, record = train_judge(TINY_MODEL, data, table, JudgeSettings(steps=2, batch_size=2, frozen_trunk=True),
                                log=lambda _: None, discriminator=D)
    ours, theirs = judge.state_dict(), D.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k.startswith(TRUNK))
    assert not torch.equal(ours["image_proj.weight"], theirs["image_proj.weight"])
    assert record["trunk"] == "the checkpoint's discriminator, frozen"


def test_a_frozen_trunk_judge_is_saved_without_the_trunk_and_loads_it_from_the_discriminator(tmp_path):
    from dalle.checkpoint import load_tensors, save_checkpoint
    from dalle.judge import TRUNK

    torch.manual_seed(4)
    G, D = Generator(TINY_MODEL), Discriminator(TINY_MODEL)
    folder = save_checkpoint(tmp_path / "ckpt", {"model": TINY_MODEL.to_dict()}, G, D)
    data = ShapesTraining(32, ShapesOptions())
    table = _text(len(data.captions), 8)
    judge, record = train_judge(TINY_MODEL, data, table, JudgeSettings(steps=1, batch_size=2, frozen_trunk=True),
                                log=lambda _: None, discriminator=D)
    save_judge(judge, folder, record)
    assert not any(k.startswith(TRUNK) for k in load_tensors(folder, "judge"))
    loaded, _ = load_judge(folder, TINY_MODEL)
    images = uint8_to_tensor(data.sample(2, random.Random(0))[0])
    np.testing.assert_allclose(loaded.score(images, table[:2])["match"], judge.score(images, table[:2])["match"],
                               atol=2e-2)
