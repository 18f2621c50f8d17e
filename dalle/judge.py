"""The text-match judge: how well an image shows its prompt, scored by a network the generator never trains against.

G learns from the discriminator's match head whatever pleases that head, right or wrong, so the head cannot
also be an honest judge of G's images. The judge is a network of the discriminator's shape (`Discriminator`,
of which only the match logit is used) whose match head was trained on the dataset's real images alone
(`dalle/training/judge.py`): the own caption is a match; another caption, a near miss, and an image the dataset
draws to come close to the caption without showing it (the shapes world: a faint extra shape, a missing or an
extra object) are not. It never sees a generated image and no gradient of it reaches G.

A judge either has its own trunk, or keeps the checkpoint's discriminator's trunk frozen and trains only a fresh
match head on it (`frozen_trunk`): that trunk has seen G's images, so it can see what G gets wrong, while the
head on it was never something G could please. The checkpoint folder keeps it as `judge.safetensors` (a
frozen-trunk judge: its head only) with `judge.json` (how it was trained).

    python -m dalle train-judge checkpoints/shapes-32
"""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import CheckpointError, half_state, load_checked, load_tensors, refuse_pickles, save_tensors
from .config import ModelConfig
from .models.discriminator import Discriminator

JUDGE_FILE, JUDGE_RECORD = "judge", "judge.json"  # <folder>/judge.safetensors and its record


TRUNK = ("from_rgb.", "blocks.")  # the parameters of D's trunk (images -> 4x4 region map)


def shares_trunk(record: dict | None) -> bool:
    """Whether a judge (by its judge.json record) keeps its checkpoint's discriminator trunk: then one trunk pass
    serves both."""
    return bool(((record or {}).get("settings") or {}).get("frozen_trunk"))


def save_judge(judge: Discriminator, folder: str | Path, record: dict) -> None:
    """Write `judge.safetensors` (fp16) and `judge.json` into a checkpoint folder. A frozen-trunk judge keeps only
    its own head: its trunk is the folder's discriminator's."""
    folder = Path(folder)
    tensors = half_state(judge)
    if shares_trunk(record):
        tensors = {k: v for k, v in tensors.items() if not k.startswith(TRUNK)}
    save_tensors(tensors, folder, JUDGE_FILE)
    (folder / JUDGE_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def load_judge(folder: str | Path, model_cfg: ModelConfig) -> tuple[Discriminator, dict] | None:
    """(the folder's judge, its record), or None when the folder has none. Safetensors and JSON only."""
    folder = Path(folder)
    if not (folder / f"{JUDGE_FILE}.safetensors").exists():
        return None
    refuse_pickles(folder)
    try:
        record = json.loads((folder / JUDGE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / JUDGE_RECORD}: missing or not JSON ({e})") from None
    tensors = load_tensors(folder, JUDGE_FILE)
    if shares_trunk(record):
        trunk = {k: v for k, v in load_tensors(folder, "discriminator").items() if k.startswith(TRUNK)}
        tensors = {**trunk, **tensors}
    judge = Discriminator(model_cfg)
    load_checked(judge, tensors, folder / f"{JUDGE_FILE}.safetensors")
    return judge.eval().requires_grad_(False), record
