"""Train the emoji evaluator (contrastive image tower + projection of the frozen text encoder).

    python -m dalle.evaluation.train_evaluator [--epochs 15] [--out checkpoints/evaluator]

Trains on the real emoji images only (both styles), each step pairing an image with one of
its dataset captions drawn at random. About 30% of emoji labels (both styles together, chosen
by a hash of the label; `emoji_data.is_heldout_label`) are held out: the evaluator never sees
them, they give the validation R-precision, and `python -m dalle evaluate` draws every emoji
prompt and real reference from them. The rule, the fraction and a sha256 of the held-out label
list are recorded in config.json. Runs on one CPU thread by default; a few epochs take a few
minutes.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..text_encoder import DEFAULT_ENCODER, encode_captions_cached
from ..training.augment import translation
from .emoji_data import HELDOUT_FRACTION, HELDOUT_RULE, heldout_labels_sha256, label_split, load_emoji_eval
from .evaluator import Evaluator, EvaluatorArch, save_evaluator
from .stats import draw_distractors, r_precision_hits

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "checkpoints" / "evaluator"


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
                     also_true: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE. also_true[i, j] (i != j): caption j also describes image i -> not a negative."""
    logits = scale * img @ txt.t()
    logits = logits.masked_fill(also_true, float("-inf"))
    target = torch.arange(len(img))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def r_precision_of(model: Evaluator, images: np.ndarray, true_caps: list[int], labels: list[str],
                   pool_caps: list[int], pool_labels: list[str], table: torch.Tensor, seed: int = 0) -> float:
    img = model.embed_uint8(images)
    text_all = model.embed_text(table)
    dis = draw_distractors(labels, pool_labels, 99, seed)
    hits = r_precision_hits(img, text_all[true_caps], text_all[pool_caps], dis)
    return float(hits.mean())


def train_evaluator(data_root: str | Path = "data", out: str | Path = DEFAULT_OUT, epochs: int = 15,
                    batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 0.05, seed: int = 0,
                    threads: int = 1, heldout_fraction: float = HELDOUT_FRACTION, arch: EvaluatorArch | None = None,
                    text_encoder: str = DEFAULT_ENCODER, log=print) -> Path:
    """Train the evaluator on the labels outside the held-out split and save it into `out`; returns `out`."""
    start = time.time()
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    ed = load_emoji_eval(data_root, 64)
    data = ed.data
    table = encode_captions_cached(text_encoder, data.captions, Path(data_root) / "cache").pooled
    arch = arch or EvaluatorArch(text_dim=int(table.shape[1]))
    model = Evaluator(arch, text_encoder)
    train_idx, val_idx = label_split(ed.labels, heldout_fraction)
    log(f"evaluator: {model.num_params} params; {len(train_idx)} train / {len(val_idx)} val images; "
        f"{len(data.captions)} captions")

    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    total = epochs * steps_per_epoch
    warmup = min(100, total // 10)
    def lr_factor(s: int) -> float:  # linear warm-up, then cosine decay to zero
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    caption_sets = [set(c) for c in data.image_captions]
    labels = ed.labels
    pool_caps = ed.canonical  # distractors: canonical captions of every image ...
    pool_labels = labels  # ... whose label differs from the true one
    probe = np.random.default_rng(seed).choice(train_idx, size=min(500, len(train_idx)), replace=False)
    history = []
    step = 0
    for epoch in range(epochs):
        model.train()
        order = train_idx.copy()
        rng.shuffle(order)
        t0, losses = time.time(), []
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            caps = [rng.choice(data.image_captions[i]) for i in idx]
            also = torch.tensor([[j != i and caps[j] in caption_sets[ii] for j in range(len(idx))]
                                 for i, ii in enumerate(idx)])
            x = torch.from_numpy(data.images[idx]).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            x = translation(x, ratio=0.0625)  # light augmentation: shift up to 4 px, white padding
            img = model.image_embed(x)
            txt = model.text_embed(table[caps])
            loss = contrastive_loss(img, txt, model.logit_scale.exp().clamp(max=100), also)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
        model.eval()
        val_rp = r_precision_of(model, data.images[val_idx], [ed.canonical[i] for i in val_idx],
                                [labels[i] for i in val_idx], pool_caps, pool_labels, table)
        tr_rp = r_precision_of(model, data.images[probe], [ed.canonical[i] for i in probe],
                               [labels[i] for i in probe], pool_caps, pool_labels, table)
        row = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), "train_r_precision": round(tr_rp, 4),
               "val_r_precision": round(val_rp, 4), "epoch_s": round(time.time() - t0, 1)}
        history.append(row)
        log(f"epoch {epoch + 1}/{epochs}: loss {row['loss']:.3f}  R-precision train {tr_rp:.3f} "
            f"val {val_rp:.3f}  ({row['epoch_s']:.0f}s)")

    training = {
        "data": {"dataset": "emoji", "source": data.info.get("source"), "images": len(data),
                 "captions": "all dataset captions (label; label, style style; label, tags), one drawn per "
                             "image per step",
                 "split": "validation = the held-out labels (heldout_labels); training = every other label",
                 "train_images": int(len(train_idx)), "val_images": int(len(val_idx))},
        "heldout_labels": {"rule": HELDOUT_RULE, "fraction": heldout_fraction,
                           "labels": len({labels[i] for i in val_idx}), "images": int(len(val_idx)),
                           "sha256": heldout_labels_sha256(labels, heldout_fraction),
                           "sha256_of": "the sorted distinct held-out labels joined by newlines (UTF-8); "
                                        "emoji_data.heldout_labels_sha256"},
        "objective": "symmetric InfoNCE with a learned temperature; other in-batch captions that also "
                     "describe an image are not used as its negatives",
        "augmentation": "random translation up to 1/16 of the side, white padding",
        "optimizer": {"name": "AdamW", "lr": lr, "weight_decay": weight_decay, "schedule": "warmup + cosine",
                      "batch_size": batch_size, "epochs": epochs, "steps": step},
        "seed": seed,
        "compute": {"wall_time_s": round(time.time() - start, 1), "threads": torch.get_num_threads(),
                    "device": f"CPU ({platform.machine()})"},
        "history": history,
        "train_probe": {"r_precision": history[-1]["train_r_precision"], "images": int(len(probe))},
        "val": {"r_precision": history[-1]["val_r_precision"], "images": int(len(val_idx)),
                "protocol": "true canonical caption ('label, style style') vs 99 canonical captions of "
                            "images with other labels, cosine similarity, top-1"},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    folder = save_evaluator(model, out, training)
    log(f"wrote {folder} ({time.time() - start:.0f}s)")
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dalle.evaluation.train_evaluator", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default="data")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    try:
        train_evaluator(a.data_root, a.out, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                        threads=a.threads)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
