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
from ..judge import TRUNK
from ..models.discriminator import Discriminator
from ..text_encoder import TextCondition
from .objective import mismatched


@dataclass
class JudgeSettings:
    steps: int = 2000  # batches of real images; 5 to 18 min on one busy CPU core for the shipped 32 px models
    batch_size: int = 32  # images per batch, each with its own caption and its rivals
    lr: float = 1e-3  # Adam step size (betas 0, 0.99 as the GAN's D)
    seed: int = 0  # one seed: same data order, same weights
    frozen_trunk: bool = True  # keep the checkpoint's D trunk (it has seen G's images) and train only a fresh
    # match head on it; False: a whole fresh network (on shapes-32 its AUROC on generated images was 0.46, not 0.73)


def judge_loss(judge: Discriminator, real: torch.Tensor, own: TextCondition, rivals: list[TextCondition],
               wrong: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
    """The judge's loss on one batch: softplus(-m) for each real image [B, 3, R, R] with its own caption, softplus(m)
    for the same images with each caption in `rivals` (B prompts each) and for the wrong images [B, 3, R, R] (or
    None) with their own captions. -> (scalar loss, {"match_acc": share of rivals and wrong images the own pair
    beats})."""
    r = judge.features(real)
    m_own = judge.heads(r, own)[1].float()
    negatives = [judge.heads(r, text)[1].float() for text in rivals]
    if wrong is not None:
        negatives.append(judge.heads(judge.features(wrong), own)[1].float())
    loss = F.softplus(-m_own).mean() + sum(F.softplus(m).mean() for m in negatives)
    beats = torch.stack([(m_own > m).float().mean() for m in negatives]).mean()
    return loss, {"loss": loss.item(), "match_acc": beats.item()}


def train_judge(model_cfg: ModelConfig, data: TrainingData, table: TextCondition, settings: JudgeSettings,
                log: Callable[[str], None] = print, discriminator: Discriminator | None = None,
                ) -> tuple[Discriminator, dict]:
    """A judge for `data`, trained `settings.steps` batches. table: the conditions of `data.captions`, in order.
    `discriminator`: the checkpoint's D, whose trunk a `frozen_trunk` judge keeps.
    -> (the judge in eval mode, its record for judge.json)."""
    torch.manual_seed(settings.seed)
    judge = Discriminator(model_cfg)
    if settings.frozen_trunk:
        if discriminator is None:
            raise ValueError("a frozen-trunk judge needs the checkpoint's discriminator")
        trunk = {k: v for k, v in discriminator.state_dict().items() if k.startswith(TRUNK)}
        judge.load_state_dict(trunk, strict=False)
        for name, p in judge.named_parameters():
            p.requires_grad_(not name.startswith(TRUNK))
    if judge.word_order is not None:
        judge.word_order.fit(table)
    opt = torch.optim.Adam([p for p in judge.parameters() if p.requires_grad], lr=settings.lr, betas=(0.0, 0.99))
    rng, g = random.Random(settings.seed), torch.Generator().manual_seed(settings.seed)
    start, stats = time.perf_counter(), {}
    for step in range(settings.steps):
        images, idx = data.sample(settings.batch_size, rng)
        idx_t = torch.from_numpy(idx)
        rivals = [table[mismatched(idx_t, g)]]
        if data.supplies_negatives:
            rivals.append(table[torch.from_numpy(data.near_misses(idx, rng))])
        wrong = uint8_to_tensor(data.wrong_images(idx, rng)) if data.supplies_wrong_images else None
        loss, stats = judge_loss(judge, uint8_to_tensor(images), table[idx_t], rivals, wrong)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == settings.steps - 1:
            log(f"judge step {step + 1}/{settings.steps}: loss {stats['loss']:.3f}, match_acc "
                f"{stats['match_acc']:.3f}, {time.perf_counter() - start:.0f} s")
    record = {"kind": "judge", "settings": asdict(settings),
              "trunk": "the checkpoint's discriminator, frozen" if settings.frozen_trunk else "its own", "seconds": round(time.perf_counter() - start, 1),
              "images": settings.steps * settings.batch_size, "dataset": data.describe().get("name"),
              "negatives": ["another caption"] + (["a near miss"] if data.supplies_negatives else [])
              + (["a wrong image of the caption"] if data.supplies_wrong_images else []),
              "final": stats}
    return judge.eval().requires_grad_(False), record
