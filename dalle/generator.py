"""Generator: (z, text embedding) -> mapping -> w -> synthesis -> RGB image in [-1, 1].

Reads top to bottom:
  1. `ConditioningAugmentation`: text embedding -> (mu, sigma) -> c = mu + noise * sigma * eps (StackGAN).
  2. `MappingNetwork`: (z, c) -> w, and truncation toward the prompt's own centre
     w_avg(text) = mean of w over many z for that text (`conditional_center`), applied as
     `w_avg.lerp(w, psi)` (`truncate`).
  3. `SynthesisNetwork`: a learned 4x4 constant, upsampled block by block; every conv is
     modulated by w (StyleGAN2 modulation/demodulation), and RGB is summed over scales (skip).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig


def truncate(w: torch.Tensor, center: torch.Tensor, psi: float) -> torch.Tensor:
    """w' = center + psi * (w - center). psi=1: unchanged, 0: the centre, >1: extrapolate. Shapes [B, w_dim]."""
    return center.lerp(w, psi)


class ConditioningAugmentation(nn.Module):
    """Text embedding -> c = mu + noise * sigma * eps, with a KL term on N(mu, sigma^2) toward N(0, I).

    Sampling c instead of using a fixed code smooths the conditioning manifold, which
    helps with few images per caption (StackGAN, sec. 3.1). At noise 1 the sampled part
    was ~10x the spread of mu between prompts and the generator learned to ignore the text,
    hence the `noise` scale.
    """

    def __init__(self, text_dim: int,  # width of the pooled text embedding
                 cond_dim: int,  # width of the code c
                 noise: float = 1.0):  # scale of sigma * eps; small keeps the text signal above the noise
        super().__init__()
        self.proj = nn.Linear(text_dim, cond_dim * 2)
        self.noise = noise

    def forward(self, text: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """text [B, text_dim] -> (c [B, cond_dim], kl scalar). eps=None samples noise; pass zeros for mu."""
        mu, logvar = self.proj(text).chunk(2, dim=-1)
        logvar = logvar.clamp(-10, 4)
        if eps is None:
            eps = torch.randn_like(mu)
        c = mu + self.noise * torch.exp(0.5 * logvar) * eps
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
        return c, kl


class MappingNetwork(nn.Module):
    """(z, text) -> w, with conditional truncation.

    Args mirror ModelConfig: z_dim, text_dim, cond_dim, w_dim, num_layers.
    """

    def __init__(self, z_dim: int,  # noise width
                 text_dim: int,  # pooled text embedding width
                 cond_dim: int,  # conditioning-augmentation code width
                 w_dim: int,  # output latent width
                 num_layers: int = 4,  # MLP depth
                 cond_noise: float = 1.0):  # conditioning-augmentation noise scale
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.ca = ConditioningAugmentation(text_dim, cond_dim, cond_noise)
        layers: list[nn.Module] = []
        dim = z_dim + cond_dim
        for _ in range(num_layers):
            layers += [nn.Linear(dim, w_dim), nn.LeakyReLU(0.2)]
            dim = w_dim
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, text: torch.Tensor, eps: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, z_dim], text [B, text_dim] -> (w [B, w_dim], kl scalar)."""
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


class ModulatedConv(nn.Module):
    """3x3 (or 1x1) conv whose input channels are scaled per sample by a style from w.

    Demodulation rescales each output channel to unit expected variance, so styles
    cannot blow activations up (StyleGAN2). Implemented as scale -> conv -> rescale,
    which batches as one ordinary conv (fast on CPU).
    """

    def __init__(self, in_ch: int,  # input channels
                 out_ch: int,  # output channels
                 w_dim: int,  # latent width feeding the style affine
                 kernel: int = 3,  # spatial kernel size
                 demodulate: bool = True):  # off for toRGB layers
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel) / math.sqrt(in_ch * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = nn.Linear(w_dim, in_ch)
        nn.init.ones_(self.affine.bias)  # styles start at 1: the conv starts unmodulated
        self.demodulate, self.padding = demodulate, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B, in_ch, H, W], w [B, w_dim] -> [B, out_ch, H, W]."""
        s = self.affine(w)  # [B, in]
        x = F.conv2d(x * s[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:
            wsq = self.weight.pow(2).sum(dim=(2, 3))  # [out, in]
            d = torch.rsqrt(s.pow(2) @ wsq.t() + 1e-8)  # [B, out]
            x = x * d[:, :, None, None]
        return x + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """Upsample x2, then `num_convs` modulated 3x3 convs; emits an RGB residual."""

    def __init__(self, in_ch: int,  # channels coming from the previous resolution
                 out_ch: int,  # channels at this resolution
                 w_dim: int,  # latent width
                 num_convs: int = 1,  # convs at this resolution
                 upsample: bool = True):  # False for the 4x4 block on the constant
        super().__init__()
        self.upsample = upsample
        self.convs = nn.ModuleList(ModulatedConv(in_ch if i == 0 else out_ch, out_ch, w_dim) for i in range(num_convs))
        self.to_rgb = ModulatedConv(out_ch, 3, w_dim, kernel=1, demodulate=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        for conv in self.convs:
            x = F.leaky_relu(conv(x, w), 0.2)
        return x, self.to_rgb(x, w)


class SynthesisNetwork(nn.Module):
    """w -> image [B, 3, R, R] in [-1, 1] (tanh-free; clamp at display)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.resolution = cfg.resolution
        c4 = cfg.channels(4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        blocks = [SynthesisBlock(c4, c4, cfg.w_dim, num_convs=1, upsample=False)]
        res, ch = 8, c4
        while res <= cfg.resolution:
            out = cfg.channels(res)
            # two convs at low resolution where they are cheap, one above 16 px.
            blocks.append(SynthesisBlock(ch, out, cfg.w_dim, num_convs=2 if res <= 16 else 1))
            res, ch = res * 2, out
        self.blocks = nn.ModuleList(blocks)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        x = self.const.unsqueeze(0).expand(w.shape[0], -1, -1, -1)
        rgb = None
        for block in self.blocks:
            x, y = block(x, w)
            rgb = y if rgb is None else F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + y
        return rgb


class Generator(nn.Module):
    """The full conditional generator. Shipped as `generator.safetensors` (EMA weights)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.z_dim, cfg.text_dim, cfg.cond_dim, cfg.w_dim, cfg.mapping_layers,
                                      cfg.cond_noise)
        self.synthesis = SynthesisNetwork(cfg)

    def forward(self, z: torch.Tensor, text: torch.Tensor, psi: float = 1.0,
                center: torch.Tensor | None = None, eps: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, z_dim], text [B, text_dim] -> (image [B, 3, R, R], kl scalar).

        eps [B, cond_dim] is the conditioning-augmentation noise (sampled when None).
        psi < 1 pulls w toward `center` ([B, w_dim], from `mapping.conditional_center`);
        it is computed here when not given.
        """
        w, kl = self.mapping(z, text, eps)
        if psi != 1.0:
            if center is None:
                center = self.mapping.conditional_center(text)
            w = truncate(w, center, psi)
        return self.synthesis(w), kl
