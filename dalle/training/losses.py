"""GAN losses. Each is a small function so the training loop reads as a recipe.

* Realism: non-saturating logistic loss (StyleGAN2's choice): it gives G strong gradients
  early, when D easily rejects its samples. G's side of the joint game uses it too.
* Conditional (projection D with matching-aware negatives, GAN-INT-CLS): the joint logit
  u + m is real for a real image with its own caption, fake for G's image and for a real
  image with another caption. This is where the text meets G's images in D's training.
* Reconstruction: L1 (or L2) from a generated image to the real image of the same caption. It gives
  every pixel a supervised gradient, the cheapest sample efficiency there is on a CPU.
* KL: toward N(0, I), for the conditioning augmentation and the VAE-GAN encoder.
* Diversity (DSGAN, Yang et al., 2019): two noise draws for the same prompt should give
  different images; G is rewarded for the image/noise distance ratio, up to a cap.
* Contrastive match (XMC-GAN, Zhang et al., 2021): among the captions of a batch, an
  image's own caption must score highest (and the other way round). D learns it on real
  images; G is pushed to make images that D ranks first for their own caption. Ranking
  against the whole batch is a stronger signal than one mismatched caption per image.
* R1: a gradient penalty on real images only, which keeps D smooth around the data
  without constraining its capacity (Mescheder et al., 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.generator import gaussian_kl  # noqa: F401  (the VAE encoder's KL is the conditioning augmentation's)


def d_realism_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, weight: torch.Tensor | None = None,
                   ) -> torch.Tensor:
    """Logits [N] of real and of fake items; weight [N] (optional) scales item i's real and fake terms, and the
    mean is still over all N."""
    per_item = F.softplus(-real_logits) + F.softplus(fake_logits)
    return (per_item if weight is None else per_item * weight).mean()


def g_realism_loss(fake_logits: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [N] of G's items; weight [N] (optional) scales each item's term, the mean is still over all N."""
    per_item = F.softplus(-fake_logits)
    return (per_item if weight is None else per_item * weight).mean()


def d_conditional_loss(real_matched: torch.Tensor, fake: torch.Tensor, real_mismatched: torch.Tensor,
                       ) -> torch.Tensor:
    """Joint logits [B] of (real, own caption) -> real; (fake, its caption) and (real, wrong caption) -> fake.
    The two kinds of fake share one weight, as in GAN-INT-CLS."""
    return F.softplus(-real_matched).mean() + (F.softplus(fake).mean() + F.softplus(real_mismatched).mean()) / 2


def d_wrong_image_loss(joint_wrong: torch.Tensor) -> torch.Tensor:
    """Joint logits [B'] of (a wrong render of a caption, that caption) -> fake: an image that almost shows its
    caption (a faint extra blob, a missing object) is as wrong as G's."""
    return F.softplus(joint_wrong).mean()


def reconstruction_loss(images: torch.Tensor, target: torch.Tensor, kind: str = "l1",
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute ("l1") or squared ("l2") pixel error. images, target [B, 3, R, R] in [-1, 1];
    weight [B] (optional) scales each image's error, and the mean is still over all B images.

    L1 pulls each pixel to the median over what the caption allows, L2 to the mean: where a shape
    is there in fewer than half the images, the L1 answer is the white background, so L2 starts
    drawing shapes sooner."""
    diff = images - target
    per_image = (diff.abs() if kind == "l1" else diff.pow(2)).flatten(1).mean(1)  # [B]
    return (per_image if weight is None else per_image * weight).mean()


def contrastive_match_loss(logits: torch.Tensor, same_caption: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch. logits [B, B] (image i, caption j); same_caption [B, B] bool.

    Row i's target is column i; other columns with the same caption are left out of the softmax,
    since they are not negatives.
    """
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    masked = logits.masked_fill(same_caption & ~eye, float("-inf"))
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(masked, target) + F.cross_entropy(masked.T, target)) / 2


def near_miss_ranking_loss(own: torch.Tensor, near: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Logistic ranking of G's images: the match logit with their own caption, own [B], above the one with the
    caption's near miss, near [B] (its colours swapped, its relation flipped...). Averaged over the rows where
    valid [B] bool: a caption without a near miss has nothing to rank. 0 when no row is valid."""
    if not valid.any():
        return own.sum() * 0.0
    return F.softplus(near - own)[valid].mean()


def r1_penalty(real_images: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||d logits / d x||^2. real_images must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def g_diversity_loss(images_a: torch.Tensor, images_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                     cap: float) -> torch.Tensor:
    """-min(|x_a - x_b| / |z_a - z_b|, cap), averaged over pairs that share a prompt. Shapes [P, ...]."""
    ratio = (images_a - images_b).abs().flatten(1).mean(1) / (z_a - z_b).abs().mean(1).clamp(min=1e-5)
    return -ratio.clamp(max=cap).mean()
