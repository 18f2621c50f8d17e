"""What the emoji evaluator can and cannot see: R-precision and FID of real, degraded and generated images.

    python -m dalle.evaluation.yardstick [--evaluator DIR ...] [--checkpoint DIR ...] [--degrade 32 ...]
                                         [--num-samples 1000] [--seed 0] [--truncation 1.0] [--data-root data]
                                         [--threads 1] [--json PATH]

A check of the yardstick itself, not of a checkpoint. For each evaluator (default `checkpoints/evaluator`) it
draws the prompts, distractors and A/B halves exactly as `python -m dalle evaluate` does (`emoji.emoji_reference`:
only the evaluator's held-out labels, same seed) and scores several sets of images of the same prompts, each at
the evaluator's resolution (64 px):

* `real 64`: the real prompt images. Their R-precision is the evaluation's real ceiling and their FID against
  half B is its matched floor.
* `real 64->R->64`, one per `--degrade R` (default 32): the same real images downsampled to R px (antialiased
  bilinear) and upsampled again (bilinear, as the evaluator reads every smaller image): crude but right, the
  best a perfect R px generator could show. A yardstick that cannot rank these below `real 64` cannot tell
  crude from crisp.
* `<checkpoint> generated`, one per `--checkpoint` (default `checkpoints/emoji-32`): one image per prompt with
  the evaluation's own seeds (`1_000_000*seed + i`) at `--truncation`, upsampled to 64 px the same way.

Columns: R-precision (top-1 of the true canonical caption against the evaluation's 99 distractors, with a 95%
interval), how far it lies below the real images' R-precision (paired over the same prompts, with a 95%
interval: a margin is clear when the interval excludes 0) and FID against half B in the evaluator's feature
space (torchmetrics), next to the matched floor.
Nothing is written unless `--json` is given. Evaluators are compared on the same images; numbers from different
evaluators are different scales (FID especially), so read each evaluator's rows against its own `real 64` row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from .emoji import _fid_kid, default_evaluator_dir, emoji_reference, resize_uint8
from .emoji_data import EmojiEvalData, load_emoji_eval
from .numbers import fmt
from .stats import mean_and_ci, r_precision_hits

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = _REPO / "checkpoints" / "emoji-32"
DEFAULT_DEGRADE = (32,)


def degrade(images: np.ndarray, size: int) -> np.ndarray:
    """Real uint8 images [N, R, R, 3] -> the same images made crude at `size` px and brought back to R px:
    antialiased bilinear down to `size`, bilinear up again (the evaluator's own upsampling)."""
    return resize_uint8(resize_uint8(images, size), images.shape[1])


def generate(checkpoint: str | Path, prompts: list[str], seed: int, truncation: float, log=print) -> np.ndarray:
    """One image per prompt from a checkpoint, as the evaluation's main set draws it (sample i: seed
    1_000_000*seed + i): uint8 [N, R, R, 3] at the checkpoint's resolution."""
    from ..pipeline import TextToImagePipeline
    from .sampling import Generated, sample_seeds

    t0 = time.time()
    pipe = TextToImagePipeline.from_pretrained(checkpoint, device="cpu")
    pixels, _, _ = Generated(pipe)(prompts, sample_seeds(seed * 1_000_000, len(prompts)), truncation)
    log(f"yardstick: {len(prompts)} images from {checkpoint} ({time.time() - t0:.0f}s)")
    return pixels


def label_kind(label: str) -> str:
    """"skin tone" (a label naming a skin tone: colour alone tells most of it), "flag", or "other"."""
    if "skin tone" in label:
        return "skin tone"
    return "flag" if label.startswith("flag") else "other"


KINDS = ("skin tone", "flag", "other")


def score_sets(evaluator, data: EmojiEvalData, sets: dict[str, np.ndarray], num_samples: int, seed: int,
               text_table: torch.Tensor) -> list[dict]:
    """Score image sets of the evaluation's prompts with one evaluator.

    `sets`: name -> uint8 images [P, R, R, 3], image i made for prompt i of `emoji_reference(..., num_samples,
    seed)` (any R; the evaluator resizes to its own). `text_table`: pooled text-encoder output of every dataset
    caption. The set `real R` (the real prompt images at the data's R px) is always scored first. -> one row per
    set: name, R-precision (mean, ci95, n) over all prompts, per `label_kind` and per style, how far it lies below the real
    images' (paired over the same prompts: mean, ci95), FID against half B and the matched floor (the real row's
    FID).
    """
    ref = emoji_reference(data.labels, getattr(evaluator, "info", None), num_samples, seed)
    real_emb = evaluator.embed_uint8(data.data.images)
    text_emb = evaluator.embed_text(text_table)
    true_t = text_emb[[data.canonical[i] for i in ref.prompts]]
    pool_t = text_emb[torch.as_tensor(data.canonical)]
    real_name = f"real {data.data.images.shape[1]}"
    named = {real_name: real_emb[ref.prompts]}
    for name, images in sets.items():
        if len(images) != len(ref.prompts):
            raise ValueError(f"set {name!r}: {len(images)} images for {len(ref.prompts)} prompts")
        named[name] = evaluator.embed_uint8(images)
    subset = int(min(500, len(ref.prompts), len(ref.half_b)))
    fid = _fid_kid(evaluator, real_emb[ref.half_b], named, subset, seed)
    rows = []
    real_hits = r_precision_hits(named[real_name], true_t, pool_t, ref.distractors).astype(np.float64)
    kinds = np.array([label_kind(data.labels[i]) for i in ref.prompts])
    styles = np.array([str(data.entries[i].get("style")) for i in ref.prompts])
    for name, emb in named.items():
        hits = r_precision_hits(emb, true_t, pool_t, ref.distractors)
        rows.append({"set": name, "r_precision": mean_and_ci(hits),
                     "r_precision_by_kind": {k: mean_and_ci(hits[kinds == k]) for k in KINDS},
                     "r_precision_by_style": {st: mean_and_ci(hits[styles == st]) for st in sorted(set(styles))},
                     "r_precision_below_real": mean_and_ci(real_hits - hits),  # paired: same prompts
                     "fid": fid[name]["fid"], "fid_floor_matched": fid[real_name]["fid"], "n": int(len(emb))})
    return rows


def prompt_images(data: EmojiEvalData, evaluator_info: dict | None, num_samples: int, seed: int):
    """(canonical captions, real images) of the evaluation's prompts for this evaluator's held-out record."""
    ref = emoji_reference(data.labels, evaluator_info, num_samples, seed)
    return [data.data.captions[data.canonical[i]] for i in ref.prompts], data.data.images[ref.prompts]


def yardstick(evaluator_dirs: list[str | Path], checkpoints: list[str | Path], degrade_to: list[int],
              num_samples: int = 1000, seed: int = 0, truncation: float = 1.0, data_root: str | Path = "data",
              log=print) -> dict:
    """Measure each evaluator on real, degraded and generated images of the same prompts. -> {"evaluators":
    [{"dir", "sha256", "resolution", "rows"}], "settings": {...}}."""
    from ..text_encoder import encode_captions_cached
    from .evaluator import load_evaluator

    evaluators = [load_evaluator(d) for d in evaluator_dirs]
    resolution = evaluators[0].arch.resolution
    if any(ev.arch.resolution != resolution for ev in evaluators):
        raise ValueError("the evaluators judge at different resolutions; measure them separately")
    data = load_emoji_eval(data_root, resolution)
    generated: dict[tuple, np.ndarray] = {}  # (checkpoint, prompts) -> pixels, shared by evaluators
    out = {"settings": {"num_samples": num_samples, "seed": seed, "truncation": truncation,
                        "data": f"{Path(data_root) / 'emoji'} at {resolution} px", "degrade": list(degrade_to),
                        "checkpoints": [str(c) for c in checkpoints]}, "evaluators": []}
    for folder, ev in zip(evaluator_dirs, evaluators):
        table = encode_captions_cached(ev.text_encoder_name, data.data.captions, Path(data_root) / "cache").pooled
        prompts, real = prompt_images(data, ev.info, num_samples, seed)
        sets = {f"real {resolution}->{r}->{resolution}": degrade(real, r) for r in degrade_to}
        for ckpt in checkpoints:
            key = (str(ckpt), tuple(prompts))
            if key not in generated:
                generated[key] = generate(ckpt, prompts, seed, truncation, log)
            sets[f"{Path(ckpt).name} generated"] = generated[key]
        rows = score_sets(ev, data, sets, num_samples, seed, table)
        out["evaluators"].append({"dir": str(folder), "sha256": ev.info.get("weights_sha256_actual"),
                                  "resolution": resolution, "num_params": ev.num_params,
                                  "val_r_precision": ((ev.info.get("training") or {}).get("val") or {})
                                  .get("r_precision"), "rows": rows})
    return out


def format_yardstick(result: dict) -> str:
    """The text table of `yardstick`'s result: one block per evaluator."""
    lines = []
    for ev in result["evaluators"]:
        lines.append(f"evaluator {ev['dir']} (sha256 {str(ev['sha256'])[:12]}, {ev['num_params']} params, "
                     f"val R-precision {fmt(ev['val_r_precision'])})")
        lines.append(f"  {'set':<22} {'R-precision':>13} {'below real (paired)':>20} {'FID':>8} {'FID/floor':>9}")
        for r in ev["rows"]:
            rp, below = r["r_precision"], r["r_precision_below_real"]
            ratio = r["fid"] / r["fid_floor_matched"] if r["fid_floor_matched"] else None
            lines.append(f"  {r['set']:<22} {fmt(rp['mean'])} ± {fmt(rp['ci95'])} {fmt(below['mean']):>12} ± "
                         f"{fmt(below['ci95'])} {fmt(r['fid'], 4):>8} {fmt(ratio, 2):>9}")
        for key, what in (("r_precision_by_kind", "kind of label"), ("r_precision_by_style", "style")):
            groups = ev["rows"][0].get(key) or {}
            if not groups:
                continue
            lines.append(f"  R-precision by {what}:" + " " * max(1, 14 - len(what))
                         + "".join(f"{g} ({v['n']})".rjust(17) for g, v in groups.items()))
            for r in ev["rows"]:
                lines.append(f"  {r['set']:<30}" + "".join(f"{fmt(v['mean']):>17}" for v in r[key].values()))
    s = result["settings"]
    lines.append(f"(n={s['num_samples']} prompts of the held-out labels, seed {s['seed']}, psi {s['truncation']}; "
                 f"FID vs half B; floor = the real row)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dalle.evaluation.yardstick", description=__doc__.split("\n")[0])
    p.add_argument("--evaluator", action="append", default=None,
                   help="evaluator folder; repeat to compare several (default checkpoints/evaluator)")
    p.add_argument("--checkpoint", action="append", default=None,
                   help="emoji checkpoint whose generated images to score; repeat for several "
                        "(default checkpoints/emoji-32; --checkpoint none for real images only)")
    p.add_argument("--degrade", type=int, action="append", default=None,
                   help="also score the real images brought down to this many px and up again (default 32)")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--data-root", default="data", help="needs DATA_ROOT/emoji/emoji-64.* (the evaluator's "
                                                       "resolution)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    checkpoints = [c for c in (a.checkpoint or [str(DEFAULT_CHECKPOINT)]) if c != "none"]
    try:
        result = yardstick(a.evaluator or [str(default_evaluator_dir())], checkpoints,
                           a.degrade or list(DEFAULT_DEGRADE), a.num_samples, a.seed, a.truncation, a.data_root)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}")
        return 2
    print(format_yardstick(result))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
