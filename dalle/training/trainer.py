"""Training loop: a plain loop over D and G steps, outside any nn.Module.

One step:
  D: real images with their own captions (real), G's images (fake) and real images with
     other captions (mismatched) -> unconditional realism loss on u, joint projection loss
     on u + m, batch-contrastive match loss on real pairs (+ lazy R1 every k steps)
  G: fresh images -> fool u and u + m, rank their own caption first, and reconstruct the
     real image of the same caption in pixels: every image from a prior z ("prior",
     pix2pix-style), or half the batch from the VAE-GAN encoder's posterior z of its real
     image ("posterior"; the other half from the prior, adversarial only) (+ the KL terms)
  EMA: G_ema <- lerp toward G; G_ema is what gets exported and shipped.
During the first `warmup_kimg` thousand images there is no D step and G learns by
reconstruction alone, about 3x faster per CPU-second than a full step.

The networks run under bf16 autocast where the hardware has it; weights, optimizer state
and every loss stay fp32.

Run state (weights, optimizers, RNGs, counters) lives in `<out>/state/` as safetensors +
JSON and is written atomically, so `--resume` continues exactly where training stopped.
Under `torchrun`/`accelerate launch` (WORLD_SIZE > 1) every rank draws its own batch,
gradients are averaged with all_reduce (data parallel), and rank 0 writes files.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import platform
import random
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..checkpoint import (
    CheckpointError,
    load_into,
    load_tensors,
    model_config,
    read_config,
    recover_folder,
    refuse_pickles,
    save_checkpoint,
    save_tensors,
    write_folder_atomically,
)
from ..config import RESUMABLE_MODEL_FIELDS, ModelConfig, TrainConfig
from ..data import Dataset, open_dataset
from ..device import cpu_has_bf16, pick_device
from ..images import grid_image, png_bytes, tensor_to_uint8, uint8_to_tensor
from ..models.discriminator import Discriminator
from ..models.generator import Generator
from ..models.image_encoder import ImageEncoder, LayoutEncoder
from ..shapes.checker import parse_caption
from ..shapes.world import NOISE_DIMS, PAIR_LAYOUTS, ShapesWorld
from ..text_encoder import TextCondition, encode_captions_cached
from . import losses
from .augment import diff_augment, parse_policy

LOG_FIELDS = ["step", "kimg", "loss_d", "loss_g", "loss_joint_d", "loss_joint_g", "r1", "kl", "diversity",
              "d_real_acc", "match_acc", "img_per_s", "elapsed_s", "contrastive_d", "contrastive_g", "recon", "vae_kl",
              "lr_scale", "near_miss_d", "near_miss_g", "spread_d", "spread_g"]
SHAPES_PREVIEW = ["a large red circle at the top left", "a small blue square in the center",
                  "a yellow triangle at the bottom right", "a green circle left of a black square",
                  "two red triangles", "three blue circles", "a large purple triangle in the center",
                  "a small orange circle at the top"]


def preview_prompts(dataset: Dataset, n: int = 8) -> list[str]:
    if isinstance(dataset, ShapesWorld):
        return SHAPES_PREVIEW[:n]
    step = max(1, len(dataset.captions) // n)
    return dataset.captions[::step][:n]


def same_caption(indices: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: items i and j of the batch have the same caption index."""
    return indices[:, None] == indices[None, :]


def mix_styles(w: torch.Tensor, w_other: torch.Tensor, num_ws: int, prob: float, rng: torch.Generator,
               ) -> torch.Tensor:
    """Per-layer styles [B, num_ws, w_dim]: for a share `prob` of the batch, the layers from a random
    crossover on take `w_other` instead of w (style mixing, StyleGAN). w, w_other [B, w_dim]."""
    b = w.shape[0]
    cut = torch.randint(1, num_ws, (b, 1), generator=rng)
    cut = torch.where(torch.rand(b, 1, generator=rng) < prob, cut, torch.full_like(cut, num_ws)).to(w.device)
    later = torch.arange(num_ws, device=w.device)[None, :] >= cut  # [B, num_ws]
    return torch.where(later[..., None], w_other[:, None], w[:, None])


def mismatched(indices: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """For each caption index, another caption index from the batch that differs from it."""
    b = indices.shape[0]
    perm = (torch.arange(b) + torch.randint(1, max(b, 2), (1,), generator=rng)) % b
    out = indices[perm]
    same = out == indices
    if same.any():  # duplicate captions in the batch: shift once more, then give up gracefully
        out[same] = indices[(perm[same] + 1) % b]
    return out


def lr_scale(progress: float, decay: float) -> float:
    """The learning-rate multiplier at `progress` (0 at the start of the run, 1 at its end): 1 until the
    last `decay` share of the run, then falling linearly to 0 at the end. decay=0: always 1."""
    if decay <= 0:
        return 1.0
    return min(1.0, max(0.0, 1.0 - progress) / decay)


def ema_beta(batch: int, images_seen: int, cfg: TrainConfig) -> float:
    half_life = cfg.ema_kimg * 1000
    if cfg.ema_rampup > 0:
        half_life = min(half_life, images_seen * cfg.ema_rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


# Train settings that do not change what is learned; a resume may change them without a note.
# "workers" is a retired setting (drawing a shapes batch takes about 3 ms of a 200-450 ms step) that the
# saved state of older runs still names.
BOOKKEEPING = {"out", "threads", "max_minutes", "device", "workers", "cache_dir", "sample_every",
               "checkpoint_every", "snapshot_kimg", "snapshot_minutes", "total_kimg", "init_from"}

# D heads that a run started with --init-from may add to the checkpoint's D: they start fresh, the rest loads
ADDABLE_D_HEADS = ("d_group_spread",)


def setting_changes(before: dict, after: dict) -> dict[str, list]:
    """{name: [old, new]} for the learning-relevant settings that differ (JSON-normalised)."""
    norm = lambda d: json.loads(json.dumps({k: v for k, v in d.items() if k not in BOOKKEEPING}))  # noqa: E731
    a, b = norm(before), norm(after)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


class Trainer:
    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, dataset: Dataset | None = None,
                 command: str = ""):
        self.model_cfg, self.cfg = model_cfg, cfg
        self.command = command  # the command line that started the run, recorded in config.json
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda" and self.distributed:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        parse_policy(cfg.augment)  # fail early on a typo
        self.out = Path(cfg.out)
        self.dataset = dataset if dataset is not None else open_dataset(
            cfg.data, model_cfg.resolution, scene_mix=tuple(cfg.scene_mix))

        self.data_rng = random.Random(cfg.seed * 1000 + self.rank)
        self.torch_rng = torch.Generator().manual_seed(cfg.seed + 7919 * (self.rank + 1))

        # One encoder pass (or a disk-cache hit) for every training caption plus the preview prompts.
        self.preview = preview_prompts(self.dataset)
        table = encode_captions_cached(model_cfg.text_encoder, self.dataset.captions + self.preview, cfg.cache_dir,
                                       max_tokens=model_cfg.max_tokens)
        if table.pooled.shape[1] != model_cfg.text_dim:
            raise ValueError(f"text encoder gives {table.pooled.shape[1]}-d embeddings, config says "
                             f"text_dim={model_cfg.text_dim}")
        n = len(self.dataset.captions)
        self.text_table = table[:n].to(self.device)
        self.preview_text = table[n:].to(self.device, torch.float32)
        # [num_captions] bool: the pairs' captions (shapes world), whose groups `spread_pairs` weighs and which
        # `seeded_pairs` can leave to their real images
        self.pair_captions = torch.tensor([isinstance(self.dataset, ShapesWorld) and parse_caption(c).kind == "pair"
                                           for c in self.dataset.captions], dtype=torch.bool)
        g = torch.Generator().manual_seed(1234)
        self.preview_z = torch.randn(len(self.preview) * 8, model_cfg.z_dim, generator=g).to(self.device)
        self.preview_eps = torch.randn(len(self.preview) * 8, model_cfg.cond_dim, generator=g).to(self.device)

        self.step, self.images_seen, self.wall_time = 0, 0, 0.0
        # {"step", "kimg", "changed": {name: [old, new]}} per resume that changed settings; {"init_from", ...} per --init-from
        self.history: list[dict] = []
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.G = Generator(model_cfg).to(self.device)
        self.D = Discriminator(model_cfg).to(self.device)
        if cfg.recon not in ("prior", "posterior", "layout", "none"):
            raise ValueError(f"recon must be 'prior', 'posterior', 'layout' or 'none', got {cfg.recon!r}")
        if cfg.recon_loss not in ("l1", "l2"):
            raise ValueError(f"recon_loss must be 'l1' or 'l2', got {cfg.recon_loss!r}")
        if cfg.recon_candidates > 1 and cfg.recon != "prior":
            raise ValueError("--recon-candidates picks among prior draws, so it needs --recon prior")
        if cfg.seeded_layouts and (cfg.recon != "prior" or cfg.recon_candidates > 1):
            raise ValueError("--seeded-layouts reconstructs from the prior z it reads the layout from: it needs --recon prior"
                             " and one candidate")
        if cfg.seeded_layouts and not isinstance(self.dataset, ShapesWorld):
            raise ValueError("--seeded-layouts needs the shapes world, which can draw a caption from a noise vector")
        if cfg.pair_layout not in PAIR_LAYOUTS:
            raise ValueError(f"pair_layout must be one of {', '.join(PAIR_LAYOUTS)}; got {cfg.pair_layout!r}")
        if cfg.pair_layout != "any" and not (cfg.seeded_layouts and cfg.seeded_pairs):
            raise ValueError("--pair-layout narrows the seeded pairs' cells: it needs --seeded-layouts true --seeded-pairs true")
        if cfg.seeded_layouts and model_cfg.z_dim < NOISE_DIMS:
            raise ValueError(f"--seeded-layouts reads {NOISE_DIMS} coordinates of z; z_dim is {model_cfg.z_dim}")
        if cfg.recon_open < 0:
            raise ValueError(f"recon_open is a weight, at least 0; got {cfg.recon_open}")
        if cfg.recon_open != 1.0 and not isinstance(self.dataset, ShapesWorld):
            raise ValueError("--recon-open needs the shapes world, which knows which captions place their shape")
        if not 0.0 <= cfg.hard_negatives <= 1.0:
            raise ValueError(f"hard_negatives is a share of the batch, 0 to 1; got {cfg.hard_negatives}")
        for name in ("near_miss_weight", "d_near_miss_weight"):
            if getattr(cfg, name) < 0:
                raise ValueError(f"{name} is a weight, at least 0; got {getattr(cfg, name)}")
            if getattr(cfg, name) > 0 and not isinstance(self.dataset, ShapesWorld):
                raise ValueError(f"--{name.replace('_', '-')} needs the shapes world, which knows each caption's near misses")
        if cfg.group_size < 1 or cfg.batch_size % cfg.group_size:
            raise ValueError(f"group_size must be at least 1 and divide the batch ({cfg.batch_size}); got {cfg.group_size}")
        if cfg.group_size > 1 and not isinstance(self.dataset, ShapesWorld):
            raise ValueError("--group-size needs the shapes world, which can draw a caption again")
        if cfg.spread_weight < 0:
            raise ValueError(f"spread_weight is a weight, at least 0; got {cfg.spread_weight}")
        if cfg.spread_weight > 0 and (cfg.group_size < 2 or not model_cfg.d_group_spread):
            raise ValueError("--spread-weight needs groups (--group-size 2 or more) and D's head (--d-group-spread true)")
        if cfg.spread_pairs < 0:
            raise ValueError(f"spread_pairs is a weight, at least 0; got {cfg.spread_pairs}")
        if cfg.spread_weight > 0 and cfg.diversity_weight > 0:
            raise ValueError("--spread-weight and --diversity-weight both regroup G's batch; use one")
        if not 0.0 <= cfg.lr_decay <= 1.0:
            raise ValueError(f"lr_decay is a share of the run, 0 to 1; got {cfg.lr_decay}")
        if cfg.warmup_kimg > 0 and cfg.recon == "none":
            raise ValueError("--warmup-kimg trains by reconstruction alone, so it needs --recon prior, posterior or layout")
        for word_order in (self.G.word_order, self.D.word_order):  # statistics of this run's captions (see word_order.py)
            if word_order is not None:
                word_order.fit(self.text_table)
        encoders = {"posterior": ImageEncoder, "layout": LayoutEncoder}
        self.E = encoders[cfg.recon](model_cfg).to(self.device) if cfg.recon in encoders else None
        if cfg.init_from:
            self._load_weights(Path(cfg.init_from))
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        torch.manual_seed(cfg.seed + self.rank)  # per-rank augmentation randomness
        fused = self.device.type == "cuda"
        g_params = list(self.G.parameters()) + (list(self.E.parameters()) if self.E is not None else [])
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr_g, betas=cfg.betas, fused=fused)
        # Lazy R1 (every k steps, weight x k) with Adam: scale lr and betas by k / (k + 1) (StyleGAN2, app. B)
        c = cfg.r1_every / (cfg.r1_every + 1) if cfg.r1_gamma > 0 else 1.0
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d * c,
                                      betas=(cfg.betas[0] ** c, cfg.betas[1] ** c), fused=fused)
        self.G, self.D = self.G.to(memory_format=torch.channels_last), self.D.to(memory_format=torch.channels_last)
        self.autocast = cfg.mixed_precision and (self.device.type == "cuda" or cpu_has_bf16())
        self.base_lr = [[g["lr"] for g in opt.param_groups] for opt in (self.opt_g, self.opt_d)]  # before --lr-decay

    def progress(self) -> float:
        """How much of the run is done, 0 to 1: training time over the time budget when there is one
        (--max-minutes), else images over --total-kimg."""
        if self.cfg.max_minutes > 0:
            done = min(1.0, self.wall_time / (self.cfg.max_minutes * 60))
            if self.distributed:  # ranks time themselves; all must step with rank 0's rate
                t = torch.tensor([done], device=self.device)
                dist.broadcast(t, 0)
                done = t.item()
            return done
        return min(1.0, self.images_seen / (self.cfg.total_kimg * 1000))

    def _schedule_lr(self) -> float:
        """Set both optimizers' learning rates for the current progress (--lr-decay); returns the multiplier."""
        scale = lr_scale(self.progress(), self.cfg.lr_decay)
        for opt, bases in zip((self.opt_g, self.opt_d), self.base_lr):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base * scale
        return scale

    def _load_weights(self, folder: Path) -> None:
        """--init-from: G (the checkpoint's EMA weights) and D from a checkpoint folder; the model configs must agree,
        except that this run's D may add the heads in ADDABLE_D_HEADS, which start fresh."""
        config = read_config(folder)
        refuse_pickles(folder)
        theirs = model_config(config)
        added = [f for f in ADDABLE_D_HEADS if getattr(self.model_cfg, f) and not getattr(theirs, f)]
        if dataclasses.replace(theirs, **{f: True for f in added}) != self.model_cfg:
            raise CheckpointError(f"{folder / 'config.json'}: --init-from needs the same model config as this run"
                                  f" (it may add {', '.join(ADDABLE_D_HEADS)})")
        load_into(self.G, folder, "generator")
        if added:  # load the checkpoint's D, then give its weights to ours, whose added heads keep their init
            old = Discriminator(theirs)
            load_into(old, folder, "discriminator")
            missing, unexpected = self.D.load_state_dict(old.state_dict(), strict=False)
            assert not unexpected and missing, (missing, unexpected)
        else:
            load_into(self.D, folder, "discriminator")
        entry = {"step": 0, "kimg": 0.0, "init_from": str(folder), "from_step": config.get("step", 0),
                 "from_kimg": round(config.get("images_seen", 0) / 1000, 1),
                 "from_command": (config.get("training_compute") or {}).get("command", "")}
        # the source's own history first: a continued checkpoint's card tells the whole way from scratch
        self.history = list(config.get("training_history") or []) + [entry | ({"added": added} if added else {})]

    # ------------------------------------------------------------------ one step
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def _batch(self) -> tuple[torch.Tensor, TextCondition, TextCondition, torch.Tensor, torch.Tensor | None]:
        """Real images [B, 3, R, R], their captions, other captions, the caption indices [B], and the indices of
        the captions' near misses [B] (None unless the shapes world gives them and the run uses them)."""
        cfg = self.cfg
        if cfg.group_size > 1:  # groups of images of one caption, in a row
            images, idx = self.dataset.sample(cfg.batch_size, self.data_rng, group=cfg.group_size)
        else:
            images, idx = self.dataset.sample(cfg.batch_size, self.data_rng)
        idx_t = torch.from_numpy(idx)
        wrong = mismatched(idx_t, self.torch_rng)
        near = None
        uses_near = cfg.hard_negatives > 0 or cfg.near_miss_weight > 0 or cfg.d_near_miss_weight > 0
        if uses_near and isinstance(self.dataset, ShapesWorld):
            near = torch.from_numpy(self.dataset.near_miss(idx, self.data_rng))  # the world knows its near misses
        if cfg.hard_negatives > 0 and near is not None:
            wrong = torch.where(torch.rand(len(idx), generator=self.torch_rng) < cfg.hard_negatives, near, wrong)
        real = uint8_to_tensor(images, self.device).contiguous(memory_format=torch.channels_last)
        text = self.text_table[idx_t.to(self.device)].to(self.device, torch.float32)
        return real, text, self.text_table[wrong.to(self.device)].to(self.device, torch.float32), idx_t, near

    def _noise(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, eps) for b images, from the run's own generator (not the global RNG)."""
        z = torch.randn(b, self.model_cfg.z_dim, generator=self.torch_rng)
        eps = torch.randn(b, self.model_cfg.cond_dim, generator=self.torch_rng)
        return z.to(self.device), eps.to(self.device)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.augment, self.torch_rng)

    def train_step(self) -> dict[str, float]:
        """One D step and one G step (or, during the warm-up, a reconstruction-only G step), then the EMA."""
        cfg = self.cfg
        real, text, text_wrong, idx, near = self._batch()
        b = real.shape[0]
        same = same_caption(idx).to(self.device)
        warmup = self.images_seen < cfg.warmup_kimg * 1000
        scale = self._schedule_lr() if cfg.lr_decay > 0 else 1.0
        near_misses = None  # (their conditions, which captions have one) for the near-miss ranking terms
        if near is not None:
            near_misses = (self.text_table[near.to(self.device)].to(self.device, torch.float32), (near != idx).to(self.device))
        spread_groups = None  # [B / group_size] weight of each group in the spread game (None: all 1)
        if cfg.spread_weight > 0 and cfg.spread_pairs != 1.0:
            pair = self.pair_captions[idx[::cfg.group_size]].float()
            spread_groups = (1 - pair + pair * cfg.spread_pairs).to(self.device)
        stats = {} if warmup else self._d_step(real, text, text_wrong, same,
                                               near_misses if cfg.d_near_miss_weight > 0 else None, spread_groups)
        pinned = torch.zeros(b, dtype=torch.bool)  # captions that fix the whole layout (the shapes world knows them)
        if isinstance(self.dataset, ShapesWorld):
            pinned = torch.from_numpy(self.dataset.pinned(idx.numpy()))
        pinned = pinned.to(self.device)
        seeded = torch.zeros(b, dtype=torch.bool)  # captions whose target is drawn from G's z: one right image per seed
        if cfg.seeded_layouts:
            seeded = torch.ones(b, dtype=torch.bool) if cfg.seeded_pairs else ~self.pair_captions[idx]
        seeded = seeded.to(self.device)
        recon_weight = None
        if cfg.recon_open != 1.0 and not warmup:  # open captions reconstructed at their own weight
            one_answer = (pinned | seeded).float()
            recon_weight = one_answer + (1 - one_answer) * cfg.recon_open
        stats.update(self._g_step(real, text, idx, same, adversarial=not warmup, pinned=pinned, seeded=seeded,
                                  recon_weight=recon_weight,
                                  near_misses=near_misses if cfg.near_miss_weight > 0 else None,
                                  spread_groups=spread_groups))
        if cfg.lr_decay > 0:
            stats["lr_scale"] = scale
        self.images_seen += b * self.world
        beta = ema_beta(b * self.world, self.images_seen, cfg)
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.lerp_(p.detach(), 1 - beta)
        self.step += 1
        return stats

    def _d_step(self, real: torch.Tensor, text: TextCondition, text_wrong: TextCondition, same: torch.Tensor,
                near_misses: tuple[TextCondition, torch.Tensor] | None = None,
                spread_groups: torch.Tensor | None = None) -> dict[str, float]:
        """D learns u (real vs G's images), u + m (own caption vs G's images and other captions) and m's ranking.
        near_misses: the captions' near misses and a [B] bool of which captions have one; m alone then also
        ranks each real image's own caption above its near miss. spread_groups [B / group_size]: each group's
        weight in the group-spread game (None: 1)."""
        cfg, b = self.cfg, real.shape[0]
        stats: dict[str, float] = {}
        z, eps = self._noise(b)
        with torch.no_grad(), self._autocast():
            fake, _ = self.G(z, text, eps=eps)
        do_r1 = cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0
        real_in = real.detach().requires_grad_(do_r1)  # R1 is taken before augmentation
        self.D.requires_grad_(True)
        with self._autocast():
            feats = self.D.features(torch.cat([self._augment(real_in), self._augment(fake.float())]))
            f_real, f_fake = feats[:b], feats[b:]
            u_real, m_real = self.D.heads(f_real, text)
            _, m_wrong = self.D.heads(f_real, text_wrong)
            u_fake, m_fake = self.D.heads(f_fake, text)
            logits = self.D.match_matrix(f_real, text) if cfg.contrastive_weight > 0 else None
            m_near = self.D.heads(f_real, near_misses[0])[1].float() if near_misses is not None else None
        u_real, m_real, m_wrong, u_fake, m_fake = (t.float() for t in (u_real, m_real, m_wrong, u_fake, m_fake))
        loss_real = losses.d_realism_loss(u_real, u_fake)
        loss_joint = losses.d_conditional_loss(u_real + m_real, u_fake + m_fake, u_real + m_wrong)
        loss_d = loss_real + cfg.joint_weight * loss_joint
        if logits is not None:
            loss_con = losses.contrastive_match_loss(logits.float(), same)
            loss_d = loss_d + cfg.contrastive_weight * loss_con
            stats["contrastive_d"] = loss_con.item()
        if m_near is not None:
            loss_near = losses.near_miss_ranking_loss(m_real, m_near, near_misses[1])
            loss_d = loss_d + cfg.d_near_miss_weight * loss_near
            stats["near_miss_d"] = loss_near.item()
        if cfg.spread_weight > 0:  # groups of one caption: real draws vary as the caption allows, G's must too
            with self._autocast():
                s_real = self.D.spread_logits(f_real, text, cfg.group_size)
                s_fake = self.D.spread_logits(f_fake, text, cfg.group_size)
            loss_spread = losses.d_realism_loss(s_real.float(), s_fake.float(), spread_groups)
            loss_d = loss_d + cfg.spread_weight * loss_spread
            stats["spread_d"] = loss_spread.item()
        if do_r1:  # on both adversarial logits of real images: u and u + m
            r1 = losses.r1_penalty(real_in, 2 * u_real + m_real)
            loss_d = loss_d + (cfg.r1_gamma / 2) * cfg.r1_every * r1
            stats["r1"] = r1.item()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        if self.distributed:
            self._allreduce_grads(self.D)
        self.opt_d.step()
        stats.update(loss_d=loss_real.item(), loss_joint_d=loss_joint.item(),
                     d_real_acc=((u_real > 0).float().mean().item() + (u_fake < 0).float().mean().item()) / 2,
                     match_acc=(m_real > m_wrong).float().mean().item())
        return stats

    @torch.no_grad()
    def _nearest_z(self, eps: torch.Tensor, text: TextCondition, target: torch.Tensor,
                   where: torch.Tensor | None = None) -> torch.Tensor:
        """For each real image [B, 3, R, R], the z among `recon_candidates` prior draws whose image is
        nearest to it in pixels -> z [B, z_dim]. Reconstructing from that z (implicit maximum likelihood,
        Li & Malik 2018) pulls every seed toward one real layout, never toward the mean of the layouts
        a caption allows. where [B] bool: the images that are reconstructed; the others keep their first
        draw, a plain prior z, and cost no candidate images."""
        k, b = self.cfg.recon_candidates, target.shape[0]
        zs = torch.stack([self._noise(b)[0] for _ in range(k)])  # [K, B, z_dim]
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

    def _g_step(self, real: torch.Tensor, text: TextCondition, idx: torch.Tensor, same: torch.Tensor, adversarial: bool,
                pinned: torch.Tensor, seeded: torch.Tensor, recon_weight: torch.Tensor | None = None,
                near_misses: tuple[TextCondition, torch.Tensor] | None = None,
                spread_groups: torch.Tensor | None = None) -> dict[str, float]:
        """G (and E) learn to fool u and u + m, rank their own caption first, and reconstruct real images.
        idx [B]: the caption indices. pinned [B] bool: captions that fix the whole layout. seeded [B] bool: captions
        whose target is drawn from idx and G's z (--seeded-layouts), not the real image. near_misses: the captions' near misses and a [B] bool
        of which captions have one; G then also ranks its own caption above the near miss. spread_groups
        [B / group_size]: each group's weight in the group-spread game (None: 1). With adversarial=False
        (the warm-up) only the reconstruction and KL terms are used, and D is not run."""
        cfg, b = self.cfg, real.shape[0]
        stats: dict[str, float] = {}
        self.D.requires_grad_(False)  # D's weights get no gradients here
        target = real
        half = b // 2
        diversify = adversarial and cfg.diversity_weight > 0  # the warm-up's reconstruction would pull the pairs together
        if diversify:  # pair up: the second half repeats the first half's prompts
            pairs = torch.cat([torch.arange(half), torch.arange(half), torch.arange(2 * half, b)])
            text, target, same, idx = text[pairs.to(self.device)], real[pairs], same[pairs][:, pairs], idx[pairs]
            recon_weight = None if recon_weight is None else recon_weight[pairs.to(self.device)]
            pinned, seeded = pinned[pairs.to(self.device)], seeded[pairs.to(self.device)]
            if near_misses is not None:
                near_misses = (near_misses[0][pairs.to(self.device)], near_misses[1][pairs.to(self.device)])
        z, eps = self._noise(b)
        if seeded.any():  # the target is the caption drawn as z says: one right image per seed, not their mean
            drawn = self.dataset.render_seeded(idx.numpy(), z[:, :NOISE_DIMS].cpu().numpy(), cfg.pair_layout)
            drawn = uint8_to_tensor(drawn, self.device).contiguous(memory_format=torch.channels_last)
            target = torch.where(seeded[:, None, None, None], drawn, target)
        if cfg.recon == "prior" and cfg.recon_candidates > 1:
            z = self._nearest_z(eps, text, target, None if recon_weight is None else recon_weight > 0)
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
                z_post = mu + var.sqrt() * torch.randn(mu.shape, generator=self.torch_rng).to(mu.device)
                z = z.masked_scatter(posterior[:, None], z_post)
            sentence = self.G.sentence(text)
            w, kl = self.G.mapping(z, sentence, eps)
            if cfg.style_mixing > 0:
                z2, _ = self._noise(b)
                w = mix_styles(w, self.G.mapping.map(z2, self.G.mapping.ca(sentence, eps)[0]),
                               self.G.synthesis.num_ws, cfg.style_mixing, self.torch_rng)
            fake = self.G.synthesis(w, text)
            if adversarial:
                f_fake = self.D.features(self._augment(fake.float()))
                u, m = self.D.heads(f_fake, text)
                logits = self.D.match_matrix(f_fake, text) if cfg.contrastive_weight > 0 else None
                m_near = self.D.heads(f_fake, near_misses[0])[1] if near_misses is not None else None
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
                loss_near = losses.near_miss_ranking_loss(m.float(), m_near.float(), near_misses[1])
                loss_g = loss_g + cfg.near_miss_weight * loss_near
                stats["near_miss_g"] = loss_near.item()
            if spread is not None:
                loss_spread = losses.g_realism_loss(spread.float(), spread_groups)
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
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if self.distributed:
            self._allreduce_grads(self.G)
            if self.E is not None:
                self._allreduce_grads(self.E)
        self.opt_g.step()
        return stats

    def _allreduce_grads(self, module: torch.nn.Module) -> None:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    # ------------------------------------------------------------------ samples and export
    @torch.no_grad()
    def sample_grid(self) -> bytes:
        cols = 8
        text = self.preview_text[torch.arange(len(self.preview), device=self.device).repeat_interleave(cols)]
        imgs, _ = self.G_ema(self.preview_z, text, eps=self.preview_eps)
        meta = {"prompts": self.preview, "step": self.step, "kimg": self.images_seen / 1000}
        return png_bytes(grid_image(tensor_to_uint8(imgs), len(self.preview), cols), meta)

    def checkpoint_config(self) -> dict:
        return {
            "model": self.model_cfg.to_dict(),
            "name": self.out.name,
            "text_encoder": self.model_cfg.text_encoder,
            "resolution": self.model_cfg.resolution,
            "dataset": self.dataset.describe(),
            "step": self.step,
            "images_seen": self.images_seen,
            "train": self.cfg.to_dict(),
            "training_compute": {"wall_time_s": round(self.wall_time, 1), "device": self.device_name(),
                                 "world_size": self.world, "command": self.command},
            "training_history": self.history,
        }

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"

    def export(self, dest: Path, grid: bytes | None = None) -> Path:
        extra = {"samples.png": grid or self.sample_grid()}
        log = self.out / "log.csv"
        if log.exists():
            extra["log.csv"] = log.read_bytes()
        return save_checkpoint(dest, self.checkpoint_config(), self.G_ema, self.D, extra)

    # ------------------------------------------------------------------ resumable state
    def save_state(self) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, m in self._modules_to_save():
            tensors.update({f"{prefix}.{k}": v.float() for k, v in m.state_dict().items()})
        meta: dict = {"step": self.step, "images_seen": self.images_seen, "wall_time": self.wall_time,
                      "model": self.model_cfg.to_dict(), "train": self.cfg.to_dict(), "history": self.history,
                      "python_rng": list(_jsonable(self.data_rng.getstate())), "opt": {}}
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            sd = opt.state_dict()
            meta["opt"][name] = {"param_groups": sd["param_groups"], "steps": {}}
            for pid, st in sd["state"].items():
                meta["opt"][name]["steps"][str(pid)] = float(st["step"])
                tensors[f"{name}.{pid}.exp_avg"] = st["exp_avg"]
                tensors[f"{name}.{pid}.exp_avg_sq"] = st["exp_avg_sq"]
        tensors["rng.torch_global"] = torch.get_rng_state()
        tensors["rng.torch_train"] = self.torch_rng.get_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)

        def write(tmp: Path) -> None:
            save_tensors(tensors, tmp, "state")
            (tmp / "state.json").write_text(json.dumps(meta))

        write_folder_atomically(self.out / "state", write)

    def _modules_to_save(self) -> list[tuple[str, torch.nn.Module]]:
        extra = [("E", self.E)] if self.E is not None else []
        return [("G", self.G), ("G_ema", self.G_ema), ("D", self.D), *extra]

    def load_state(self) -> bool:
        folder = recover_folder(self.out / "state")
        if not (folder / "state.json").exists():
            return False
        meta = json.loads((folder / "state.json").read_text())
        saved_model = ModelConfig.from_dict(meta["model"]).to_dict()
        fixed = [k for k in saved_model if k not in RESUMABLE_MODEL_FIELDS]
        if any(saved_model[k] != getattr(self.model_cfg, k) for k in fixed):
            raise CheckpointError(f"{folder / 'state.json'}: run was started with a different model config")
        self.history = meta.get("history", [])
        changed = setting_changes({**saved_model, **meta["train"]}, {**self.model_cfg.to_dict(), **self.cfg.to_dict()})
        if changed:
            self.history.append({"step": meta["step"], "kimg": round(meta["images_seen"] / 1000, 1), "changed": changed})
        tensors = load_tensors(folder, "state")
        for prefix, m in self._modules_to_save():
            m.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == prefix})
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            om = meta["opt"][name]
            state = {int(pid): {"step": torch.tensor(step), "exp_avg": tensors[f"{name}.{pid}.exp_avg"].to(self.device),
                                "exp_avg_sq": tensors[f"{name}.{pid}.exp_avg_sq"].to(self.device)}
                     for pid, step in om["steps"].items()}
            opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
        torch.set_rng_state(tensors["rng.torch_global"])
        self.torch_rng.set_state(tensors["rng.torch_train"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.data_rng.setstate(_from_jsonable(meta["python_rng"]))
        self.step, self.images_seen, self.wall_time = meta["step"], meta["images_seen"], meta["wall_time"]
        return True

    # ------------------------------------------------------------------ the loop
    def _log_row(self, row: dict) -> None:
        path = self.out / "log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in LOG_FIELDS})

    def _trim_log(self) -> None:
        """After a resume, drop log rows written after the checkpoint we resumed from."""
        path = self.out / "log.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def _log_and_sample(self, acc: dict[str, list[float]], seconds: float, images: int) -> None:
        """One log.csv row (means of `acc`, img/s over the interval) and samples/step-N.png."""
        row = {k: round(sum(v) / len(v), 4) for k, v in acc.items()}
        row.update(step=self.step, kimg=round(self.images_seen / 1000, 3),
                   img_per_s=round(images / max(seconds, 1e-9), 2), elapsed_s=round(self.wall_time, 1))
        self._log_row(row)
        (self.out / "samples" / f"step-{self.step:07d}.png").write_bytes(self.sample_grid())

    def run(self, resume: bool = False, max_steps: int | None = None) -> Path:
        main = self.rank == 0
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "samples").mkdir(exist_ok=True)
        if resume and self.load_state():
            if main:
                print(f"resumed {self.out} at step {self.step} ({self.images_seen / 1000:.1f} kimg)")
                self._trim_log()
        total = int(self.cfg.total_kimg * 1000)
        stop = {"flag": False}
        previous = signal.getsignal(signal.SIGTERM)
        if main:
            signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))  # finish the step, save, exit
        start, t_last, n_last = time.time(), time.time(), self.images_seen
        acc: dict[str, list[float]] = {}
        snapshots = sorted(self.cfg.snapshot_minutes)
        timed = self.cfg.max_minutes > 0  # with a time budget the bar (and its ETA) counts seconds
        bar = tqdm(total=round(self.cfg.max_minutes * 60) if timed else total,
                   initial=0 if timed else min(self.images_seen, total), unit="s" if timed else "img",
                   disable=not main, dynamic_ncols=True, mininterval=2.0)
        try:
            while self.images_seen < total and not stop["flag"]:
                if max_steps is not None and self.step >= max_steps:
                    break
                if self.cfg.max_minutes and (time.time() - start) > self.cfg.max_minutes * 60:
                    break
                t0 = time.time()
                stats = self.train_step()
                self.wall_time += time.time() - t0
                for k, v in stats.items():
                    acc.setdefault(k, []).append(v)
                bar.update(round(time.time() - start) - bar.n if timed else self.cfg.batch_size * self.world)
                if self.step % 10 == 0:
                    bar.set_postfix({k: f"{stats[k]:.2f}" for k in ("loss_d", "loss_g", "match_acc", "recon")
                                     if k in stats})
                if main and self.step % self.cfg.sample_every == 0:
                    self._log_and_sample(acc, time.time() - t_last, self.images_seen - n_last)
                    acc, t_last, n_last = {}, time.time(), self.images_seen
                if main and self.step % self.cfg.checkpoint_every == 0:
                    self.save_state()
                    self.export(self.out / "checkpoint")
                for kimg in self.cfg.snapshot_kimg:
                    before = self.images_seen - self.cfg.batch_size * self.world
                    if main and before < kimg * 1000 <= self.images_seen:
                        self.export(self.out / "snapshots" / f"kimg-{int(kimg):05d}")
                while main and snapshots and time.time() - start >= snapshots[0] * 60:
                    self.export(self.out / "snapshots" / f"min-{snapshots.pop(0):g}")
        finally:
            bar.close()
            if main:
                signal.signal(signal.SIGTERM, previous)
        if main:
            if acc:  # however short the run, it ends with a log row and a sample grid
                self._log_and_sample(acc, time.time() - t_last, self.images_seen - n_last)
            self.save_state()
            self.export(self.out / "checkpoint")
        return self.out / "checkpoint"


def _jsonable(state):
    """random.Random.getstate() -> nested lists (JSON)."""
    return [list(x) if isinstance(x, tuple) else x for x in state]


def _from_jsonable(state):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
