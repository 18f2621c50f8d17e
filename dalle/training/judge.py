"""Training the text-match judge (`dalle/judge.py`) on a dataset's real images: its loss and its loop.

    python -m dalle train-judge checkpoints/shapes-32
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..data.base import TrainingData
from ..images import uint8_to_tensor
from ..judge import DISCRIMINATOR_TRUNK, HeadOnDiscriminator, Judge, JudgeConfig
from ..models.discriminator import Discriminator
from ..text_encoder import TextCondition
from .augment import translation
from .objective import mismatched


@dataclass
class JudgeSettings:
    steps: int = 2000  # batches of real images: about 20 min on one busy CPU core at 64 px
    batch_size: int = 64  # images per batch, each with its own caption and its rivals
    lr: float = 2e-3  # Adam's peak step size: a short warm-up, then cosine decay to near 0 (one cycle)
    shift: float = 0.0625  # random translation, as a fraction of the side: G does not centre every object alike
    contrast_weight: float = 1.0  # in-batch contrastive term: each image's caption above the batch's others
    seed: int = 0  # one seed: same data order, same weights
    trunk: str = "own"  # "own": a `Judge` network of its own; "discriminator": a fresh head on the checkpoint's
    # discriminator trunk, frozen (`HeadOnDiscriminator`); which one a dataset gets is measured (docs/recipe.md)


def judge_loss(judge: Judge | HeadOnDiscriminator, real: torch.Tensor, own: TextCondition, rivals: list[TextCondition],
               wrong: torch.Tensor | None, same: torch.Tensor | None = None, contrast_weight: float = 0.0,
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """The judge's loss on one batch of real images [B, 3, R, R]:
    - softplus(-m) for each image with its own caption, softplus(m) for it with each caption in `rivals` (B
      prompts each) and for each wrong image [B, 3, R, R] (or None) with the own caption;
    - with `contrast_weight` > 0, plus that times the symmetric in-batch cross-entropy of the scaled cosines
      (image i against every caption of the batch, and back, `match_matrix`), where same [B, B] (True: caption j also describes
      image i) masks pairs that are not negatives.
    -> (scalar loss, {"loss", "match_acc": share of rivals and wrong images the own pair beats})."""
    img = judge.features(real)
    m_own = judge.match(img, own)
    negatives = [judge.match(img, text) for text in rivals]
    if wrong is not None:
        negatives.append(judge.match(judge.features(wrong), own))
    loss = F.softplus(-m_own).mean() + sum(F.softplus(m).mean() for m in negatives)
    if contrast_weight > 0:
        cos = judge.match_matrix(img, own)
        if same is not None:
            cos = cos.masked_fill(same & ~torch.eye(len(img), dtype=torch.bool, device=img.device), float("-inf"))
        target = torch.arange(len(img), device=img.device)
        loss = loss + contrast_weight * (F.cross_entropy(cos, target) + F.cross_entropy(cos.T, target)) / 2
    beats = torch.stack([(m_own > m).float().mean() for m in negatives]).mean()
    return loss, {"loss": loss.item(), "match_acc": beats.item()}


def train_judge(model_cfg: ModelConfig, data: TrainingData, table: TextCondition, settings: JudgeSettings,
                log: Callable[[str], None] = print, discriminator: Discriminator | None = None,
                ) -> tuple[Judge | HeadOnDiscriminator, dict]:
    """A judge for `data` and a checkpoint of model `model_cfg`, trained `settings.steps` batches. table: the
    conditions of `data.captions`, in order. `discriminator`: the checkpoint's D, whose trunk a "discriminator"
    judge keeps. -> (the judge in eval mode, its record for judge.json)."""
    torch.manual_seed(settings.seed)
    if settings.trunk == "own":
        judge = Judge(JudgeConfig.for_model(model_cfg))
    elif settings.trunk == "discriminator":
        if discriminator is None:
            raise ValueError("a judge on the discriminator's trunk needs the checkpoint's discriminator")
        judge = HeadOnDiscriminator(model_cfg, discriminator)
    else:
        raise ValueError(f"judge trunk {settings.trunk!r}: expected 'own' or 'discriminator'")
    word_order = judge.word_order if isinstance(judge, Judge) else judge.net.word_order
    if word_order is not None:
        word_order.fit(table)
    opt = torch.optim.Adam([p for p in judge.parameters() if p.requires_grad], lr=settings.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=max(settings.steps, 2),
                                                   pct_start=0.05)
    rng, g = random.Random(settings.seed), torch.Generator().manual_seed(settings.seed)
    start, stats = time.perf_counter(), {}
    for step in range(settings.steps):
        images, idx = data.sample(settings.batch_size, rng)
        idx_t = torch.from_numpy(idx)
        rivals = [table[mismatched(idx_t, g)]]
        if data.supplies_negatives:
            rivals.append(table[torch.from_numpy(data.near_misses(idx, rng))])
        wrong = (translation(uint8_to_tensor(data.wrong_images(idx, rng)), g, settings.shift)
                 if data.supplies_wrong_images else None)
        real = translation(uint8_to_tensor(images), g, settings.shift)
        loss, stats = judge_loss(judge, real, table[idx_t], rivals, wrong, same=idx_t[:, None] == idx_t[None],
                                 contrast_weight=settings.contrast_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % 250 == 0 or step == settings.steps - 1:
            log(f"judge step {step + 1}/{settings.steps}: loss {stats['loss']:.3f}, match_acc "
                f"{stats['match_acc']:.3f}, {time.perf_counter() - start:.0f} s")
    record = {"kind": "judge", "settings": asdict(settings),
              "trunk": "its own" if settings.trunk == "own" else DISCRIMINATOR_TRUNK, "seconds": round(time.perf_counter() - start, 1),
              "images": settings.steps * settings.batch_size, "dataset": data.describe().get("name"),
              "negatives": ["another caption"] + (["a near miss"] if data.supplies_negatives else [])
              + (["a wrong image of the caption"] if data.supplies_wrong_images else []),
              "final": stats}
    return judge.eval().requires_grad_(False), record
