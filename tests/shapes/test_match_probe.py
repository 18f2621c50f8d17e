"""The match-head probe: near-miss accuracy has known answers, a fresh D trains, and the CLI prints the result."""

import json
import random
import zlib
from pathlib import Path

import torch

from dalle.cli import main
from dalle.config import ModelConfig
from dalle.models.discriminator import Discriminator
from dalle.shapes.probes.match import near_miss_accuracy, train_match_head
from dalle.shapes.world import ShapesWorld
from dalle.text_encoder import TextCondition

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "shapes-32"
TINY = ModelConfig(resolution=32, d_channel_base=256, embed_dim=32)


def caption_id(caption: str) -> int:
    return zlib.crc32(caption.encode()) % 2**20  # exact as a float


def fake_encode(captions: list[str]) -> TextCondition:
    """A caption -> a fixed random vector whose first component is its id (no text encoder needed)."""
    ids = torch.tensor([float(caption_id(c)) for c in captions])
    pooled = torch.randn(len(captions), TINY.text_dim, generator=torch.Generator().manual_seed(0))
    pooled[:, 0] = ids
    return TextCondition(pooled, torch.zeros(len(captions), 1, TINY.text_dim), torch.ones(len(captions), 1, dtype=torch.bool))


def test_a_match_head_blind_to_the_text_beats_no_rival():
    """With the text projection zeroed, every caption gets the same logit: own > rival is never true."""
    torch.manual_seed(0)
    D = Discriminator(TINY)
    with torch.no_grad():
        D.text_proj[-1].weight.zero_()
        D.text_proj[-1].bias.zero_()
    result = near_miss_accuracy(D, fake_encode, num_scenes=40)
    assert result["flip"] == result["swap"] == result["other"] == 0.0
    assert 0 < result["scenes"] <= 40  # scenes whose shapes share a colour are left out


def test_an_oracle_match_head_beats_every_near_miss():
    """A match logit of 1 for exactly the probed scenes' own captions, 0 for any other caption."""
    world = ShapesWorld(32, mix=(0.0, 1.0, 0.0))
    _, idx = world.sample(40, random.Random(123))  # the scenes near_miss_accuracy draws (its default seed)
    own = {caption_id(world.captions[i]) for i in idx}

    class Oracle(Discriminator):
        def heads(self, r, text):
            return torch.zeros(len(text)), torch.tensor([float(int(i) in own) for i in text.pooled[:, 0]])

    result = near_miss_accuracy(Oracle(TINY), fake_encode, num_scenes=40)
    assert result["flip"] == result["swap"] == 1.0
    assert result["other"] == 0.0  # another scene's caption is one of the oracle's own captions too: a tie


def test_train_match_head_updates_the_discriminator():
    world = ShapesWorld(32)
    torch.manual_seed(0)  # train_match_head builds its D after the same seed
    before = Discriminator(TINY).state_dict()
    D = train_match_head(TINY, fake_encode(world.captions), world, steps=2, batch_size=4)
    changed = [k for k, v in D.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("text_proj") for k in changed) and any(k.startswith("blocks") for k in changed)
    assert not D.training


def test_train_match_head_fits_the_word_order_code_to_the_captions():
    world = ShapesWorld(32, mix=(0.0, 1.0, 0.0))
    cfg = ModelConfig(resolution=32, d_channel_base=256, embed_dim=32, d_word_order=True)
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(len(world.captions), 4, dtype=torch.bool)
    text = TextCondition(torch.zeros(len(world.captions), cfg.text_dim),
                         torch.randn(len(world.captions), 4, cfg.text_dim, generator=g) * 3 + 1, mask)
    D = train_match_head(cfg, text, world, steps=1, batch_size=4)
    assert D.text_proj[0].in_features == cfg.word_order_tokens * cfg.word_order_dim
    assert torch.allclose(D.word_order.mean, text.tokens.flatten(0, 1).mean(0))  # fitted, not the zero default


def test_probe_cli_prints_the_accuracies(capsys, tmp_path):
    rc = main(["probe", "--steps", "1", "--cache-dir", str(tmp_path)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"flip", "swap", "other", "scenes", "seconds"}
    assert all(0.0 <= result[k] <= 1.0 for k in ("flip", "swap", "other")) and result["scenes"] > 0


def test_probe_cli_scores_a_checkpoints_discriminator(capsys, tmp_path):
    rc = main(["probe", "--checkpoint", str(SHIPPED), "--cache-dir", str(tmp_path)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["scenes"] > 500 and all(0.0 <= result[k] <= 1.0 for k in ("flip", "swap", "other"))


def test_probe_cli_refuses_a_missing_checkpoint(capsys, tmp_path):
    assert main(["probe", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
