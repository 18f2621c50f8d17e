"""Discriminator: a projection discriminator that judges (image, text) jointly.

image -> strided conv trunk down to 4x4 -> flattened feature f (keeps *where*
things are, which captions talk about) ->
  * realism u(f)     = linear(f)                         "is this a real image?"
  * match   m(f, t)  = <proj_img(f), proj_text(t)> + b   "does it show this prompt?"
  * joint   u + m    the conditional logit of the adversarial game (Miyato & Koyama, 2018)

Training (see `dalle/train.py`): the joint logit is real for real images with their own
caption, fake for G's images and for real images with another caption (GAN-INT-CLS), so
the text is judged on fakes too. u alone also learns real vs fake, and m alone ranks an
image's own caption first among the batch's captions on real images. The app shows
sigmoid(u) as "realism" and sigmoid(m) as "text match" (`score`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .text_encoder import TextCondition


class DownBlock(nn.Module):
    """3x3 conv, then a stride-2 3x3 conv; a 1x1 stride-2 residual path keeps gradients clean."""

    def __init__(self, in_ch: int,  # input channels
                 out_ch: int):  # output channels (at half the resolution)
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), 0.2)
        y = F.leaky_relu(self.conv2(y), 0.2)
        return (y + self.skip(x)) / math.sqrt(2)


def down_trunk(cfg: ModelConfig) -> tuple[nn.Conv2d, nn.Sequential, int]:
    """(1x1 from-RGB conv, DownBlocks from the resolution to 4x4, channels at 4x4), widths by the D rule."""
    res = cfg.resolution
    ch = cfg.channels(res, discriminator=True)
    from_rgb = nn.Conv2d(3, ch, 1)
    blocks = []
    while res > 4:
        out = cfg.channels(res // 2, discriminator=True)
        blocks.append(DownBlock(ch, out))
        res, ch = res // 2, out
    return from_rgb, nn.Sequential(*blocks), ch


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.from_rgb, self.blocks, ch = down_trunk(cfg)
        self.feature = nn.Sequential(nn.Flatten(), nn.Linear(ch * 16, cfg.embed_dim), nn.LeakyReLU(0.2))
        self.realism = nn.Linear(cfg.embed_dim, 1)
        self.image_proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, cfg.embed_dim), nn.LeakyReLU(0.2),
                                       nn.Linear(cfg.embed_dim, cfg.embed_dim))
        self.match_bias = nn.Parameter(torch.zeros(1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, R, R] in [-1, 1] -> f [B, embed_dim]."""
        return self.feature(self.blocks(F.leaky_relu(self.from_rgb(images), 0.2)))

    def heads(self, f: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f [B, E], text [B, text_dim] (pooled) -> (realism logits u [B], match logits m [B]); joint = u + m."""
        match = (self.image_proj(f) * self.text_proj(text)).sum(-1) / math.sqrt(f.shape[-1]) + self.match_bias
        return self.realism(f).squeeze(-1), match

    def match_matrix(self, f: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Match logits of every image with every caption: f [B, E], text [B, text_dim] (pooled) -> [B, B]
        (bias left out)."""
        return self.image_proj(f) @ self.text_proj(text).T / math.sqrt(f.shape[-1])

    def forward(self, images: torch.Tensor, text: TextCondition) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, R, R] in [-1, 1], text (B prompts) -> (u [B], m [B])."""
        return self.heads(self.features(images), text.pooled)

    @torch.inference_mode()
    def score(self, images: torch.Tensor, text: TextCondition) -> dict[str, torch.Tensor]:
        """Probabilities in [0, 1]: {"realism": sigmoid(u) [B], "match": sigmoid(m) [B]}. images in [-1, 1]."""
        realism, match = self(images.clamp(-1, 1), text)
        return {"realism": torch.sigmoid(realism), "match": torch.sigmoid(match)}
