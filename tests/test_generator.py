import torch

from dalle.config import ModelConfig
from dalle.discriminator import Discriminator
from dalle.generator import Generator, truncate

TINY = ModelConfig(resolution=32, channel_base=128, d_channel_base=128, z_dim=8, cond_dim=8, w_dim=32,
                   mapping_layers=2, embed_dim=32, text_dim=16)


def tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(TINY).eval()


def test_shapes_of_generator_and_discriminator():
    g, d = tiny_generator(), Discriminator(TINY)
    z, t = torch.randn(3, 8), torch.randn(3, 16)
    img, kl = g(z, t)
    assert img.shape == (3, 3, 32, 32) and kl.ndim == 0
    realism, match = d(img, t)
    assert realism.shape == (3,) and match.shape == (3,)
    s = d.score(img, t)
    assert ((s["realism"] >= 0) & (s["realism"] <= 1)).all() and ((s["match"] >= 0) & (s["match"] <= 1)).all()


def test_truncate_formula():
    w, c = torch.randn(4, 32), torch.randn(4, 32)
    assert torch.equal(truncate(w, c, 1.0), w)
    assert torch.equal(truncate(w, c, 0.0), c)
    assert torch.allclose(truncate(w, c, 1.5), c + 1.5 * (w - c))


def test_psi_zero_gives_the_conditional_centre_image():
    g = tiny_generator()
    text = torch.randn(2, 16)
    center = g.mapping.conditional_center(text, num_samples=64)
    # psi = 0: every noise draw collapses onto the prompt's own centre
    t = text.repeat_interleave(3, 0)
    c = center.repeat_interleave(3, 0)
    with torch.no_grad():
        imgs, _ = g(torch.randn(6, 8), t, psi=0.0, center=c)
        ref = g.synthesis(c)
    assert torch.allclose(imgs, ref, atol=1e-6)
    assert torch.allclose(imgs[0], imgs[1], atol=1e-6) and not torch.allclose(imgs[0], imgs[3], atol=1e-3)


def test_conditional_centre_is_the_mean_w_of_that_prompt():
    g = tiny_generator()
    text = torch.randn(1, 16)
    center = g.mapping.conditional_center(text, num_samples=4096, seed=3)
    with torch.no_grad():
        w, _ = g.mapping(torch.randn(4096, 8), text.expand(4096, -1))
    # two independent 4096-draw means differ by ~std * sqrt(2 / 4096) per dimension; allow 6 of those
    bound = 6 * w.std(0) * (2 / 4096) ** 0.5 + 1e-5
    assert ((center[0] - w.mean(0)).abs() <= bound).all()
    other = g.mapping.conditional_center(torch.randn(1, 16), num_samples=256)
    assert not torch.allclose(center, other, atol=1e-3)  # conditional: depends on the text


def test_same_seed_same_pixels():
    g = tiny_generator()
    text = torch.randn(1, 16)

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        z, eps = torch.randn(1, 8, generator=gen), torch.randn(1, 8, generator=gen)
        with torch.no_grad():
            return g(z, text, psi=0.7, eps=eps)[0]

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))
