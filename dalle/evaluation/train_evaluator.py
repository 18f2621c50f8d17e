"""Train the emoji evaluator (contrastive image tower + projection of the frozen text encoder).

    python -m dalle.evaluation.train_evaluator [--epochs 15] [--out checkpoints/evaluator] [--data-root data]

Trains on the real 64 px emoji images only (every style), each step pairing an image with one of
its dataset captions drawn at random. About 30% of emoji labels (all styles together, chosen
by a hash of the label; `emoji_data.is_heldout_label`) are held out: the evaluator never sees
them, they give the validation R-precision, and `python -m dalle evaluate` draws every emoji
prompt and real reference from them. The rule, the fraction and a sha256 of the held-out label
list are recorded in config.json, with the architecture, the augmentation, the optimiser, the
per-epoch history and the full command (`training.command`). The defaults are the shipped
evaluator's: a stride-1 stem at 64 px and half of the images shown as their detail only
(`detail_only`), which is what makes 32 px images upsampled to 64 px score below the real 64 px
ones (docs/evaluation.md, "What the 64 px evaluator can and cannot see"). No generated or blurred
image is ever trained on. One CPU thread by default; about 15 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from .evaluator import STEMS, Evaluator, EvaluatorArch, save_evaluator
from .stats import draw_distractors, r_precision_hits

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "checkpoints" / "evaluator"
DEFAULT_ARCH = EvaluatorArch()  # the shipped evaluator's architecture
DEFAULT_EPOCHS = 15
DEFAULT_SHIFT = 0.0625  # random translation, as a fraction of the side (4 px at 64 px)
DEFAULT_JITTER = 0.0  # colour_jitter amount (off: contrast and saturation carry skin tones; not measured)
DEFAULT_DETAIL = 0.5  # detail_only probability: what makes the evaluator see crude images as crude


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


def colour_jitter(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Light, label-keeping colour jitter of images [B, 3, H, W] in [-1, 1]: per image, contrast against the
    white background and saturation each scaled by a factor in [1 - amount, 1 + amount]. Hues never change
    (skin tones and colour names are part of the labels), and white stays white."""
    if amount <= 0:
        return x
    b = len(x)
    contrast = 1 + amount * (2 * torch.rand(b, 1, 1, 1) - 1)
    saturation = 1 + amount * (2 * torch.rand(b, 1, 1, 1) - 1)
    x = 1 + (x - 1) * contrast
    grey = x.mean(dim=1, keepdim=True)
    return (grey + (x - grey) * saturation).clamp(-1, 1)


def detail_only(x: torch.Tensor, p: float, gain: float = 4.0) -> torch.Tensor:
    """With probability `p` per image, replace an image [B, 3, H, W] in [-1, 1] by its detail on white:
    1 + gain * (x - blur(x)) (gain 4; blur: 3x3 box, edges replicated), clamped; the rest pass unchanged. An emoji's
    line work, with the colours of its edges, still names it; training on it as well makes the evaluator
    recognise emoji by their detail, not only by their colour layout."""
    if p <= 0:
        return x
    pick = torch.rand(len(x)) < p
    if not pick.any():
        return x
    sel = x[pick]
    blur = F.avg_pool2d(F.pad(sel, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    out = x.clone()
    out[pick] = (1 + gain * (sel - blur)).clamp(-1, 1)
    return out


def training_step(model: Evaluator, opt: torch.optim.Optimizer, images: np.ndarray, pooled: torch.Tensor,
                  also_true: torch.Tensor, shift: float = DEFAULT_SHIFT, jitter: float = DEFAULT_JITTER,
                  detail: float = DEFAULT_DETAIL) -> float:
    """One optimiser step on a batch: uint8 images [B, R, R, 3] (augmented here) and the pooled text embeddings
    [B, text_dim] of their captions; `also_true` as in `contrastive_loss`. -> the batch's loss."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    if shift > 0:
        x = translation(x, ratio=shift)  # light augmentation: shift a few px, white padding
    x = colour_jitter(x, jitter)
    x = detail_only(x, detail)
    img = model.image_embed(x)
    txt = model.text_embed(pooled)
    loss = contrastive_loss(img, txt, model.logit_scale.exp().clamp(max=100), also_true)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def train_evaluator(data_root: str | Path = "data", out: str | Path = DEFAULT_OUT, epochs: int = DEFAULT_EPOCHS,
                    batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 0.05, seed: int = 0,
                    threads: int = 1, heldout_fraction: float = HELDOUT_FRACTION, arch: EvaluatorArch | None = None,
                    shift: float = DEFAULT_SHIFT, jitter: float = DEFAULT_JITTER, detail: float = DEFAULT_DETAIL,
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
    arch = dataclasses.replace(arch or DEFAULT_ARCH, text_dim=int(table.shape[1]), resolution=64)
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
            losses.append(training_step(model, opt, data.images[idx], table[caps], also, shift, jitter, detail))
            sched.step()
            step += 1
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
                 "captions": "all of an image's dataset captions (label; label, style style; label, tags; and "
                             "whatever else the data holds), one drawn per image per step",
                 "split": "validation = the held-out labels (heldout_labels); training = every other label",
                 "train_images": int(len(train_idx)), "val_images": int(len(val_idx))},
        "heldout_labels": {"rule": HELDOUT_RULE, "fraction": heldout_fraction,
                           "labels": len({labels[i] for i in val_idx}), "images": int(len(val_idx)),
                           "sha256": heldout_labels_sha256(labels, heldout_fraction),
                           "sha256_of": "the sorted distinct held-out labels joined by newlines (UTF-8); "
                                        "emoji_data.heldout_labels_sha256"},
        "objective": "symmetric InfoNCE with a learned temperature; other in-batch captions that also "
                     "describe an image are not used as its negatives",
        "augmentation": {"translation": f"random shift up to {shift:g} of the side "
                                        f"({int(64 * shift + 0.5)} px at 64 px), white padding",
                         "colour_jitter": (f"contrast against white and saturation, each x U[{1 - jitter:g}, "
                                           f"{1 + jitter:g}] per image; hue unchanged" if jitter > 0 else "none"),
                         "detail_only": (f"with probability {detail:g} an image is replaced by its detail on white, "
                                         "1 + 4 (x - box3x3(x)), clamped" if detail > 0 else "none"),
                         "no flips, no rotations, no blur": "they change an emoji's meaning or hide its detail"},
        "optimizer": {"name": "AdamW", "lr": lr, "weight_decay": weight_decay, "schedule": "warmup + cosine",
                      "batch_size": batch_size, "epochs": epochs, "steps": step},
        "seed": seed,
        "command": command_line(epochs, batch_size, lr, weight_decay, seed, threads, arch, shift, jitter, detail),
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


def command_line(epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int, threads: int,
                 arch: EvaluatorArch, shift: float, jitter: float, detail: float) -> str:
    """The command that trains this evaluator again (every setting spelled out; data root and output left
    at their defaults)."""
    return (f"python -m dalle.evaluation.train_evaluator --epochs {epochs} --batch-size {batch_size} --lr {lr:g} "
            f"--weight-decay {weight_decay:g} --seed {seed} --threads {threads} "
            f"--widths {' '.join(map(str, arch.widths))} --stem {arch.stem} --stage-convs {arch.stage_convs} "
            f"--last-stage-convs {arch.last_stage_convs} --embed-dim {arch.embed_dim} --shift {shift:g} "
            f"--jitter {jitter:g} --detail {detail:g}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dalle.evaluation.train_evaluator", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default="data")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    d = DEFAULT_ARCH
    p.add_argument("--widths", type=int, nargs="+", default=list(d.widths),
                   help=f"stem width, then one stride-2 stage per value (default {' '.join(map(str, d.widths))})")
    p.add_argument("--stem", choices=STEMS, default=d.stem, help=f"(default {d.stem})")
    p.add_argument("--stage-convs", type=int, default=d.stage_convs,
                   help=f"stride-1 convs per stage after its stride-2 conv (default {d.stage_convs})")
    p.add_argument("--last-stage-convs", type=int, default=d.last_stage_convs,
                   help=f"the same for the last stage (default {d.last_stage_convs})")
    p.add_argument("--embed-dim", type=int, default=d.embed_dim, help=f"(default {d.embed_dim})")
    p.add_argument("--shift", type=float, default=DEFAULT_SHIFT,
                   help=f"random translation as a fraction of the side (default {DEFAULT_SHIFT:g})")
    p.add_argument("--jitter", type=float, default=DEFAULT_JITTER,
                   help=f"colour jitter amount (contrast and saturation; default {DEFAULT_JITTER:g})")
    p.add_argument("--detail", type=float, default=DEFAULT_DETAIL,
                   help=f"probability of showing an image's detail only (default {DEFAULT_DETAIL:g})")
    a = p.parse_args(argv)
    arch = dataclasses.replace(d, widths=tuple(a.widths), stem=a.stem, stage_convs=a.stage_convs,
                               last_stage_convs=a.last_stage_convs, embed_dim=a.embed_dim)
    try:
        train_evaluator(a.data_root, a.out, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                        weight_decay=a.weight_decay, seed=a.seed, threads=a.threads, arch=arch, shift=a.shift,
                        jitter=a.jitter, detail=a.detail)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
