"""The colour-binding probe: known answers for a blind and an oracle generator, training fits, and the CLI."""

import json
import random
import zlib
from types import SimpleNamespace

import torch

from dalle.cli import main
from dalle.config import ModelConfig
from dalle.images import uint8_to_tensor
from dalle.models.generator import Generator
from dalle.models.image_encoder import LayoutEncoder
from dalle.shapes.probes.binding import PAIRS, colour_binding, train_binding
from dalle.shapes.world import ShapesWorld, near_misses
from dalle.text_encoder import TextCondition
from dalle.training.losses import reconstruction_loss

TINY = ModelConfig(resolution=32, channel_base=128, channel_max=32, attn_dim=16, w_dim=32, cond_dim=16, z_dim=8)


def fake_encode(captions: list[str]) -> TextCondition:
    """A caption -> a vector fixed by its text (no text encoder needed), one token state each."""
    pooled = torch.stack([torch.randn(TINY.text_dim, generator=torch.Generator().manual_seed(zlib.crc32(c.encode())))
                          for c in captions])
    return TextCondition(pooled, pooled[:, None], torch.ones(len(captions), 1, dtype=torch.bool))


def test_a_generator_blind_to_the_caption_never_wins():
    """With the sentence zeroed and the word attention's read-out at zero (its start), G draws the same image from
    either caption: own and swap errors are equal, and a tie is not a win."""
    torch.manual_seed(0)
    G, E = Generator(TINY).eval(), LayoutEncoder(TINY).eval()
    G.sentence = lambda text: torch.zeros(len(text.pooled), TINY.text_dim)
    result = colour_binding(G, E, fake_encode, num_scenes=30)
    assert result["own"] == result["swap"] and result["own_wins"] == 0.0
    assert 0 < result["scenes"] <= 30


def test_an_oracle_that_draws_the_scene_only_from_its_own_caption_always_wins():
    """A stand-in G that returns the real scene for the own caption and a blank for any other scores 1.0."""
    world = ShapesWorld(32, mix=PAIRS)
    images, idx = world.sample(30, random.Random(123))  # the scenes colour_binding draws (its default seed)
    captions = [world.captions[i] for i in idx]
    keep = [i for i, c in enumerate(captions) if len(near_misses(c)) == 2]
    real, own = uint8_to_tensor(images[keep]), fake_encode([captions[i] for i in keep]).pooled

    def synthesis(w, text):
        is_own = (text.pooled == own).all(1)
        return torch.where(is_own[:, None, None, None], real, torch.ones_like(real))

    oracle = SimpleNamespace(cfg=TINY, sentence=lambda text: text.pooled, synthesis=synthesis,
                             mapping=lambda z, sentence, eps: (z, None))
    result = colour_binding(oracle, LayoutEncoder(TINY).eval(), fake_encode, num_scenes=30)
    assert result["own"] == 0.0 and result["swap"] > 0 and result["own_wins"] == 1.0
    assert result["scenes"] == len(keep)
    mean_image = (real.mean(0, keepdim=True) - real).pow(2).mean().item()  # the references, computed the long way
    grey = (real.mean(1, keepdim=True).repeat(1, 3, 1, 1) - real).pow(2).mean().item()
    assert abs(result["mean_image"] - mean_image) < 1e-6 and abs(result["grey"] - grey) < 1e-6


def test_train_binding_lowers_the_reconstruction_error():
    world = ShapesWorld(32, mix=PAIRS)
    table = fake_encode(world.captions)
    images, idx = world.sample(16, random.Random(5))
    real, text = uint8_to_tensor(images), table[torch.from_numpy(idx)]

    def error(G, E):
        with torch.no_grad():
            mu, _ = E(real, text.pooled)
            w, _ = G.mapping(mu, G.sentence(text), eps=torch.zeros(16, TINY.cond_dim))
            return reconstruction_loss(G.synthesis(w, text), real, "l2").item()

    before = error(*train_binding(TINY, table, world, steps=0))
    G, E = train_binding(TINY, table, world, steps=30, batch_size=8)
    assert error(G, E) < before and not G.training and not E.training


def test_word_positions_let_g_tell_word_order_apart():
    """Attention over a set of words cannot see their order: the same token states in another order give the
    same image. With g_word_positions each position adds its own vector, and the images differ."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(1, 5, TINY.text_dim, generator=g)
    text = TextCondition(torch.randn(1, TINY.text_dim, generator=g), tokens, torch.ones(1, 5, dtype=torch.bool))
    swapped = TextCondition(text.pooled, tokens[:, [0, 3, 2, 1, 4]], text.mask)  # two words trade places
    z = torch.randn(1, TINY.z_dim, generator=g)
    eps = torch.zeros(1, TINY.cond_dim)
    images = {}
    for positions in (False, True):
        torch.manual_seed(0)
        G = Generator(ModelConfig(**{**TINY.to_dict(), "g_word_positions": positions})).eval()
        with torch.no_grad():
            for block in G.synthesis.blocks:  # the read-out starts at zero (identity); open it
                if block.attn is not None:
                    block.attn.out.weight.normal_(generator=g)
            if positions:
                G.synthesis.position.normal_(generator=g)
            images[positions] = [G(z, t, eps=eps)[0] for t in (text, swapped)]
    assert torch.allclose(*images[False], atol=1e-5)
    assert not torch.allclose(*images[True], atol=1e-3)
    assert G.synthesis.position.shape == (TINY.max_tokens, TINY.attn_dim)


def test_probe_binding_cli_prints_the_errors(capsys, tmp_path):
    rc = main(["probe-binding", "--steps", "1", "--cache-dir", str(tmp_path), "--channel-base", "128",
               "--channel-max", "32", "--g-word-positions", "true"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"own", "swap", "own_wins", "scenes", "mean_image", "grey", "seconds"}
    assert 0 < result["grey"] < result["mean_image"]  # the layout alone, in grey, is nearer the scenes than their mean
    assert result["own"] > 0 and result["swap"] > 0 and 0.0 <= result["own_wins"] <= 1.0 and result["scenes"] > 0


def test_train_binding_starts_from_a_given_generator_and_keeps_its_word_order_code():
    """A trained G (--init-from) is trained on as it is: the same module, and its word-order statistics are the
    checkpoint's, not refitted to the probe's pair captions."""
    cfg = ModelConfig(**{**TINY.to_dict(), "g_word_order": True})
    world = ShapesWorld(32, mix=PAIRS)
    table = TextCondition(*(lambda t: (t.pooled, t.pooled[:, None].repeat(1, 4, 1),
                                       torch.ones(len(t.pooled), 4, dtype=torch.bool)))(fake_encode(world.captions)))
    torch.manual_seed(1)
    G = Generator(cfg)
    G.word_order.mean.fill_(7.0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    trained, _ = train_binding(cfg, table, world, steps=2, batch_size=4, G=G)
    assert trained is G and not G.training
    assert torch.equal(G.word_order.mean, torch.full_like(G.word_order.mean, 7.0))
    assert any(not torch.equal(v, before[k]) for k, v in G.state_dict().items())  # and it did train
    fresh, _ = train_binding(cfg, table, world, steps=0)
    assert not torch.equal(fresh.word_order.mean, G.word_order.mean)  # a fresh G fits the code to the captions


def test_probe_binding_cli_starts_from_a_checkpoint(capsys, tmp_path):
    from dalle.checkpoint import save_checkpoint
    from dalle.models.discriminator import Discriminator

    cfg = ModelConfig(**{**TINY.to_dict(), "d_channel_base": 256})
    ck = tmp_path / "ck"
    save_checkpoint(ck, {"model": cfg.to_dict(), "name": "ck", "step": 1, "images_seen": 32,
                         "dataset": {"name": "shapes"}}, Generator(cfg), Discriminator(cfg))
    rc = main(["probe-binding", "--steps", "1", "--cache-dir", str(tmp_path / "cache"), "--init-from", str(ck)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["scenes"] > 0 and result["own"] > 0
    (ck / "generator.safetensors").write_bytes(b"not weights")
    rc = main(["probe-binding", "--steps", "1", "--cache-dir", str(tmp_path / "cache"), "--init-from", str(ck)])
    assert rc != 0 and "generator.safetensors" in capsys.readouterr().err  # refused, naming the file
