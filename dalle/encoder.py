"""The VAE-GAN image encoder: (image, caption) -> q(z | x, t) = N(mu, sigma^2). Used in training only.

A real image's posterior z carries what its caption leaves open (where an unplaced shape sits,
which emoji style it is), so G can be asked to reconstruct that exact image from (z, caption)
(Larsen et al., 2016). The KL term keeps q near the prior N(0, I), which is what the
playground samples from.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
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
