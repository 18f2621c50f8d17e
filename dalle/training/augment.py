"""DiffAugment (Zhao et al., 2020): the same differentiable augmentation on real and fake
images before the discriminator, so D cannot memorise a small dataset and G still gets
gradients through the augmentation.

Only geometry-free-of-meaning policies are offered by default: colour jitter would change
what "a red heart" looks like, and the match head reads colours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _randint(low: int, high: int, b: int, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.randint(low, high, (b, 1, 1), generator=g).to(x.device)


def translation(x: torch.Tensor, g: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side, padding with white (the background, +1)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty, tx = _randint(-sh, sh + 1, b, x, g), _randint(-sw, sw + 1, b, x, g)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy.unsqueeze(0) + ty).clamp(-1, h)  # -1 and h index the padding
    gx = (gx.unsqueeze(0) + tx).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1), value=1.0)
    idx = ((gy + 1) * (w + 2) + (gx + 1)).view(b, 1, -1).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def cutout(x: torch.Tensor, g: torch.Generator | None = None, ratio: float = 0.25) -> torch.Tensor:
    """Blank one random square of side `ratio` per image (to the background colour)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy, cx = _randint(0, h + 1 - ch, b, x, g), _randint(0, w + 1 - cw, b, x, g)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = (gy >= cy) & (gy < cy + ch) & (gx >= cx) & (gx < cx + cw)
    return torch.where(inside.unsqueeze(1), torch.ones_like(x), x)


POLICIES = {"translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {sorted(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the comma-separated policy to x [B, C, H, W]; randomness from `generator` (CPU)."""
    for name in parse_policy(policy):
        x = POLICIES[name](x, generator)
    return x
