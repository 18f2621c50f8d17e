"""The losses on cases with a known answer."""

import math

import pytest
import torch

from dalle.training import losses
from dalle.training.objective import same_caption


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------------- batch-contrastive match
def test_contrastive_loss_known_values():
    b = 4
    none_same = torch.eye(b, dtype=torch.bool)
    # all logits equal: each row is a uniform guess among b captions
    assert math.isclose(losses.contrastive_match_loss(torch.zeros(b, b), none_same).item(), math.log(b), rel_tol=1e-6)
    # the own caption far ahead: nothing to learn
    assert losses.contrastive_match_loss(20 * torch.eye(b), none_same).item() < 1e-7
    # the own caption far behind: large loss
    assert losses.contrastive_match_loss(-20 * torch.eye(b), none_same).item() > 19


def test_repeated_captions_are_not_negatives():
    same = same_caption(torch.tensor([7, 7, 2]))  # caption indices: items 0 and 1 share caption 7
    assert same.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    # images 0 and 1 share a caption: the tie between them must not count against either
    logits = torch.tensor([[5.0, 5.0, -5.0], [5.0, 5.0, -5.0], [-5.0, -5.0, 5.0]])
    masked = losses.contrastive_match_loss(logits, same).item()
    unmasked = losses.contrastive_match_loss(logits, torch.eye(3, dtype=torch.bool)).item()
    assert masked < 1e-3 < math.log(2) * 0.5 < unmasked


def test_gradient_raises_the_own_caption():
    logits = torch.zeros(3, 3, requires_grad=True)
    losses.contrastive_match_loss(logits, torch.eye(3, dtype=torch.bool)).backward()
    assert (logits.grad.diagonal() < 0).all() and (logits.grad[~torch.eye(3, dtype=torch.bool)] > 0).all()


# ---------------------------------------------------------------------- conditional (joint) loss
def test_conditional_loss_known_values():
    zero = torch.zeros(3)
    # every joint logit 0: log 2 for the real pairs, plus the mean of two log 2 for the fakes
    assert losses.d_conditional_loss(zero, zero, zero).item() == pytest.approx(2 * math.log(2), rel=1e-6)
    rm, f, rmis = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0]), torch.tensor([0.5, -3.0])
    expected = ((softplus(-2.0) + softplus(0.0)) / 2
                + ((softplus(-1.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2) / 2)
    assert losses.d_conditional_loss(rm, f, rmis).item() == pytest.approx(expected, rel=1e-6)
    # D that is right about all three kinds of pair has (almost) nothing to learn
    assert losses.d_conditional_loss(torch.full((2,), 30.0), torch.full((2,), -30.0),
                                      torch.full((2,), -30.0)).item() < 1e-10


def test_conditional_loss_roles():
    rm, f, rmis = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0]), torch.tensor([0.5, -3.0])
    base = losses.d_conditional_loss(rm, f, rmis).item()
    # a real pair is not a fake one: swapping the real-matched logits with either kind of fake changes the loss
    assert losses.d_conditional_loss(f, rm, rmis).item() != pytest.approx(base, rel=1e-3)
    assert losses.d_conditional_loss(rmis, f, rm).item() != pytest.approx(base, rel=1e-3)
    # the two kinds of fake share one weight (GAN-INT-CLS): exchanging them changes nothing
    assert losses.d_conditional_loss(rm, rmis, f).item() == pytest.approx(base, rel=1e-6)
    # raising a real pair's logit lowers the loss; raising a fake's logit raises it
    x = [t.clone().requires_grad_(True) for t in (rm, f, rmis)]
    losses.d_conditional_loss(*x).backward()
    assert (x[0].grad < 0).all() and (x[1].grad > 0).all() and (x[2].grad > 0).all()


# ---------------------------------------------------------------------- reconstruction
def test_reconstruction_loss_is_the_mean_absolute_error():
    x = torch.tensor([[1.0, -1.0], [0.5, 0.0]]).view(1, 1, 2, 2).expand(2, 3, 2, 2)
    y = torch.zeros(2, 3, 2, 2)
    assert losses.reconstruction_loss(x, y).item() == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert losses.reconstruction_loss(x, x).item() == 0.0
    # an L1 distance: symmetric in its arguments (unlike the conditional loss and the KL)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 4, 4, generator=g) * 2 - 1, torch.rand(2, 3, 4, 4, generator=g) * 2 - 1
    assert losses.reconstruction_loss(a, b).item() == pytest.approx(losses.reconstruction_loss(b, a).item())
    assert losses.reconstruction_loss(a, b).item() == pytest.approx((a - b).abs().mean().item())
    # every pixel gets a gradient of size 1 / numel toward the target
    p = a.clone().requires_grad_(True)
    losses.reconstruction_loss(p, b).backward()
    assert torch.allclose(p.grad, torch.sign(a - b) / a.numel())


def test_reconstruction_weight_scales_each_image_and_keeps_the_batch_mean():
    x = torch.stack([torch.full((3, 2, 2), 1.0), torch.full((3, 2, 2), 0.5)])  # errors 1 and 0.5 against zeros
    y = torch.zeros(2, 3, 2, 2)
    assert losses.reconstruction_loss(x, y, "l1", torch.tensor([1.0, 1.0])).item() == pytest.approx(0.75)
    assert losses.reconstruction_loss(x, y, "l1", torch.tensor([0.0, 1.0])).item() == pytest.approx(0.25)
    assert losses.reconstruction_loss(x, y, "l2", torch.tensor([1.0, 0.0])).item() == pytest.approx(0.5)
    p = x.clone().requires_grad_(True)
    losses.reconstruction_loss(p, y, "l2", torch.tensor([0.0, 1.0])).backward()
    assert p.grad[0].abs().sum() == 0 and p.grad[1].abs().sum() > 0  # a weight of 0: no pull at all


# ---------------------------------------------------------------------- Gaussian KL
def test_gaussian_kl_known_values():
    # the prior itself: no divergence
    assert losses.gaussian_kl(torch.zeros(4, 8), torch.ones(4, 8)).item() == pytest.approx(0.0, abs=1e-6)
    # by hand: 0.5 * sum(mu^2 + var - 1 - log var) over the last dim, mean over the rest
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    var = torch.tensor([[1.0, math.e], [1.0, 1.0]])
    # row 0: 0.5 * ((1 + 1 - 1 - 0) + (0 + e - 1 - 1)) = 0.5 * (e - 1); row 1: 0
    assert losses.gaussian_kl(mu, var).item() == pytest.approx(0.25 * (math.e - 1), rel=1e-6)
    # one dimension, mu = 2, var = 0.5: 0.5 * (4 + 0.5 - 1 - log 0.5)
    single = losses.gaussian_kl(torch.tensor([2.0]), torch.tensor([0.5])).item()
    assert single == pytest.approx(0.5 * (3.5 + math.log(2)), rel=1e-6)
    # mean and variance are not interchangeable
    flipped = losses.gaussian_kl(torch.tensor([0.5]), torch.tensor([2.0])).item()
    assert flipped == pytest.approx(0.5 * (0.25 + 2 - 1 - math.log(2)), rel=1e-6)
    assert flipped != pytest.approx(single, rel=1e-3)


def test_gaussian_kl_stays_finite_at_zero_variance():
    # the epsilon inside the log: var = 0 gives 0.5 * (0 + 0 - 1 - log 1e-12), not inf or nan
    kl = losses.gaussian_kl(torch.zeros(1, 1), torch.zeros(1, 1)).item()
    assert kl == pytest.approx(0.5 * (-1 + 12 * math.log(10)), rel=1e-4)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, var = torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g) * 3 + 0.05
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, var.sqrt()),
                                            torch.distributions.Normal(0.0, 1.0)).sum(-1).mean()
    assert losses.gaussian_kl(mu, var).item() == pytest.approx(ref.item(), rel=1e-5)
    assert losses.gaussian_kl(mu, var).item() > 0


def test_l2_reconstruction_is_the_mean_squared_error_and_prefers_the_mean():
    x = torch.tensor([[1.0, -1.0], [0.5, 0.0]]).view(1, 1, 2, 2).expand(2, 3, 2, 2)
    y = torch.zeros(2, 3, 2, 2)
    assert losses.reconstruction_loss(x, y, "l2").item() == pytest.approx((1 + 1 + 0.25 + 0) / 4)
    # one pixel whose target is white (+1) in 3 images of 4 and red-ish (-1) in one:
    targets = torch.tensor([1.0, 1.0, 1.0, -1.0]).view(4, 1, 1, 1)
    candidates = torch.linspace(-1, 1, 201)
    best = {kind: candidates[torch.stack([losses.reconstruction_loss(c.expand(4, 1, 1, 1), targets, kind)
                                          for c in candidates]).argmin()].item() for kind in ("l1", "l2")}
    assert best["l1"] == pytest.approx(1.0)  # the median: the shape vanishes
    assert best["l2"] == pytest.approx(0.5)  # the mean: a faint shape, with a gradient to follow


# ---------------------------------------------------------------------- realism (non-saturating logistic)
def test_realism_losses_known_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 3.0])
    assert losses.d_realism_loss(real, fake).item() == pytest.approx(
        (softplus(-2.0) + softplus(0.0)) / 2 + (softplus(-1.0) + softplus(3.0)) / 2, rel=1e-6)
    # G wants D to call its images real: low loss for high fake logits, high for low ones
    assert losses.g_realism_loss(torch.tensor([3.0])).item() == pytest.approx(softplus(-3.0), rel=1e-6)
    assert losses.g_realism_loss(torch.tensor([-3.0])).item() == pytest.approx(softplus(3.0), rel=1e-6)
    assert losses.g_realism_loss(torch.zeros(5)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_realism_losses_scale_each_item_by_its_weight():
    real, fake, weight = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 3.0]), torch.tensor([1.0, 0.0])
    # the second item is weighed out; the mean is still over both items
    assert losses.d_realism_loss(real, fake, weight).item() == pytest.approx((softplus(-2.0) + softplus(-1.0)) / 2, rel=1e-6)
    assert losses.g_realism_loss(fake, weight).item() == pytest.approx(softplus(1.0) / 2, rel=1e-6)
    assert losses.d_realism_loss(real, fake, torch.ones(2)).item() == pytest.approx(losses.d_realism_loss(real, fake).item())
    fake = torch.tensor([-1.0, 3.0], requires_grad=True)
    losses.g_realism_loss(fake, torch.tensor([0.5, 0.0])).backward()
    assert fake.grad[1] == 0 and fake.grad[0] == pytest.approx(-0.5 * torch.sigmoid(torch.tensor(1.0)).item() / 2)


def test_realism_gradients_point_the_right_way():
    fake = torch.tensor([-2.0, 0.0, 2.0], requires_grad=True)
    losses.g_realism_loss(fake).backward()
    # d/dx softplus(-x) / n = -sigmoid(-x) / n: G raises its logits, fastest where D rejects it (non-saturating)
    assert torch.allclose(fake.grad, -torch.sigmoid(-fake.detach()) / 3)
    real, fake = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    losses.d_realism_loss(real, fake).backward()
    assert torch.allclose(real.grad, torch.full((2,), -0.25)) and torch.allclose(fake.grad, torch.full((2,), 0.25))


# ---------------------------------------------------------------------- R1
def test_r1_is_the_squared_gradient_norm_per_image_averaged():
    # linear D: logit_i = <w, x_i>, so the gradient is w for every image and R1 = |w|^2
    w = torch.tensor([1.0, -2.0, 0.5, 0.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2).clone().requires_grad_(True)
    x = torch.randn(5, 3, 2, 2).requires_grad_(True)
    logits = (x * w).flatten(1).sum(1)
    r1 = losses.r1_penalty(x, logits)
    assert r1.item() == pytest.approx(3 * (1 + 4 + 0.25), rel=1e-6)
    # it is differentiable (D's weights are pushed toward a flatter D): d|w|^2/dw = 2w
    r1.backward()
    assert torch.allclose(w.grad, 2 * w.detach())
    # quadratic D: logit_i = sum x_i^2, gradient 2 x_i: R1 = mean_i 4 |x_i|^2
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0]]).view(2, 1, 1, 2).requires_grad_(True)
    assert losses.r1_penalty(x, x.pow(2).flatten(1).sum(1)).item() == pytest.approx((4 * 1 + 4 * 25) / 2, rel=1e-6)


# ---------------------------------------------------------------------- EMA
def test_near_miss_ranking_known_values_and_rows_without_a_near_miss():
    own = torch.tensor([2.0, 0.0, 1.0], requires_grad=True)
    near = torch.tensor([0.0, 5.0, 3.0])
    loss = losses.near_miss_ranking_loss(own, near, torch.tensor([True, False, True]))
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(2.0))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert own.grad[1] == 0 and (own.grad[[0, 2]] < 0).all()  # raising the own logit lowers the loss
    none = losses.near_miss_ranking_loss(own, near, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad


def test_ema_beta_is_a_half_life_in_images():
    from dalle.config import TrainConfig
    from dalle.training.trainer import ema_beta

    cfg = TrainConfig(ema_kimg=10.0, ema_rampup=0.0)
    assert ema_beta(10_000, 0, cfg) == pytest.approx(0.5)  # one batch of a half-life halves the old weights
    assert ema_beta(32, 0, cfg) ** (10_000 / 32) == pytest.approx(0.5)  # so do many small ones
    assert ema_beta(32, 0, cfg) == pytest.approx(0.5 ** (32 / 10_000))
    # the ramp-up: early on the half-life is `ema_rampup` x the images seen so far, never more than ema_kimg
    ramp = TrainConfig(ema_kimg=10.0, ema_rampup=0.05)
    assert ema_beta(32, 1_000, ramp) == pytest.approx(0.5 ** (32 / 50))
    assert ema_beta(32, 10_000_000, ramp) == pytest.approx(0.5 ** (32 / 10_000))


# ---------------------------------------------------------------------- diversity (DSGAN)
def test_diversity_loss_known_values_and_cap():
    a = torch.zeros(2, 3, 4, 4)
    za = torch.tensor([[0.5], [1.0]]).expand(2, 8)
    zb = za + torch.tensor([[1.0], [2.0]])  # noise distances 1 and 2
    b = a + torch.tensor([0.1, 0.4]).view(2, 1, 1, 1)  # image distances 0.1 and 0.4: ratios 0.1 and 0.2
    assert losses.g_diversity_loss(a, b, za, zb, cap=0.3).item() == pytest.approx(-0.15, rel=1e-5)
    assert losses.g_diversity_loss(a, b, za, zb, cap=0.15).item() == pytest.approx(-(0.1 + 0.15) / 2, rel=1e-5)
    # the ratio, not the distance: twice the noise distance halves it
    assert losses.g_diversity_loss(a, b, za, za + 2 * (zb - za), cap=0.3).item() == pytest.approx(-0.075, rel=1e-5)
    # and half of it doubles it: ratios 0.2 and 0.4, the second capped at 0.3
    assert losses.g_diversity_loss(a, b, za, za + (zb - za) / 2, cap=0.3).item() == pytest.approx(-0.25, rel=1e-5)
    # the same noise twice: no division by zero, the ratio is simply at the cap
    assert losses.g_diversity_loss(a, b, za, za, cap=0.3).item() == pytest.approx(-0.3, rel=1e-6)


def test_diversity_loss_pushes_images_apart_until_the_cap():
    a = torch.zeros(2, 1, 2, 2, requires_grad=True)
    b = torch.tensor([0.1, 0.5]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    losses.g_diversity_loss(a, b, torch.zeros(2, 4), torch.ones(2, 4), cap=0.3).backward()
    # pair 0 (ratio 0.1 < cap): descending the loss moves a away from b (b is above a, so a's gradient is
    # positive); pair 1 (0.5 > cap): no gradient, variety beyond the cap buys nothing
    assert (a.grad[0] > 0).all() and (a.grad[1] == 0).all()
