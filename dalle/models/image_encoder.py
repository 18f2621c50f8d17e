"""The VAE-GAN encoders: (image, caption) -> q(z | x, t) = N(mu, sigma^2). Used in training only.
`ImageEncoder` sees the whole image (`recon="posterior"`), `LayoutEncoder` only where it has ink (`recon="layout"`).

A real image's posterior z carries what its caption leaves open (where an unplaced shape sits,
which emoji style it is), so G can be asked to reconstruct that exact image from (z, caption)
(Larsen et al., 2016). The KL term keeps q near the prior N(0, I), which is what the
playground samples from.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from .discriminator import down_trunk


class ImageEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.from_rgb, self.blocks, ch = down_trunk(cfg)  # the discriminator's trunk design, its own weights
        self.head = nn.Linear(ch * 16 + cfg.text_dim, 2 * cfg.z_dim)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, R, R] in [-1, 1], text [B, text_dim] (pooled) -> (mu [B, z_dim], var [B, z_dim])."""
        f = self.blocks(F.leaky_relu(self.from_rgb(images), 0.2)).flatten(1)
        mu, logvar = self.head(torch.cat([f, text.to(f.dtype)], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 4).exp()


def ink(images: torch.Tensor) -> torch.Tensor:
    """images [B, 3, R, R] in [-1, 1] on white -> [B, 1, R, R] in [0, 1]: how far the channel farthest from
    white is from it. Every colour of the shapes world has a channel near 0, so a shape reads as ~1 whatever
    its colour, and the background as 0."""
    return ((1 - images) / 2).amax(1, keepdim=True).clamp(0, 1)


class LayoutEncoder(nn.Module):
    """(image, caption) -> q(z | layout, t) = N(mu, sigma^2), from where the image has ink alone.

    It sees the ink map (`ink`) averaged down to a coarse grid, so z can say where things are but not which
    colour each one has, nor (at this grain) its exact outline. What the caption says, G must then take from
    the caption: reconstructing "a red circle left of a blue square" from a z that only knows "two blobs,
    here and there" teaches G to paint the left one red, which an image encoder that sees colour never does
    (its z would carry the colours, and a prior z at inference would paint at random).
    """

    def __init__(self, cfg: ModelConfig,
                 grid: int = 8,  # side of the ink grid: coarse enough to hide outlines, fine enough for 3x3 cells
                 hidden: int = 256):  # width of the MLP
        super().__init__()
        self.grid = grid
        self.net = nn.Sequential(nn.Linear(grid * grid + cfg.text_dim, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * cfg.z_dim))
        # Start nearly deterministic (sigma ~0.14) with mu spread ~0.4 across images. With the default init,
        # mu varies by ~0.08 against a sigma of 1: z is noise, G learns to ignore it, and then E gets no
        # gradient and stays unused (posterior collapse: a KL of 0.02-1.4 nats over the first 80k images of a run).
        out = self.net[-1]
        with torch.no_grad():
            out.weight[:cfg.z_dim] *= 5
            out.weight[cfg.z_dim:].zero_()
            out.bias[cfg.z_dim:].fill_(-4.0)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, R, R] in [-1, 1], text [B, text_dim] (pooled) -> (mu [B, z_dim], var [B, z_dim])."""
        layout = F.adaptive_avg_pool2d(ink(images.float()), self.grid).flatten(1)  # [B, grid * grid]
        text = F.layer_norm(text.float(), text.shape[-1:])  # unit-length embeddings have components of ~0.05
        mu, logvar = self.net(torch.cat([layout, text], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 4).exp()
