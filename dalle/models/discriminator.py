"""Discriminator: a projection discriminator that judges (image, text) jointly.

image -> strided conv trunk down to a 4x4 map r of 16 regions -> flattened feature f (keeps
*where* things are, which captions talk about) ->
  * realism u(f)     = linear(f)                         "is this a real image?"
  * match   m(r, t)  = <proj_img(f), proj_text(t)> + b   "does it show this prompt?"
                       (+ word-region term, optional)    "...with each word in the right place?"
  * joint   u + m    the conditional logit of the adversarial game (Miyato & Koyama, 2018)

The optional group-spread head (`d_group_spread`) judges groups of images of one prompt: how much
each region of the 4x4 map varies across the group, read with the prompt. A real group of "two red
triangles" varies (the triangles move), a group of G's images that ignores z does not; one image
alone cannot show that. It is used in training only (a conditional minibatch standard deviation, as
StyleGAN's, over groups that share a caption, as PacGAN packs samples).

The optional word-region term (`d_word_attention`) lets every region attend over the prompt's
words and scores what it found *by where the region is*: a pooled sentence vector barely
changes between "a red circle left of a blue square" and "... right of ...", but which region
holds the words of the subject does.

Training (see `dalle/training/trainer.py`): the joint logit is real for real images with their own
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

from ..config import ModelConfig
from ..text_encoder import TextCondition
from .word_order import WordOrder


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


class WordRegionMatch(nn.Module):
    """A match term from word-region attention: each of the 16 regions of the 4x4 map attends over
    the prompt's (contextual) token states, and a position-specific linear read-out scores the
    attended words against the region. The read-out starts at zero, so the term starts at 0."""

    def __init__(self, channels: int,  # channels of the 4x4 region map
                 text_dim: int,  # width of the text encoder's token states
                 dim: int):  # width of the region queries and word keys/values
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.q = nn.Linear(channels, dim)
        self.text = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, 2 * dim))  # word keys, values
        self.score = nn.Linear(16 * 2 * dim, 1)  # per region: the attended words, and their product with the region
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, regions: torch.Tensor, text: TextCondition, pairwise: bool = False) -> torch.Tensor:
        """regions [Bi, C, 4, 4], text with tokens [Bt, L, text_dim] and mask [Bt, L] -> [Bi] scores
        (Bi == Bt, image i with caption i) or, with pairwise=True, [Bi, Bt] (every image with every caption)."""
        q = self.q(self.norm(regions).flatten(2).transpose(1, 2))  # [Bi, 16, dim]
        k, v = self.text(text.tokens.to(q.dtype)).chunk(2, dim=-1)  # [Bt, L, dim] each
        if not pairwise:
            q = q[:, None]  # [B, 1, 16, dim] against its own caption
            k, v, mask = k[:, None], v[:, None], text.mask[:, None]  # [B, 1, L, ...]
        else:
            q = q[:, None]  # [Bi, 1, 16, dim] against every caption [1, Bt, L, dim]
            k, v, mask = k[None], v[None], text.mask[None]
        logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # [Bi, Bt or 1, 16, L]
        weights = logits.float().masked_fill(~mask[..., None, :], float("-inf")).softmax(-1).to(v.dtype)
        words = weights @ v  # [Bi, Bt or 1, 16, dim]: the words each region found
        q = q.expand_as(words)
        out = self.score(torch.cat([words, q * words], -1).flatten(-2)).squeeze(-1)  # [Bi, Bt or 1]
        return out if pairwise else out.squeeze(-1)


class GroupSpread(nn.Module):
    """A logit per group of images that share a prompt: "does this group vary as real images of the prompt do?"

    The spread of a group is the standard deviation across its images of each channel at each of the 16
    regions, averaged within `SPREAD_CHANNEL_GROUPS` channel groups; an MLP reads it with the prompt."""

    SPREAD_CHANNEL_GROUPS = 4

    def __init__(self, channels: int,  # channels of the 4x4 region map
                 sentence_dim: int,  # width of what D reads of each prompt (`Discriminator.sentence`)
                 dim: int):  # hidden width
        super().__init__()
        if channels % self.SPREAD_CHANNEL_GROUPS:
            raise ValueError(f"the 4x4 map's {channels} channels do not split into {self.SPREAD_CHANNEL_GROUPS} groups")
        self.text = nn.Linear(sentence_dim, dim)
        self.mlp = nn.Sequential(nn.Linear(self.SPREAD_CHANNEL_GROUPS * 16 + dim, dim), nn.LeakyReLU(0.2),
                                 nn.Linear(dim, 1))

    @classmethod
    def spread(cls, regions: torch.Tensor, group: int) -> torch.Tensor:
        """regions [n * group, C, 4, 4], each group's images consecutive -> spread [n, SPREAD_CHANNEL_GROUPS * 16]."""
        b, c = regions.shape[:2]
        x = regions.float().view(b // group, group, c, 16)
        std = (x.var(1, unbiased=False) + 1e-8).sqrt()  # [n, C, 16]
        return std.view(b // group, cls.SPREAD_CHANNEL_GROUPS, -1, 16).mean(2).flatten(1)

    def forward(self, regions: torch.Tensor, sentence: torch.Tensor, group: int) -> torch.Tensor:
        """regions [n * group, C, 4, 4], sentence [n, sentence_dim] (one per group) -> logits [n]."""
        s = self.spread(regions, group)
        return self.mlp(torch.cat([s, F.leaky_relu(self.text(sentence.float()), 0.2)], 1)).squeeze(-1)


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.from_rgb, self.blocks, ch = down_trunk(cfg)
        self.feature = nn.Sequential(nn.Flatten(), nn.Linear(ch * 16, cfg.embed_dim), nn.LeakyReLU(0.2))
        self.realism = nn.Linear(cfg.embed_dim, 1)
        self.image_proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.word_order = WordOrder(cfg.text_dim, cfg.word_order_tokens, cfg.word_order_dim) if cfg.d_word_order else None
        sentence_dim = self.word_order.out_dim if self.word_order is not None else cfg.text_dim
        self.text_proj = nn.Sequential(nn.Linear(sentence_dim, cfg.embed_dim), nn.LeakyReLU(0.2),
                                       nn.Linear(cfg.embed_dim, cfg.embed_dim))
        self.match_bias = nn.Parameter(torch.zeros(1))
        self.word_match = WordRegionMatch(ch, cfg.text_dim, cfg.attn_dim) if cfg.d_word_attention else None
        self.group_spread = GroupSpread(ch, sentence_dim, cfg.attn_dim) if cfg.d_group_spread else None

    def sentence(self, text: TextCondition) -> torch.Tensor:
        """What the match head reads of each prompt: the pooled embedding [B, text_dim], or with
        `d_word_order` the word-order code [B, word_order_tokens * word_order_dim]."""
        return self.word_order(text) if self.word_order is not None else text.pooled

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, R, R] in [-1, 1] -> the 4x4 region map r [B, C, 4, 4]."""
        return self.blocks(F.leaky_relu(self.from_rgb(images), 0.2))

    def heads(self, r: torch.Tensor, text: TextCondition) -> tuple[torch.Tensor, torch.Tensor]:
        """r [B, C, 4, 4], text (B prompts) -> (realism logits u [B], match logits m [B]); joint = u + m."""
        f = self.feature(r)
        match = (self.image_proj(f) * self.text_proj(self.sentence(text))).sum(-1) / math.sqrt(f.shape[-1]) + self.match_bias
        if self.word_match is not None:
            match = match + self.word_match(r, text)
        return self.realism(f).squeeze(-1), match

    def match_matrix(self, r: torch.Tensor, text: TextCondition) -> torch.Tensor:
        """Match logits of every image with every caption: r [Bi, C, 4, 4], text (Bt prompts) -> [Bi, Bt]
        (bias left out)."""
        f = self.feature(r)
        logits = self.image_proj(f) @ self.text_proj(self.sentence(text)).T / math.sqrt(f.shape[-1])
        if self.word_match is not None:
            logits = logits + self.word_match(r, text, pairwise=True)
        return logits

    def spread_logits(self, r: torch.Tensor, text: TextCondition, group: int) -> torch.Tensor:
        """r [n * group, C, 4, 4] of groups of consecutive images that share a prompt, text (one prompt per image)
        -> group-spread logits [n] (`GroupSpread`; needs `d_group_spread`)."""
        if self.group_spread is None:
            raise ValueError("this discriminator has no group-spread head (model config d_group_spread)")
        return self.group_spread(r, self.sentence(text[::group]), group)

    def forward(self, images: torch.Tensor, text: TextCondition) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, R, R] in [-1, 1], text (B prompts) -> (u [B], m [B])."""
        return self.heads(self.features(images), text)

    @torch.inference_mode()
    def score(self, images: torch.Tensor, text: TextCondition) -> dict[str, torch.Tensor]:
        """Probabilities in [0, 1]: {"realism": sigmoid(u) [B], "match": sigmoid(m) [B]}. images in [-1, 1]."""
        realism, match = self(images.clamp(-1, 1), text)
        return {"realism": torch.sigmoid(realism), "match": torch.sigmoid(match)}
