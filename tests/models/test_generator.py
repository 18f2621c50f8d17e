import dataclasses
import math

import pytest
import torch

from dalle.config import ModelConfig
from dalle.models.discriminator import Discriminator, GroupSpread
from dalle.models.generator import ConditioningAugmentation, Generator, StyledConv, WordAttention, WordMixer, truncate
from dalle.text_encoder import TextCondition, fixed_length
from dalle.training.objective import mix_styles

TINY = ModelConfig(resolution=32, channel_base=256, d_channel_base=256, w_dim=32, z_dim=8, cond_dim=8, attn_dim=16,
                   max_tokens=6, text_dim=384, mapping_layers=2, embed_dim=32)
L, D = TINY.max_tokens, TINY.text_dim


def tiny_generator(seed: int = 0, **model) -> Generator:
    torch.manual_seed(seed)
    return Generator(dataclasses.replace(TINY, **model)).eval()


def condition(lengths: list[int], seed: int = 0) -> TextCondition:
    """Random prompts with `lengths` real tokens each (padded to max_tokens, zeros where padded)."""
    g = torch.Generator().manual_seed(seed)
    pooled = torch.nn.functional.normalize(torch.randn(len(lengths), D, generator=g), dim=-1)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    tokens, mask = fixed_length(torch.randn(len(lengths), L, D, generator=g), mask, L)
    return TextCondition(pooled, tokens, mask)


def wake(g: Generator, seed: int = 1) -> None:
    """Word attention's output projections and the convs' style affines start at zero (identity attention,
    styles of scale 1 and shift 0, whatever w is); give them weights, as training does."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, WordAttention):
                m.out.weight.copy_(torch.randn(m.out.weight.shape, generator=gen) * 0.5)
            elif isinstance(m, StyledConv):
                m.style.weight.copy_(torch.randn(m.style.weight.shape, generator=gen) * 0.2)


def test_shapes_of_generator_and_discriminator():
    g, d = tiny_generator(), Discriminator(TINY)
    z, t = torch.randn(3, 8), condition([3, 6, 1])
    img, kl = g(z, t)
    assert img.shape == (3, 3, 32, 32) and kl.ndim == 0
    realism, match = d(img, t)
    assert realism.shape == (3,) and match.shape == (3,)
    s = d.score(img, t)
    assert ((s["realism"] >= 0) & (s["realism"] <= 1)).all() and ((s["match"] >= 0) & (s["match"] <= 1)).all()


def test_discriminator_heads_take_the_pooled_text():
    torch.manual_seed(0)
    d = Discriminator(TINY).eval()
    t = condition([2, 5, 6])
    with torch.no_grad():
        img = torch.rand(3, 3, 32, 32) * 2 - 1
        r = d.features(img)
        assert r.shape[-2:] == (4, 4)
        u, m = d.heads(r, t)
        # the match matrix's diagonal is each image with its own caption (bias left out)
        assert torch.allclose(d.match_matrix(r, t).diagonal() + d.match_bias, m, atol=1e-5)
        assert torch.equal(torch.stack(d(img, t)), torch.stack((u, m)))
        # without the word-region term D reads the sentence embedding only: other word states give the same logits
        other = TextCondition(t.pooled, torch.randn_like(t.tokens), t.mask)
        assert torch.equal(torch.stack(d(img, other)), torch.stack((u, m)))


def word_discriminator() -> Discriminator:
    torch.manual_seed(0)
    d = Discriminator(dataclasses.replace(TINY, d_word_attention=True)).eval()
    with torch.no_grad():  # the read-out starts at zero; give it weights so the term is not 0
        d.word_match.score.weight.normal_()
    return d


def test_word_region_term_starts_at_zero():
    torch.manual_seed(0)
    d = Discriminator(dataclasses.replace(TINY, d_word_attention=True)).eval()
    plain = Discriminator(TINY).eval()
    plain.load_state_dict({k: v for k, v in d.state_dict().items() if not k.startswith("word_match.")})
    img, t = torch.rand(3, 3, 32, 32) * 2 - 1, condition([2, 5, 6])
    with torch.no_grad():
        assert torch.equal(torch.stack(d(img, t)), torch.stack(plain(img, t)))


def test_word_region_term_reads_the_words_and_their_place():
    d = word_discriminator()
    t = condition([2, 5, 6])
    img = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        r = d.features(img)
        u, m = d.heads(r, t)
        # pairwise scores agree with the per-pair ones
        assert torch.allclose(d.match_matrix(r, t).diagonal() + d.match_bias, m, atol=1e-4)
        # other word states, same sentence embedding: the match changes, realism does not
        u2, m2 = d.heads(r, TextCondition(t.pooled, torch.randn_like(t.tokens), t.mask))
        assert torch.equal(u, u2) and not torch.allclose(m, m2)
        # padded tokens are ignored: changing them changes nothing
        padded = t.tokens.clone()
        padded[~t.mask] = 100.0
        assert torch.allclose(d.heads(r, TextCondition(t.pooled, padded, t.mask))[1], m, atol=1e-5)
        # the same regions in other places score differently: the read-out is per position
        flipped = r.flip(-1)
        assert not torch.allclose(d.word_match(flipped, t), d.word_match(r, t))


def test_word_region_term_gets_gradients():
    d = word_discriminator().train()
    t = condition([2, 5, 6])
    img = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_(True)
    _, m = d(img, t)
    m.sum().backward()
    assert img.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.word_match.parameters())


def test_text_condition_rows_slice_and_move():
    t = condition([1, 2, 3, 6])
    assert len(t) == 4 and len(t[1:3]) == 2
    picked = t[torch.tensor([3, 0, 3])]
    assert torch.equal(picked.tokens[0], t.tokens[3]) and torch.equal(picked.mask[1], t.mask[0])
    both = TextCondition.cat([t[:1], t[3:]])
    assert torch.equal(both.pooled, t.pooled[[0, 3]])
    half = t.to("cpu", torch.bfloat16)
    assert half.pooled.dtype == half.tokens.dtype == torch.bfloat16 and half.mask.dtype == torch.bool
    # padded positions hold zeros and count as padding
    assert t.mask.sum(1).tolist() == [1, 2, 3, 6] and (t.tokens[~t.mask] == 0).all()


def test_word_attention_shapes_identity_start_and_masking():
    torch.manual_seed(0)
    attn = WordAttention(channels=16, dim=16)
    x = torch.randn(2, 16, 4, 4)
    words = torch.randn(2, 6, 16)
    mask = torch.tensor([[True, True, True, False, False, False], [True] * 6])
    out = attn(x, words, mask)
    assert out.shape == x.shape
    assert torch.equal(out, x)  # zero-initialised output projection: starts as the identity

    with torch.no_grad():
        attn.out.weight.normal_()
    out = attn(x, words, mask)
    assert not torch.allclose(out, x, atol=1e-3)
    padded = words.clone()
    padded[0, 3:] = 100 * torch.randn(3, 16)  # only padded positions of prompt 0 change
    assert torch.allclose(attn(x, padded, mask), out, atol=1e-6)
    real = words.clone()
    real[0, 1] = torch.randn(16)  # a real word of prompt 0 changes
    changed = attn(x, real, mask)
    assert not torch.allclose(changed[0], out[0], atol=1e-3)
    assert torch.allclose(changed[1], out[1], atol=1e-6)  # prompt 1 is not affected by prompt 0's words


def test_word_mixer_lets_each_word_read_its_neighbours_but_not_padding():
    torch.manual_seed(0)
    mixer = WordMixer(dim=16, max_tokens=6).eval()
    words = torch.randn(2, 6, 16)
    mask = torch.tensor([[True, True, True, False, False, False], [True] * 6])
    with torch.no_grad():
        out = mixer(words, mask)
        assert out.shape == words.shape
        padded = words.clone()
        padded[0, 3:] = 100 * torch.randn(3, 16)  # padding of prompt 0 changes: its real words do not
        assert torch.allclose(mixer(padded, mask)[0, :3], out[0, :3], atol=1e-5)
        colour = words.clone()
        colour[0, 1] = torch.randn(16)  # "red" -> "blue": the state of the next word ("square") changes too
        assert not torch.allclose(mixer(colour, mask)[0, 2], out[0, 2], atol=1e-3)
        mixer.position.normal_()  # word order: the same words in another order are not a permutation of the states
        swapped = words[:, [1, 0, 2, 3, 4, 5]]
        assert not torch.allclose(mixer(swapped, mask)[:, [1, 0, 2]], mixer(words, mask)[:, :3], atol=1e-3)


@pytest.mark.parametrize("word_mixing", [False, True])
def test_generator_ignores_padded_token_states(word_mixing):
    g = tiny_generator(word_mixing=word_mixing)
    wake(g)
    t = condition([3, 6])
    z, eps = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        ref, _ = g(z, t, eps=eps)
        padded = t.tokens.clone()
        padded[0, 3:] = 50 * torch.randn(L - 3, D)
        same, _ = g(z, TextCondition(t.pooled, padded, t.mask), eps=eps)
        real = t.tokens.clone()
        real[0, 0] = torch.randn(D)
        other, _ = g(z, TextCondition(t.pooled, real, t.mask), eps=eps)
    assert torch.allclose(same, ref, atol=1e-5)
    assert not torch.allclose(other[0], ref[0], atol=1e-4)  # the words reach the image...
    assert torch.allclose(other[1], ref[1], atol=1e-5)  # ...of their own prompt only


def test_per_layer_styles():
    g = tiny_generator()
    wake(g)
    syn = g.synthesis
    assert syn.num_ws == 1 + 2 + 2 + 2 + 1  # input projection; two convs at 4, 8, 16 px; one at 32 px
    t = condition([4, 2])
    w = torch.randn(2, TINY.w_dim)
    with torch.no_grad():
        ref = syn(w, t)
        assert ref.shape == (2, 3, 32, 32)
        assert torch.equal(syn(w[:, None].expand(-1, syn.num_ws, -1), t), ref)
        assert torch.allclose(syn(w[:, None].repeat(1, syn.num_ws, 1), t), ref, atol=1e-6, rtol=0)
        late = w[:, None].repeat(1, syn.num_ws, 1)
        late[:, -1] = torch.randn(2, TINY.w_dim)  # only the last conv's style differs
        assert not torch.allclose(syn(late, t), ref, atol=1e-4)


def test_mix_styles():
    n, w, w2 = 8, torch.randn(64, 32), torch.randn(64, 32)
    rng = torch.Generator().manual_seed(0)
    assert torch.equal(mix_styles(w, w2, n, 0.0, rng), w[:, None].expand(-1, n, -1))
    mixed = mix_styles(w, w2, n, 1.0, rng)
    assert mixed.shape == (64, n, 32)
    cuts = []
    for i in range(64):
        from_w = [torch.equal(mixed[i, k], w[i]) for k in range(n)]
        from_w2 = [torch.equal(mixed[i, k], w2[i]) for k in range(n)]
        assert all(a != b for a, b in zip(from_w, from_w2))  # every layer takes one of the two
        cut = from_w.index(False)
        assert 1 <= cut < n and all(from_w[:cut]) and all(from_w2[cut:])  # earlier layers w, later w2
        cuts.append(cut)
    assert len(set(cuts)) > 3  # crossover points vary over the batch
    # the same generator state gives the same mix; about half mixed at prob 0.5
    a = mix_styles(w, w2, n, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, mix_styles(w, w2, n, 0.5, torch.Generator().manual_seed(3)))
    n_mixed = sum(not torch.equal(a[i], w[i, None].expand(n, -1)) for i in range(64))
    assert 16 <= n_mixed <= 48
    # through G: mixing changes the image (at initialisation styles are ignored, so wake them first)
    g = tiny_generator()
    wake(g)
    t = condition([3, 3])
    with torch.no_grad():
        ws = mix_styles(w[:2], w2[:2], g.synthesis.num_ws, 1.0, torch.Generator().manual_seed(0))
        assert not torch.allclose(g.synthesis(ws, t), g.synthesis(w[:2], t), atol=1e-4)


def test_truncate_formula():
    w, c = torch.randn(4, 32), torch.randn(4, 32)
    assert torch.equal(truncate(w, c, 1.0), w)
    assert torch.equal(truncate(w, c, 0.0), c)
    assert torch.allclose(truncate(w, c, 1.5), c + 1.5 * (w - c))


def test_truncate_known_values():
    w, c = torch.tensor([[2.0, 4.0, -1.0]]), torch.tensor([[0.0, 1.0, 1.0]])
    assert torch.equal(truncate(w, c, 0.5), torch.tensor([[1.0, 2.5, 0.0]]))
    assert torch.equal(truncate(w, c, 2.0), torch.tensor([[4.0, 7.0, -3.0]]))  # extrapolates past w
    assert torch.equal(truncate(w, c, 0.25), torch.tensor([[0.5, 1.75, 0.5]]))


def test_conditional_centre_known_answer():
    """The centre is the mean of map(z_k, mu + s sigma eps_k) over the draws of a generator seeded with `seed`
    (z first, then eps), computed here draw by draw."""
    g = tiny_generator()
    text = condition([3, 5, 2]).pooled
    n, seed = 16, 7
    gen = torch.Generator().manual_seed(seed)
    z, eps = torch.randn(n, TINY.z_dim, generator=gen), torch.randn(n, TINY.cond_dim, generator=gen)
    with torch.no_grad():
        expected = torch.stack([torch.stack([g.mapping(z[k:k + 1], t[None], eps[k:k + 1])[0][0] for k in range(n)])
                                .mean(0) for t in text])
    center = g.mapping.conditional_center(text, num_samples=n, seed=seed)
    assert center.shape == (3, TINY.w_dim)
    assert torch.allclose(center, expected, atol=1e-5)
    # each prompt's centre is computed alone: bit for bit the same in any batch
    assert torch.equal(g.mapping.conditional_center(text[1:2], num_samples=n, seed=seed), center[1:2])
    assert torch.equal(g.mapping.conditional_center(text[[2, 0]], num_samples=n, seed=seed), center[[2, 0]])
    assert not torch.allclose(g.mapping.conditional_center(text, num_samples=n, seed=seed + 1), center, atol=1e-4)
    # the defaults the pipeline relies on: 256 draws from seed 0 (docs/design.md)
    assert torch.equal(g.mapping.conditional_center(text), g.mapping.conditional_center(text, num_samples=256, seed=0))
    assert not torch.equal(g.mapping.conditional_center(text), g.mapping.conditional_center(text, 257, 0))
    assert not torch.equal(g.mapping.conditional_center(text), g.mapping.conditional_center(text, 256, 1))


def test_scores_are_sigmoids_of_the_logits():
    torch.manual_seed(0)
    d = Discriminator(TINY).eval()
    t = condition([2, 4])
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        u, m = d(img, t)
        s = d.score(img, t)
        assert torch.equal(s["realism"], torch.sigmoid(u)) and torch.equal(s["match"], torch.sigmoid(m))
        # pixels outside [-1, 1] are clamped before D sees them
        assert torch.equal(d.score(img * 3, t)["realism"], d.score((img * 3).clamp(-1, 1), t)["realism"])


def test_psi_zero_gives_the_conditional_centre_image():
    g = tiny_generator()
    text = condition([2, 5])
    center = g.mapping.conditional_center(text.pooled, num_samples=64)
    # psi = 0: every noise draw collapses onto the prompt's own centre
    t = text[torch.arange(2).repeat_interleave(3)]
    c = center.repeat_interleave(3, 0)
    with torch.no_grad():
        imgs, _ = g(torch.randn(6, 8), t, psi=0.0, center=c)
        ref = g.synthesis(c, t)
    assert torch.allclose(imgs, ref, atol=1e-6)
    assert torch.allclose(imgs[0], imgs[1], atol=1e-6) and not torch.allclose(imgs[0], imgs[3], atol=1e-3)


def test_conditional_centre_is_the_mean_w_of_that_prompt():
    g = tiny_generator()
    text = condition([4]).pooled
    center = g.mapping.conditional_center(text, num_samples=4096, seed=3)
    with torch.no_grad():
        w, _ = g.mapping(torch.randn(4096, 8), text.expand(4096, -1))
    # two independent 4096-draw means differ by ~std * sqrt(2 / 4096) per dimension; allow 6 of those
    bound = 6 * w.std(0) * (2 / 4096) ** 0.5 + 1e-5
    assert ((center[0] - w.mean(0)).abs() <= bound).all()
    other = g.mapping.conditional_center(condition([4], seed=1).pooled, num_samples=256)
    assert not torch.allclose(center, other, atol=1e-3)  # conditional: depends on the text


def test_same_seed_same_pixels():
    g = tiny_generator()
    text = condition([5])

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        z, eps = torch.randn(1, 8, generator=gen), torch.randn(1, 8, generator=gen)
        with torch.no_grad():
            return g(z, text, psi=0.7, eps=eps)[0]

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_generator_runs_under_cpu_autocast(dtype):
    g = tiny_generator()
    wake(g)
    t = condition([3, 6])
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        img, kl = g(torch.randn(2, 8), t)
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img.float()).all() and torch.isfinite(kl.float())


def test_kl_is_taken_before_the_noise_scale():
    """c = mu + s * sigma * eps, and the KL is that of N(mu, sigma^2) whatever the sampling scale s."""
    def layer(noise: float) -> ConditioningAugmentation:
        ca = ConditioningAugmentation(text_dim=4, cond_dim=2, noise=noise)
        with torch.no_grad():
            ca.proj.weight.zero_()
            ca.proj.bias.copy_(torch.tensor([1.0, 0.0, 0.0, math.log(4.0)]))  # mu (1, 0), log var (0, log 4)
        return ca

    text, eps = torch.zeros(3, 4), torch.ones(3, 2)
    # per row: 0.5 * [(1 + 1 - 1 - 0) + (0 + 4 - 1 - log 4)]
    kl_expected = 0.5 * (1.0 + 3.0 - math.log(4.0))
    for noise, c_expected in ((0.1, [1.1, 0.2]), (1.0, [2.0, 2.0])):
        c, kl = layer(noise)(text, eps)
        assert torch.allclose(c, torch.tensor([c_expected] * 3)), (noise, c)
        assert kl.item() == pytest.approx(kl_expected, rel=1e-6), noise


def test_group_spread_is_the_standard_deviation_within_each_group():
    regions = torch.zeros(4, 8, 4, 4)  # two groups of two images, 8 channels -> 4 channel groups of 2
    regions[1, :4] = 2.0  # group 0: channels 0-3 differ by 2 between its two images -> std 1
    regions[2:, 6] = 5.0  # group 1: the same value in both images -> std 0
    spread = GroupSpread.spread(regions, 2)
    assert spread.shape == (2, 4 * 16)
    assert torch.allclose(spread[0, :32], torch.ones(32), atol=1e-3)  # channel groups 0 and 1, all 16 regions
    assert spread[0, 32:].abs().max() < 1e-3 and spread[1].abs().max() < 1e-3


def test_group_spread_head_scores_groups_and_reaches_the_trunk():
    torch.manual_seed(0)
    d = Discriminator(dataclasses.replace(TINY, d_group_spread=True))
    images = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    t = condition([2, 2, 5, 5, 3, 3])
    logits = d.spread_logits(d.features(images), t, group=2)
    assert logits.shape == (3,)
    logits.sum().backward()
    assert images.grad.abs().sum() > 0 and d.from_rgb.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="d_group_spread"):
        Discriminator(TINY).spread_logits(d.features(images), t, group=2)
