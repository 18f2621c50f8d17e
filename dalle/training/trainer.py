"""The training loop: a plain loop over D and G phases, outside any nn.Module.

Each step draws a batch from the dataset (`TrainingData`, which may add near misses and group
weights), then runs the phases: during the first `warmup_kimg` thousand images G alone, learning by
reconstruction (about 3x cheaper per image, no D step); after it D, then G. Every phase's loss comes
from the objective (`objective.py`) and goes through one optimiser-step site (`_optimise`). Then the
EMA generator G_ema moves toward G; G_ema is what gets exported and shipped.

The networks run under bf16 autocast where the hardware has it; weights, optimizer state and every
loss stay fp32. Run state lives in `<out>/state/` (`state.py`), so `--resume` continues exactly.
Under `torchrun`/`accelerate launch` (WORLD_SIZE > 1) every rank draws its own batch, gradients
are averaged with all_reduce (data parallel), and rank 0 writes files.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import platform
import random
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..checkpoint import CheckpointError, save_checkpoint
from ..config import RESUMABLE_MODEL_FIELDS, ModelConfig, TrainConfig
from ..data.base import TrainingData
from ..device import cpu_has_bf16, pick_device
from ..images import grid_image, png_bytes, tensor_to_uint8, uint8_to_tensor
from ..models.discriminator import Discriminator
from ..models.generator import Generator
from ..models.image_encoder import ImageEncoder, LayoutEncoder
from ..text_encoder import encode_captions_cached
from . import state
from .augment import parse_policy
from .objective import STAT_NAMES, Batch, GANObjective, mismatched

LOG_FIELDS = ["step", "kimg", *STAT_NAMES, "img_per_s", "elapsed_s", "lr_scale"]


def lr_scale(progress: float, decay: float) -> float:
    """The learning-rate multiplier at `progress` (0 at the start of the run, 1 at its end): 1 until the
    last `decay` share of the run, then falling linearly to 0 at the end. decay=0: always 1."""
    if decay <= 0:
        return 1.0
    return min(1.0, max(0.0, 1.0 - progress) / decay)


def ema_beta(batch: int, images_seen: int, cfg: TrainConfig) -> float:
    """How much of G_ema stays per step: a half-life of ema_kimg thousand images (shorter early, ema_rampup)."""
    half_life = cfg.ema_kimg * 1000
    if cfg.ema_rampup > 0:
        half_life = min(half_life, images_seen * cfg.ema_rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


class Trainer:
    def __init__(self,
                 model_cfg: ModelConfig,  # the networks' shapes (written to every checkpoint)
                 cfg: TrainConfig,  # how to train them
                 data: TrainingData,  # batches, and the dataset's optional extras (`dalle/datasets.py` opens one)
                 command: str = "",  # the command line that started the run, recorded in config.json
                 ):
        self.model_cfg, self.cfg, self.data, self.command = model_cfg, cfg, data, command
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
        cfg.check(model_cfg)
        self._check_data()
        self.out = Path(cfg.out)
        self.data_rng = random.Random(cfg.seed * 1000 + self.rank)
        self.torch_rng = torch.Generator().manual_seed(cfg.seed + 7919 * (self.rank + 1))

        # One encoder pass (or a disk-cache hit) for every training caption plus the preview prompts.
        self.preview = data.preview_prompts()
        table = encode_captions_cached(model_cfg.text_encoder, data.captions + self.preview, cfg.cache_dir,
                                       max_tokens=model_cfg.max_tokens)
        if table.pooled.shape[1] != model_cfg.text_dim:
            raise ValueError(f"text encoder gives {table.pooled.shape[1]}-d embeddings, config says "
                             f"text_dim={model_cfg.text_dim}")
        n = len(data.captions)
        self.text_table = table[:n].to(self.device)
        self.preview_text = table[n:].to(self.device, torch.float32)
        g = torch.Generator().manual_seed(1234)
        self.preview_z = torch.randn(len(self.preview) * 8, model_cfg.z_dim, generator=g).to(self.device)
        self.preview_eps = torch.randn(len(self.preview) * 8, model_cfg.cond_dim, generator=g).to(self.device)

        self.step, self.images_seen, self.wall_time = 0, 0, 0.0
        # {"step", "kimg", "changed": {name: [old, new]}} per resume that changed settings; {"init_from", ...} per --init-from
        self.history: list[dict] = []
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.G = Generator(model_cfg).to(self.device)
        self.D = Discriminator(model_cfg).to(self.device)
        for word_order in (self.G.word_order, self.D.word_order):  # statistics of this run's captions (see word_order.py)
            if word_order is not None:
                word_order.fit(self.text_table)
        encoders = {"posterior": ImageEncoder, "layout": LayoutEncoder}
        self.E = encoders[cfg.recon](model_cfg).to(self.device) if cfg.recon in encoders else None
        if cfg.init_from:
            self.history = state.init_from(self.G, self.D, model_cfg, Path(cfg.init_from))
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
        autocast = cfg.mixed_precision and (self.device.type == "cuda" or cpu_has_bf16())
        self.objective = GANObjective(self.G, self.D, self.E, cfg, model_cfg, data, self.torch_rng, autocast)
        self.base_lr = [[g["lr"] for g in opt.param_groups] for opt in (self.opt_g, self.opt_d)]  # before --lr-decay

    def _check_data(self) -> None:
        """Refuse settings that need an extra this dataset does not supply, and its own contradicting options."""
        cfg, data = self.cfg, self.data
        for name in ("hard_negatives", "near_miss_weight", "d_near_miss_weight"):
            if getattr(cfg, name) > 0 and not data.supplies_negatives:
                raise ValueError(f"--{name.replace('_', '-')} needs a dataset that supplies near misses "
                                 f"(such as shapes); {type(data).__name__} does not")
        if cfg.d_wrong_images > 0 and not data.supplies_wrong_images:
            raise ValueError(f"--d-wrong-images needs a dataset that draws wrong images of a caption (such as "
                             f"shapes); {type(data).__name__} does not")
        if cfg.group_size > 1 and not data.supplies_groups:
            raise ValueError(f"--group-size needs a dataset that can draw a caption again (such as shapes); "
                             f"{type(data).__name__} does not")
        data.check(cfg.recon, cfg.recon_candidates, self.model_cfg.z_dim)

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

    # ------------------------------------------------------------------ one step
    def in_warmup(self) -> bool:
        """Whether G still learns by reconstruction alone (no D step)."""
        return self.images_seen < self.cfg.warmup_kimg * 1000

    def batch(self) -> Batch:
        """Real images and their captions from the dataset, other captions as D's mismatches (near misses for
        a `hard_negatives` share, when the dataset supplies them), wrong images of the first half's captions
        (`d_wrong_images`), and each group's spread weight."""
        cfg = self.cfg
        images, idx = self.data.sample(cfg.batch_size, self.data_rng, group=cfg.group_size)
        idx_t = torch.from_numpy(idx)
        wrong = mismatched(idx_t, self.torch_rng)
        near = None
        if cfg.uses_near_misses():
            near = torch.from_numpy(self.data.near_misses(idx, self.data_rng))
        if cfg.hard_negatives > 0:
            wrong = torch.where(torch.rand(len(idx), generator=self.torch_rng) < cfg.hard_negatives, near, wrong)
        real = uint8_to_tensor(images, self.device).contiguous(memory_format=torch.channels_last)
        text = self.text_table[idx_t.to(self.device)].to(self.device, torch.float32)
        out = Batch(real, text, self.text_table[wrong.to(self.device)].to(self.device, torch.float32), idx_t)
        if near is not None:
            out.near = (self.text_table[near.to(self.device)].to(self.device, torch.float32), (near != idx_t).to(self.device))
        if cfg.d_wrong_images > 0:  # wrong renders of the first half's captions
            half = idx[:len(idx) // 2]
            out.wrong = uint8_to_tensor(self.data.wrong_images(half, self.data_rng), self.device).contiguous(
                memory_format=torch.channels_last)
        if cfg.spread_weight > 0:
            weights = self.data.group_weights(idx_t[::cfg.group_size])
            out.group_weights = None if weights is None else weights.to(self.device)
        return out

    def _optimise(self, opt: torch.optim.Optimizer, modules: list[torch.nn.Module], loss: torch.Tensor) -> None:
        """The one optimiser-step site: zero the gradients, backward, average them over ranks, step."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.distributed:
            for module in modules:
                self._allreduce_grads(module)
        opt.step()

    def _allreduce_grads(self, module: torch.nn.Module) -> None:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def train_step(self) -> dict[str, float]:
        """One D phase and one G phase (during the warm-up, the G phase alone, by reconstruction), then the EMA."""
        cfg = self.cfg
        batch = self.batch()
        b = batch.real.shape[0]
        warmup = self.in_warmup()
        scale = self._schedule_lr() if cfg.lr_decay > 0 else 1.0
        stats: dict[str, float] = {}
        if not warmup:
            loss, d_stats = self.objective.d_loss(batch, r1=cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0)
            self._optimise(self.opt_d, [self.D], loss)
            stats.update(d_stats)
        loss, g_stats = self.objective.g_loss(batch, adversarial=not warmup)
        self._optimise(self.opt_g, [m for m in (self.G, self.E) if m is not None], loss)
        stats.update(g_stats)
        if cfg.lr_decay > 0:
            stats["lr_scale"] = scale
        self.images_seen += b * self.world
        beta = ema_beta(b * self.world, self.images_seen, cfg)
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.lerp_(p.detach(), 1 - beta)
        self.step += 1
        return stats

    # ------------------------------------------------------------------ samples and export
    @torch.no_grad()
    def sample_grid(self) -> bytes:
        cols = 8
        text = self.preview_text[torch.arange(len(self.preview), device=self.device).repeat_interleave(cols)]
        imgs, _ = self.G_ema(self.preview_z, text, eps=self.preview_eps)
        meta = {"prompts": self.preview, "step": self.step, "kimg": self.images_seen / 1000}
        return png_bytes(grid_image(tensor_to_uint8(imgs), len(self.preview), cols), meta)

    def settings(self) -> dict:
        """The run's training settings with the dataset's own options, flat (config.json's "train")."""
        return {**self.cfg.to_dict(), **self.data.options()}

    def checkpoint_config(self) -> dict:
        return {
            "model": self.model_cfg.to_dict(),
            "name": self.out.name,
            "text_encoder": self.model_cfg.text_encoder,
            "resolution": self.model_cfg.resolution,
            "dataset": self.data.describe(),
            "step": self.step,
            "images_seen": self.images_seen,
            "train": self.settings(),
            "training_compute": {"wall_time_s": round(self.wall_time, 1), "device": self.device_name(),
                                 "world_size": self.world, "command": self.command},
            "training_history": self.history,
        }

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"

    def export(self, dest: Path, grid: bytes | None = None) -> Path:
        extra = {"samples.png": grid or self.sample_grid(),  # and the captions, for the app's far-prompt note
                 "captions.json": json.dumps(list(self.data.captions)).encode()}
        log = self.out / "log.csv"
        if log.exists():
            extra["log.csv"] = log.read_bytes()
        return save_checkpoint(dest, self.checkpoint_config(), self.G_ema, self.D, extra)

    # ------------------------------------------------------------------ resumable state
    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D, **({"E": self.E} if self.E is not None else {})}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    def save_state(self) -> None:
        rngs = {"torch_global": torch.get_rng_state(), "torch_train": self.torch_rng.get_state()}
        if self.device.type == "cuda":
            rngs["cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"step": self.step, "images_seen": self.images_seen, "wall_time": self.wall_time,
                "model": self.model_cfg.to_dict(), "train": self.settings(), "history": self.history}
        state.save(self.out / "state", self._modules(), self._optimizers(), rngs, self.data_rng, meta)

    def load_state(self) -> bool:
        """Continue from `<out>/state` if there is one: weights, optimizers, RNGs, counters. A changed
        learning setting is recorded in the history; a changed network shape is refused."""
        folder = self.out / "state"
        meta = state.read_meta(folder)
        if meta is None:
            return False
        saved_model = ModelConfig.from_dict(meta["model"]).to_dict()
        fixed = [k for k in saved_model if k not in RESUMABLE_MODEL_FIELDS]
        if any(saved_model[k] != getattr(self.model_cfg, k) for k in fixed):
            raise CheckpointError(f"{folder / 'state.json'}: run was started with a different model config")
        self.history = meta.get("history", [])
        now = {**self.model_cfg.to_dict(), **self.settings()}
        # a setting only the saved run names (another dataset's option, a retired one) is no change
        saved = {k: v for k, v in {**saved_model, **meta["train"]}.items() if k in now}
        changed = state.setting_changes(saved, now)
        if changed:
            self.history.append({"step": meta["step"], "kimg": round(meta["images_seen"] / 1000, 1), "changed": changed})
        rngs = state.load(folder, meta, self._modules(), self._optimizers(), self.data_rng, self.device)
        torch.set_rng_state(rngs["torch_global"])
        self.torch_rng.set_state(rngs["torch_train"])
        if self.device.type == "cuda" and "cuda" in rngs:
            torch.cuda.set_rng_state(rngs["cuda"], self.device)
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
            w.writerows({k: r.get(k, "") for k in LOG_FIELDS} for r in rows)

    def _log_and_sample(self, acc: dict[str, list[float]], seconds: float, images: int) -> None:
        """One log.csv row (means of `acc`, img/s over the interval) and samples/step-N.png."""
        row = {k: round(sum(v) / len(v), 4) for k, v in acc.items()}
        row.update(step=self.step, kimg=round(self.images_seen / 1000, 3),
                   img_per_s=round(images / max(seconds, 1e-9), 2), elapsed_s=round(self.wall_time, 1))
        self._log_row(row)
        (self.out / "samples" / f"step-{self.step:07d}.png").write_bytes(self.sample_grid())

    def _progress_bar(self) -> tqdm:
        """A bar over the time budget (--max-minutes) or the images (--total-kimg), with the phase and img/s."""
        timed = self.cfg.max_minutes > 0
        total = int(self.cfg.total_kimg * 1000)
        return tqdm(total=round(self.cfg.max_minutes * 60) if timed else total,
                    initial=0 if timed else min(self.images_seen, total), unit="s" if timed else "img",
                    disable=self.rank != 0, dynamic_ncols=True, mininterval=2.0,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}" + (" s" if timed else " img")
                    + " [{elapsed}<{remaining}{postfix}]")

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
        timed = self.cfg.max_minutes > 0
        bar = self._progress_bar()
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
                    rate = (self.images_seen - n_last) / max(time.time() - t_last, 1e-9)
                    bar.set_postfix({"phase": "warm-up" if self.in_warmup() else "GAN", "img/s": f"{rate:.0f}",
                                     **{k: f"{stats[k]:.2f}" for k in ("loss_d", "loss_g", "match_acc", "recon")
                                        if k in stats}})
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
            if self.in_warmup():
                print(f"note: the run ended inside the reconstruction warm-up ({self.images_seen / 1000:.1f} of "
                      f"{self.cfg.warmup_kimg:g} kimg): its D is untrained, so its realism and match scores mean "
                      "nothing yet", file=sys.stderr)
        return self.out / "checkpoint"
