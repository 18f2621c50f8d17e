"""The emoji dataset as the evaluation needs it: images, per-image entries and caption indices."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.captioned import CaptionedImages
from ..data.emoji import canonical_caption, load_emoji


@dataclass
class EmojiEvalData:
    data: CaptionedImages
    entries: list[dict]  # per image: hexcode, style, label, captions (from emoji-<R>.json)
    canonical: list[int]  # per image: index into data.captions of "label, style style"
    plain: list[int]  # per image: index into data.captions of the bare label

    @property
    def labels(self) -> list[str]:
        return [e["label"] for e in self.entries]


def load_emoji_eval(data_root: str | Path = "data", resolution: int = 64) -> EmojiEvalData:
    """Raises FileNotFoundError ("... run `python -m dalle prepare emoji` first") when not prepared."""
    root = Path(data_root) / "emoji"
    data = load_emoji(root, resolution)
    entries = json.loads((root / f"emoji-{resolution}.json").read_text(encoding="utf-8"))["images"]
    index = {c: i for i, c in enumerate(data.captions)}
    canonical, plain = [], []
    for e in entries:
        c = canonical_caption(e)
        if c not in index or e["label"] not in index:
            raise ValueError(f"{root}: caption {c!r} is not among the dataset's captions; prepare again")
        canonical.append(index[c])
        plain.append(index[e["label"]])
    return EmojiEvalData(data, entries, canonical, plain)


def in_validation_split(hexcode: str, fraction: float = 0.1) -> bool:
    """Deterministic split by emoji code point(s): both styles of one emoji fall on the same side."""
    h = int(hashlib.sha256(hexcode.upper().encode()).hexdigest()[:8], 16)
    return (h % 10_000) < fraction * 10_000


def split_indices(entries: list[dict], fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    val = np.array([in_validation_split(e["hexcode"], fraction) for e in entries])
    return np.flatnonzero(~val), np.flatnonzero(val)
