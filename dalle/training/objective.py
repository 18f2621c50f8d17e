"""The GAN objective: D's and G's losses for one batch, each returned as (loss, stats).

  D: real images with their own captions (real), G's images (fake) and real images with
     other captions (mismatched) -> unconditional realism loss on u, joint projection loss
     on u + m, batch-contrastive match loss on real pairs (+ lazy R1 every k steps)
  G: fresh images -> fool u and u + m, rank their own caption first, and reconstruct a
     target image of the same caption in pixels: every image from a prior z ("prior",
     pix2pix-style), or half the batch from the VAE-GAN encoder's posterior z of its real
     image ("posterior"; the other half from the prior, adversarial only) (+ the KL terms)

The dataset chooses the reconstruction targets and supplies near misses and group weights
through its hooks (`dalle/data/base.py`). The trainer runs the phases and steps the optimisers;
nothing here calls backward or step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig, TrainConfig
from ..data.base import TrainingData
from ..models.discriminator import Discriminator
from ..models.generator import Generator
from ..text_encoder import TextCondition
from . import losses
from .augment import diff_augment

# Every statistic the objective reports, in log.csv's column order
STAT_NAMES = ("loss_d", "loss_g", "loss_joint_d", "loss_joint_g", "r1", "kl", "diversity", "d_real_acc", "match_acc",
              "contrastive_d", "contrastive_g", "recon", "vae_kl", "near_miss_d", "near_miss_g", "spread_d",
              "spread_g", "wrong_d")


@dataclass
class Batch:
    """One training batch of B real images and what the losses need to know about their captions."""

    real: torch.Tensor  # [B, 3, R, R] real images in [-1, 1]
    text: TextCondition  # their own captions
    text_wrong: TextCondition  # other captions of the batch (or near misses, with hard negatives)
    idx: torch.Tensor  # [B] int64 caption indices (CPU)
    near: tuple[TextCondition, torch.Tensor] | None = None  # each caption's near miss and [B] bool: it has one
    group_weights: torch.Tensor | None = None  # [B / group_size] weight of each group in the spread game (None: 1)
    wrong: torch.Tensor | None = None  # [B // 2, 3, R, R] a wrong render of each of the first B // 2 captions

    @property
    def same(self) -> torch.Tensor:
        """[B, B] bool: items i and j have the same caption."""
        return same_caption(self.idx).to(self.real.device)


def same_caption(indices: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: items i and j of the batch have the same caption index."""
    return indices[:, None] == indices[None, :]


def mismatched(indices: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """For each caption index, another caption index from the batch that differs from it."""
    b = indices.shape[0]
    perm = (torch.arange(b) + torch.randint(1, max(b, 2), (1,), generator=rng)) % b
    out = indices[perm]
    same = out == indices
    if same.any():  # duplicate captions in the batch: shift once more, then give up gracefully
        out[same] = indices[(perm[same] + 1) % b]
    return out


def mix_styles(w: torch.Tensor, w_other: torch.Tensor, num_ws: int, prob: float, rng: torch.Generator,
               ) -> torch.Tensor:
    """Per-layer styles [B, num_ws, w_dim]: for a share `prob` of the batch, the layers from a random
    crossover on take `w_other` instead of w (style mixing, StyleGAN). w, w_other [B, w_dim]."""
    b = w.shape[0]
    cut = torch.randint(1, num_ws, (b, 1), generator=rng)
    cut = torch.where(torch.rand(b, 1, generator=rng) < prob, cut, torch.full_like(cut, num_ws)).to(w.device)
    later = torch.arange(num_ws, device=w.device)[None, :] >= cut  # [B, num_ws]
    return torch.where(later[..., None], w_other[:, None], w[:, None])


class GANObjective:
    def __init__(self,
                 G: Generator,  # the generator being trained
                 D: Discriminator,  # the discriminator being trained
                 E: torch.nn.Module | None,  # the VAE-GAN image encoder (recon "posterior" or "layout"), or None
                 cfg: TrainConfig,  # loss weights and switches
                 model_cfg: ModelConfig,  # z and c widths
                 data: TrainingData,  # chooses reconstruction targets; knows which captions pin their image
                 rng: torch.Generator,  # the run's own generator for noise and augmentation (not the global RNG)
                 autocast: bool,  # run the networks under bf16 autocast
                 ):
        self.G, self.D, self.E, self.cfg, self.model_cfg, self.data = G, D, E, cfg, model_cfg, data
        self.rng, self.autocast = rng, autocast
        self.device = next(G.parameters()).device

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def noise(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z [b, z_dim], eps [b, cond_dim]) from the run's own generator."""
        z = torch.randn(b, self.model_cfg.z_dim, generator=self.rng)
        eps = torch.randn(b, self.model_cfg.cond_dim, generator=self.rng)
        return z.to(self.device), eps.to(self.device)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.augment, self.rng)

    # ------------------------------------------------------------------ D
    def d_loss(self, batch: Batch, r1: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """D learns u (real vs G's images), u + m (own caption vs G's images and other captions) and m's ranking;
        with near misses (and d_near_miss_weight) m alone also ranks each real image's own caption above its
        near miss; with wrong images (d_wrong_images) u + m also calls a wrong render of a caption fake.
        r1: add the lazy R1 penalty this step."""
        cfg, b, real, text = self.cfg, batch.real.shape[0], batch.real, batch.text
        stats: dict[str, float] = {}
        z, eps = self.noise(b)
        with torch.no_grad(), self._autocast():
            fake, _ = self.G(z, text, eps=eps)
        real_in = real.detach().requires_grad_(r1)  # R1 is taken before augmentation
        self.D.requires_grad_(True)
        near = batch.near if cfg.d_near_miss_weight > 0 else None
        with self._autocast():
            feats = self.D.features(torch.cat([self._augment(real_in), self._augment(fake.float())]))
            f_real, f_fake = feats[:b], feats[b:]
            u_real, m_real = self.D.heads(f_real, text)
            _, m_wrong = self.D.heads(f_real, batch.text_wrong)
            u_fake, m_fake = self.D.heads(f_fake, text)
            logits = self.D.match_matrix(f_real, text) if cfg.contrastive_weight > 0 else None
            m_near = self.D.heads(f_real, near[0])[1].float() if near is not None else None
        u_real, m_real, m_wrong, u_fake, m_fake = (t.float() for t in (u_real, m_real, m_wrong, u_fake, m_fake))
        loss_real = losses.d_realism_loss(u_real, u_fake)
        loss_joint = losses.d_conditional_loss(u_real + m_real, u_fake + m_fake, u_real + m_wrong)
        loss_d = loss_real + cfg.joint_weight * loss_joint
        if logits is not None:
            loss_con = losses.contrastive_match_loss(logits.float(), batch.same)
            loss_d = loss_d + cfg.contrastive_weight * loss_con
            stats["contrastive_d"] = loss_con.item()
        if m_near is not None:
            loss_near = losses.near_miss_ranking_loss(m_real, m_near, near[1])
            loss_d = loss_d + cfg.d_near_miss_weight * loss_near
            stats["near_miss_d"] = loss_near.item()
        if batch.wrong is not None and cfg.d_wrong_images > 0:  # almost right is wrong: (wrong image, caption) -> fake
            with self._autocast():
                u_w, m_w = self.D.heads(self.D.features(self._augment(batch.wrong)), text[:batch.wrong.shape[0]])
            loss_wrong = losses.d_wrong_image_loss(u_w.float() + m_w.float())
            loss_d = loss_d + cfg.d_wrong_images * loss_wrong
            stats["wrong_d"] = loss_wrong.item()
        if cfg.spread_weight > 0:  # groups of one caption: real draws vary as the caption allows, G's must too
            with self._autocast():
                s_real = self.D.spread_logits(f_real, text, cfg.group_size)
                s_fake = self.D.spread_logits(f_fake, text, cfg.group_size)
            loss_spread = losses.d_realism_loss(s_real.float(), s_fake.float(), batch.group_weights)
            loss_d = loss_d + cfg.spread_weight * loss_spread
            stats["spread_d"] = loss_spread.item()
        if r1:  # on both adversarial logits of real images: u and u + m
            penalty = losses.r1_penalty(real_in, 2 * u_real + m_real)
            loss_d = loss_d + (cfg.r1_gamma / 2) * cfg.r1_every * penalty
            stats["r1"] = penalty.item()
        stats.update(loss_d=loss_real.item(), loss_joint_d=loss_joint.item(),
                     d_real_acc=((u_real > 0).float().mean().item() + (u_fake < 0).float().mean().item()) / 2,
                     match_acc=(m_real > m_wrong).float().mean().item())
        return loss_d, stats

    # ------------------------------------------------------------------ G
    @torch.no_grad()
    def nearest_z(self, eps: torch.Tensor, text: TextCondition, target: torch.Tensor,
                  where: torch.Tensor | None = None) -> torch.Tensor:
        """For each target image [B, 3, R, R], the z among `recon_candidates` prior draws whose image is
        nearest to it in pixels -> z [B, z_dim]. Reconstructing from that z (implicit maximum likelihood,
        Li & Malik 2018) pulls every seed toward one real layout, never toward the mean of the layouts
        a caption allows. where [B] bool: the images that are reconstructed; the others keep their first
        draw, a plain prior z, and cost no candidate images."""
        k, b = self.cfg.recon_candidates, target.shape[0]
        zs = torch.stack([self.noise(b)[0] for _ in range(k)])  # [K, B, z_dim]
        rows = torch.arange(b, device=self.device) if where is None else where.nonzero().squeeze(1)
        if len(rows) == 0:
            return zs[0]
        idx = rows.repeat(k)  # candidate j of the i-th chosen image sits at j * len(rows) + i
        with self._autocast():
            images = self.G(zs[:, rows].flatten(0, 1), text[idx], eps=eps[idx])[0].float()
        dist = (images - target[idx]).pow(2).flatten(1).mean(1).view(k, len(rows))
        z = zs[0].clone()
        z[rows] = zs[dist.argmin(0), rows]
        return z

    def g_loss(self, batch: Batch, adversarial: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """G (and E) learn to fool u and u + m, rank their own caption first (and above its near miss, with
        near_miss_weight), and reconstruct the dataset's targets. With adversarial=False (the warm-up) only
        the reconstruction and KL terms are used, and D is not run."""
        cfg, b = self.cfg, batch.real.shape[0]
        text, real, same, idx = batch.text, batch.real, batch.same, batch.idx
        near = batch.near if cfg.near_miss_weight > 0 else None
        stats: dict[str, float] = {}
        self.D.requires_grad_(False)  # D's weights get no gradients here
        half = b // 2
        diversify = adversarial and cfg.diversity_weight > 0  # the warm-up's reconstruction would pull the pairs together
        if diversify:  # pair up: the second half repeats the first half's prompts
            pairs = torch.cat([torch.arange(half), torch.arange(half), torch.arange(2 * half, b)])
            text, real, same, idx = text[pairs.to(self.device)], real[pairs], same[pairs][:, pairs], idx[pairs]
            if near is not None:
                near = (near[0][pairs.to(self.device)], near[1][pairs.to(self.device)])
        pinned = torch.from_numpy(self.data.pinned(idx.numpy())).to(self.device)  # one right image up to jitter
        z, eps = self.noise(b)
        target, recon_weight = self.data.recon_targets(idx, z, real, warmup=not adversarial)
        if cfg.recon == "prior" and cfg.recon_candidates > 1:
            z = self.nearest_z(eps, text, target, None if recon_weight is None else recon_weight > 0)
        n_rec = {"prior": b, "layout": b, "posterior": b // 2}.get(cfg.recon, 0)  # images with a target
        posterior = torch.zeros(b, dtype=torch.bool, device=self.device)  # images whose z comes from E
        if cfg.recon == "posterior":  # the first half draws z from q(z | x, t) of its real image, the rest from N(0, I)
            posterior[:half] = True
        elif cfg.recon == "layout":
            # The first half's open captions draw z from q(z | layout, t) and are reconstructed; the second half's
            # are the GAN's alone (a prior z has no image to match). Captions that fix the layout keep a prior z and
            # are reconstructed wherever they are: their z must not be what places the shape.
            open_ = ~pinned
            posterior[:half] = open_[:half]
            keep = torch.ones(b, device=self.device)
            keep[half:] = (~open_[half:]).float()
            recon_weight = keep if recon_weight is None else recon_weight * keep
        with self._autocast():
            if posterior.any():
                mu, var = self.E(target[posterior], text.pooled[posterior])
                mu, var = mu.float(), var.float()
                z_post = mu + var.sqrt() * torch.randn(mu.shape, generator=self.rng).to(mu.device)
                z = z.masked_scatter(posterior[:, None], z_post)
            sentence = self.G.sentence(text)
            w, kl = self.G.mapping(z, sentence, eps)
            if cfg.style_mixing > 0:
                z2, _ = self.noise(b)
                w = mix_styles(w, self.G.mapping.map(z2, self.G.mapping.ca(sentence, eps)[0]),
                               self.G.synthesis.num_ws, cfg.style_mixing, self.rng)
            fake = self.G.synthesis(w, text)
            if adversarial:
                f_fake = self.D.features(self._augment(fake.float()))
                u, m = self.D.heads(f_fake, text)
                logits = self.D.match_matrix(f_fake, text) if cfg.contrastive_weight > 0 else None
                m_near = self.D.heads(f_fake, near[0])[1] if near is not None else None
                spread = self.D.spread_logits(f_fake, text, cfg.group_size) if cfg.spread_weight > 0 else None
        fake = fake.float()
        loss_g = cfg.kl_weight * kl.float()
        stats["kl"] = kl.item()
        if adversarial:
            loss_g_real = losses.g_realism_loss(u.float())
            loss_g_joint = losses.g_realism_loss(u.float() + m.float())
            loss_g = loss_g + loss_g_real + cfg.joint_weight * loss_g_joint
            stats.update(loss_g=loss_g_real.item(), loss_joint_g=loss_g_joint.item())
            if logits is not None:
                loss_con_g = losses.contrastive_match_loss(logits.float(), same)
                loss_g = loss_g + cfg.contrastive_weight * loss_con_g
                stats["contrastive_g"] = loss_con_g.item()
            if m_near is not None:
                loss_near = losses.near_miss_ranking_loss(m.float(), m_near.float(), near[1])
                loss_g = loss_g + cfg.near_miss_weight * loss_near
                stats["near_miss_g"] = loss_near.item()
            if spread is not None:
                loss_spread = losses.g_realism_loss(spread.float(), batch.group_weights)
                loss_g = loss_g + cfg.spread_weight * loss_spread
                stats["spread_g"] = loss_spread.item()
        if n_rec:
            rec = losses.reconstruction_loss(fake[:n_rec], target[:n_rec], cfg.recon_loss,
                                             None if recon_weight is None else recon_weight[:n_rec])
            loss_g = loss_g + cfg.recon_weight * rec
            stats["recon"] = rec.item()
        if posterior.any():
            vae_kl = losses.gaussian_kl(mu, var)
            loss_g = loss_g + cfg.vae_kl_weight * vae_kl
            stats["vae_kl"] = vae_kl.item()
        open_ = ~pinned[:half] if diversify else None  # a placed shape has one right image (up to jitter)
        if open_ is not None and open_.any():  # only open captions must vary
            div = losses.g_diversity_loss(fake[:half][open_], fake[half:2 * half][open_], z[:half][open_],
                                          z[half:2 * half][open_], cfg.diversity_cap)
            loss_g = loss_g + cfg.diversity_weight * div
            stats["diversity"] = -div.item()
        return loss_g, stats
