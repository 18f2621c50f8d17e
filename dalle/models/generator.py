"""Generator: (z, text) -> mapping -> w -> synthesis (with word attention) -> RGB image in [-1, 1].

Reads top to bottom:
  1. `ConditioningAugmentation`: sentence embedding -> (mu, sigma) -> c = mu + noise * sigma * eps (StackGAN).
  2. `MappingNetwork`: (z, c) -> w, and truncation toward the prompt's own centre
     w_avg(text) = mean of w over many z for that text (`conditional_center`), applied as
     `w_avg.lerp(w, psi)` (`truncate`).
  3. `SynthesisNetwork`: the first 4x4 feature map is a learned projection of w, so the text and z
     lay out the scene from the start. Each block upsamples x2 and runs 3x3 convs whose normalised
     output is scaled and shifted by a per-layer style from w; at low resolution a `WordAttention`
     layer lets every position read the prompt's token states ("top left", "three", "left of"
     are words a pooled sentence vector blurs). With `g_word_positions` each word state also carries a
     learned vector for where it stands, so the attention can tell the first colour word from the second.
     With `word_mixing`, a `WordMixer` layer first lets each word state take in its neighbours, so that
     "red" and "square" in "a red square" become one state.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from ..text_encoder import TextCondition
from .word_order import WordOrder


def truncate(w: torch.Tensor, center: torch.Tensor, psi: float) -> torch.Tensor:
    """w' = center + psi * (w - center). psi=1: unchanged, 0: the centre, >1: extrapolate. Shapes [B, w_dim]."""
    return center.lerp(w, psi)


def gaussian_kl(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, var) || N(0, I)) summed over the last dim, averaged over the rest. mu, var [..., D]."""
    return 0.5 * (mu.pow(2) + var - 1 - torch.log(var + 1e-12)).sum(-1).mean()


class ConditioningAugmentation(nn.Module):
    """Sentence embedding -> c = mu + noise * sigma * eps, with a KL term on the distribution sampled.

    Sampling c instead of using a fixed code smooths the conditioning manifold, which
    helps with few images per caption (StackGAN, sec. 3.1). At noise 1 the sampled part
    was ~10x the spread of mu between prompts and the generator learned to ignore the text,
    hence the `noise` scale.
    """

    def __init__(self, text_dim: int,  # width of the pooled text embedding
                 cond_dim: int,  # width of the code c
                 noise: float = 1.0,  # scale of sigma * eps; small keeps the text signal above the noise
                 normalize: bool = False):  # standardise the embedding first (see below)
        super().__init__()
        self.proj = nn.Linear(text_dim, cond_dim * 2)
        self.noise, self.normalize = noise, normalize

    def forward(self, text: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """text [B, text_dim] -> (c [B, cond_dim], kl scalar). eps=None samples noise; pass zeros for mu."""
        if self.normalize:
            # A unit-length 384-d embedding has components of ~0.05, and captions that differ by one word
            # differ by less; next to z's unit components the text started out as a rounding error.
            text = F.layer_norm(text, text.shape[-1:])
        mu, logvar = self.proj(text).chunk(2, dim=-1)
        logvar = logvar.clamp(-10, 4)
        if eps is None:
            eps = torch.randn_like(mu)
        c = mu + self.noise * torch.exp(0.5 * logvar) * eps
        # The KL regularises the code's distribution N(mu, sigma^2); `noise` is a sampling temperature on
        # top of it (docs/design.md). A KL on the tempered N(mu, (noise * sigma)^2) would push sigma up
        # until the noise drowned the text again.
        return c, gaussian_kl(mu, logvar.exp())


class MappingNetwork(nn.Module):
    """(z, sentence embedding) -> w, with conditional truncation."""

    def __init__(self, z_dim: int,  # noise width
                 text_dim: int,  # pooled text embedding width
                 cond_dim: int,  # conditioning-augmentation code width
                 w_dim: int,  # output latent width
                 num_layers: int = 2,  # MLP depth
                 cond_noise: float = 1.0,  # conditioning-augmentation noise scale
                 normalize_text: bool = False):  # standardise the sentence embedding before the CA layer
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.ca = ConditioningAugmentation(text_dim, cond_dim, cond_noise, normalize_text)
        layers: list[nn.Module] = []
        dim = z_dim + cond_dim
        for _ in range(num_layers):
            layers += [nn.Linear(dim, w_dim), nn.LeakyReLU(0.2)]
            dim = w_dim
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, text: torch.Tensor, eps: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, z_dim], text [B, text_dim] (pooled) -> (w [B, w_dim], kl scalar)."""
        c, kl = self.ca(text, eps)
        return self.map(z, c), kl

    def map(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """z [..., z_dim], c [..., cond_dim] -> w [..., w_dim]."""
        z = z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + 1e-8)  # normalise z's second moment
        return self.net(torch.cat([z, c], dim=-1))

    @torch.no_grad()
    def conditional_center(self, text: torch.Tensor, num_samples: int = 256, seed: int = 0) -> torch.Tensor:
        """w_avg(text): the mean of w over `num_samples` noise draws per prompt. text [P, D] -> [P, w_dim].

        Uses a fixed seed so a prompt's centre is the same on every call. Prompts are done one
        at a time: batch shape changes the float rounding, and a prompt's centre must not depend
        on which prompts it was computed with. The text projection runs once per prompt
        (broadcast over the draws), not once per draw.
        """
        g = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn(1, num_samples, self.z_dim, generator=g).to(text.device)
        eps = torch.randn(1, num_samples, self.ca.proj.out_features // 2, generator=g).to(text.device)
        centers = []
        for t in text.split(1):  # t [1, D]
            c, _ = self.ca(t[:, None], eps)  # [1, N, cond_dim]
            centers.append(self.map(z, c).mean(1))
        return torch.cat(centers)


class StyledConv(nn.Module):
    """3x3 conv -> GroupNorm -> per-sample scale and shift from a style of w -> LeakyReLU.

    The normalisation removes the feature statistics and the style puts new ones in
    (AdaIN / FiLM, as in StyleGAN1 and DF-GAN): cheap on a CPU, and each layer has its own style.
    """

    def __init__(self, in_ch: int,  # input channels
                 out_ch: int,  # output channels
                 w_dim: int):  # latent width feeding the style affine
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, out_ch), out_ch, affine=False)
        self.style = nn.Linear(w_dim, 2 * out_ch)
        nn.init.zeros_(self.style.weight)
        nn.init.zeros_(self.style.bias)  # starts as plain normalised convs: scale 1, shift 0

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B, in_ch, H, W], w [B, w_dim] -> [B, out_ch, H, W]."""
        scale, shift = self.style(w)[:, :, None, None].chunk(2, dim=1)
        return F.leaky_relu(self.norm(self.conv(x)) * (1 + scale) + shift, 0.2)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, heads: int,
                     ) -> torch.Tensor:
    """Multi-head attention of q [B, N, dim] over k, v [B, L, dim], skipping keys where mask [B, L] is False.
    Returns [B, N, dim]."""
    split = lambda t: t.unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731  [B, heads, N, dim/heads]
    q, k, v = split(q), split(k), split(v)
    # Written out rather than F.scaled_dot_product_attention: with ~20 keys, the fused CPU kernel's
    # backward was 6x slower than these two small matmuls.
    logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # [B, heads, N, L]
    weights = logits.float().masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1).to(v.dtype)
    return (weights @ v).transpose(1, 2).flatten(2)


class WordAttention(nn.Module):
    """Every spatial position attends over the prompt's words; the result is added to the features.

    Queries come from the normalised feature map, keys and values from the (already projected)
    token states; padded tokens are masked out. The output projection starts at zero, so the
    layer begins as the identity.
    """

    def __init__(self, channels: int,  # feature channels at this resolution
                 dim: int,  # width of the word states and of the attention
                 heads: int = 4):  # attention heads
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.q = nn.Linear(channels, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W], words [B, L, dim], mask [B, L] bool -> [B, C, H, W]."""
        b, c, h, w = x.shape
        q = self.q(self.norm(x).flatten(2).transpose(1, 2))  # [B, HW, dim]
        k, v = self.kv(words).chunk(2, dim=-1)  # [B, L, dim] each
        out = self.out(masked_attention(q, k, v, mask, self.heads))  # [B, HW, C]
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class WordMixer(nn.Module):
    """One pre-norm transformer layer over the word states (self-attention, then an MLP), each with a residual.

    The frozen encoder's state of a noun barely depends on its adjective: "square" in "a red square above a
    blue triangle" and in "a blue square above a red triangle" has cosine 0.995, and the pooled sentences
    0.988. Mixing lets each word take in its neighbours, so G's attention can find "red square" as one state
    instead of having to pair colours with shapes by position itself.
    """

    def __init__(self, dim: int,  # width of the word states
                 max_tokens: int,  # longest prompt in tokens (one learned position vector each)
                 heads: int = 4):  # attention heads
        super().__init__()
        self.heads = heads
        self.position = nn.Parameter(torch.zeros(max_tokens, dim))  # word order, which the mixing must see
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """words [B, L, dim], mask [B, L] bool -> [B, L, dim]."""
        words = words + self.position[:words.shape[1]]
        q, k, v = self.qkv(self.norm1(words)).chunk(3, dim=-1)
        words = words + self.out(masked_attention(q, k, v, mask, self.heads))
        return words + self.mlp(self.norm2(words))


class SynthesisBlock(nn.Module):
    """Upsample x2 (nearest), `num_convs` styled convs, then word attention if this resolution has it."""

    def __init__(self, in_ch: int,  # channels coming from the previous resolution
                 out_ch: int,  # channels at this resolution
                 w_dim: int,  # latent width
                 num_convs: int,  # styled convs at this resolution
                 attn_dim: int,  # width of the word states; 0 = no word attention here
                 upsample: bool = True):  # False for the 4x4 block
        super().__init__()
        self.upsample = upsample
        self.convs = nn.ModuleList(StyledConv(in_ch if i == 0 else out_ch, out_ch, w_dim) for i in range(num_convs))
        self.attn = WordAttention(out_ch, attn_dim) if attn_dim else None

    def forward(self, x: torch.Tensor, ws: list[torch.Tensor], words: torch.Tensor, mask: torch.Tensor,
                ) -> torch.Tensor:
        """x [B, in_ch, H, W], ws: one [B, w_dim] per conv -> [B, out_ch, 2H, 2W] (or H, W without upsampling)."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        for conv, w in zip(self.convs, ws):
            x = conv(x, w)
        return self.attn(x, words, mask) if self.attn is not None else x


class SynthesisNetwork(nn.Module):
    """(w, words) -> image [B, 3, R, R] in [-1, 1] (tanh-free; clamp at display).

    w may be [B, w_dim] (one style for every layer) or [B, num_ws, w_dim] (a style per layer,
    as style mixing uses).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.resolution = cfg.resolution
        c4 = cfg.channels(4)
        self.input = nn.Linear(cfg.w_dim, c4 * 16)  # the first 4x4 map is a projection of w (text and z)
        self.text = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, cfg.attn_dim))  # word states
        # where each word stands, for the attention keys: the token states are mostly the word itself
        self.position = nn.Parameter(torch.zeros(cfg.max_tokens, cfg.attn_dim)) if cfg.g_word_positions else None
        self.mixer = WordMixer(cfg.attn_dim, cfg.max_tokens) if cfg.word_mixing else None
        blocks, res, ch = [], 4, c4
        while res <= cfg.resolution:
            out = cfg.channels(res)
            attn = cfg.attn_dim if res <= cfg.attn_max_res else 0
            # two convs at low resolution where they are cheap, one above 16 px
            blocks.append(SynthesisBlock(ch, out, cfg.w_dim, 2 if res <= 16 else 1, attn, upsample=res > 4))
            res, ch = res * 2, out
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(ch, 3, 1)
        self.num_ws = 1 + sum(len(b.convs) for b in self.blocks)  # the input projection, then each conv

    def forward(self, w: torch.Tensor, text: TextCondition) -> torch.Tensor:
        """w [B, w_dim] or [B, num_ws, w_dim], text with tokens [B, L, text_dim] -> image [B, 3, R, R]."""
        ws = list((w if w.dim() == 3 else w[:, None].expand(-1, self.num_ws, -1)).unbind(1))
        words = self.text(text.tokens.to(w.dtype))
        if self.position is not None:
            words = words + self.position[:words.shape[1]].to(words.dtype)
        if self.mixer is not None:
            words = self.mixer(words, text.mask)
        x = self.input(ws[0]).view(w.shape[0], -1, 4, 4)
        i = 1
        for block in self.blocks:
            n = len(block.convs)
            x = block(x, ws[i:i + n], words, text.mask)
            i += n
        return self.to_rgb(x)


class Generator(nn.Module):
    """The full conditional generator. Shipped as `generator.safetensors` (EMA weights)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.word_order = WordOrder(cfg.text_dim, cfg.word_order_tokens, cfg.word_order_dim) if cfg.g_word_order else None
        sentence_dim = self.word_order.out_dim if self.word_order is not None else cfg.text_dim
        self.mapping = MappingNetwork(cfg.z_dim, sentence_dim, cfg.cond_dim, cfg.w_dim, cfg.mapping_layers,
                                      cfg.cond_noise, cfg.normalize_text)
        self.synthesis = SynthesisNetwork(cfg)

    def sentence(self, text: TextCondition) -> torch.Tensor:
        """What the mapping reads of each prompt: the pooled embedding [B, text_dim], or with `g_word_order`
        the word-order code [B, word_order_tokens * word_order_dim]."""
        return self.word_order(text) if self.word_order is not None else text.pooled

    def forward(self, z: torch.Tensor, text: TextCondition, psi: float = 1.0,
                center: torch.Tensor | None = None, eps: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, z_dim], text (B prompts) -> (image [B, 3, R, R], kl scalar).

        eps [B, cond_dim] is the conditioning-augmentation noise (sampled when None).
        psi < 1 pulls w toward `center` ([B, w_dim], from `mapping.conditional_center`);
        it is computed here when not given.
        """
        sentence = self.sentence(text)
        w, kl = self.mapping(z, sentence, eps)
        if psi != 1.0:
            if center is None:
                center = self.mapping.conditional_center(sentence)
            w = truncate(w, center, psi)
        return self.synthesis(w, text), kl
