"""The batch-contrastive match loss on cases with a known answer."""

import math

import torch

from dalle import losses
from dalle.train import same_caption


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
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    same = same_caption(text)
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
