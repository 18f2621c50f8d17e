"""The word-order code: whitened token states in order, fitted once, saved with the weights, read by G and D."""

import dataclasses

import pytest
import torch

from dalle.checkpoint import load_into
from dalle.config import ModelConfig, TrainConfig
from dalle.datasets import open_training_data
from dalle.models.discriminator import Discriminator
from dalle.models.generator import Generator
from dalle.models.word_order import WordOrder
from dalle.text_encoder import TextCondition, fixed_length
from dalle.training.trainer import Trainer

TEXT_DIM, LENGTH = 16, 6


def table(n: int, seed: int = 0) -> TextCondition:
    """n prompts of 3 to 6 random token states (correlated dimensions, non-zero means), padded to 6."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(TEXT_DIM, TEXT_DIM, generator=g)
    states = torch.randn(n, LENGTH, TEXT_DIM, generator=g) @ mix + torch.linspace(-2, 2, TEXT_DIM)
    lengths = torch.randint(3, LENGTH + 1, (n,), generator=g)
    tokens, mask = fixed_length(states, torch.arange(LENGTH)[None] < lengths[:, None], LENGTH)
    return TextCondition(tokens.mean(1), tokens, mask)


def test_fitted_code_is_white_along_each_kept_direction_and_zero_where_padded():
    text = table(400)
    code = WordOrder(TEXT_DIM, positions=4, dim=5)
    code.fit(text)
    out = code(text).view(400, 4, 5)
    real = out[text.mask[:, :4]]  # [N, 5] the real tokens among the first 4
    assert torch.allclose(real.mean(0), torch.zeros(5), atol=1e-4)
    assert torch.allclose(real.T @ real / real.shape[0], torch.eye(5), atol=1e-3)  # unit variance, uncorrelated
    assert torch.equal(out[~text.mask[:, :4]], torch.zeros_like(out[~text.mask[:, :4]]))
    assert (code.scale[:-1] >= code.scale[1:]).all()  # main directions first


def test_code_keeps_word_order_that_the_mean_loses_and_ignores_tokens_past_its_positions():
    text = table(50)
    code = WordOrder(TEXT_DIM, positions=3, dim=4)
    code.fit(text)
    swapped = text.tokens.clone()
    swapped[:, [1, 2]] = text.tokens[:, [2, 1]]  # two words trade places: the sentence mean is unchanged
    out, out_swapped = code(text).view(50, 3, 4), code(TextCondition(text.pooled, swapped, text.mask)).view(50, 3, 4)
    assert torch.allclose(out_swapped[:, [1, 2]], out[:, [2, 1]], atol=1e-5)  # the code's blocks trade places too
    assert not torch.allclose(out_swapped, out)
    later = text.tokens.clone()
    later[:, 3:] = torch.randn_like(later[:, 3:])
    assert torch.equal(code(TextCondition(text.pooled, later, text.mask)), code(text))


def test_a_short_table_is_refused():
    with pytest.raises(ValueError, match="more than 5 token states"):
        WordOrder(TEXT_DIM, positions=2, dim=5).fit(table(2))


TINY = ModelConfig(resolution=32, channel_base=128, d_channel_base=256, w_dim=64, z_dim=16, cond_dim=16,
                   embed_dim=64, attn_dim=16, max_tokens=8, word_order_tokens=6, word_order_dim=8,
                   d_word_order=True, g_word_order=True)


def test_g_and_d_read_the_code_and_training_fits_it_to_the_captions(tmp_path):
    cfg = TrainConfig(data="shapes", out=str(tmp_path / "run"), batch_size=4, threads=1, sample_every=100,
                      checkpoint_every=100, cache_dir=str(tmp_path / "cache"), hard_negatives=0.5)
    t = Trainer(dataclasses.replace(TINY), cfg, open_training_data("shapes", TINY.resolution))
    assert t.G.mapping.ca.proj.in_features == t.D.text_proj[0].in_features == 6 * 8
    expected = WordOrder(TINY.text_dim, 6, 8)
    expected.fit(t.text_table)
    for module in (t.G.word_order, t.G_ema.word_order, t.D.word_order):
        assert all(torch.equal(a, b) for a, b in zip(module.buffers(), expected.buffers()))
    text = t.text_table[:2].to("cpu", torch.float32)
    assert torch.equal(t.D.sentence(text), expected(text)) and torch.equal(t.G.sentence(text), expected(text))
    t.run(max_steps=2)
    # the statistics are buffers: training leaves them alone, and they travel with the exported weights
    assert all(torch.equal(a, b) for a, b in zip(t.G_ema.word_order.buffers(), expected.buffers()))
    G, D = Generator(TINY), Discriminator(TINY)
    load_into(G, t.out / "checkpoint", "generator")
    load_into(D, t.out / "checkpoint", "discriminator")
    for module in (G.word_order, D.word_order):  # shipped in fp16
        assert all(torch.allclose(a, b, rtol=1e-2, atol=1e-3) for a, b in zip(module.buffers(), expected.buffers()))
