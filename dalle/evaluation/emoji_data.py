"""The emoji dataset as the evaluation needs it: images, per-image entries and caption indices; the held-out
labels (`is_heldout_label`, images the evaluator never trains on) and the held-out captions
(`heldout_caption_pairs`, phrases no image is trained with)."""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.captioned import CaptionedImages
from ..data.emoji import HELDOUT_CAPTION_RULE, canonical_caption, load_emoji

__all__ = ["HELDOUT_CAPTION_RULE", "HELDOUT_FRACTION", "HELDOUT_RULE", "EmojiEvalData", "heldout_caption_pairs",
           "heldout_labels_sha256", "is_heldout_label", "label_split", "load_emoji_eval", "prepare_command"]


@dataclass
class EmojiEvalData:
    data: CaptionedImages
    entries: list[dict]  # per image: hexcode, style, label, captions (from emoji-<R>.json)
    canonical: list[int]  # per image: index into data.captions of "label, style style"
    plain: list[int]  # per image: index into data.captions of the bare label

    @property
    def labels(self) -> list[str]:
        return [e["label"] for e in self.entries]

    @property
    def heldout_captions(self) -> list[tuple[str, str]]:
        """`heldout_caption_pairs` of the entries."""
        return heldout_caption_pairs(self.entries)


def heldout_caption_pairs(entries: list[dict]) -> list[tuple[str, str]]:
    """(held-out caption, label) for every label that has one (`HELDOUT_CAPTION_RULE`), sorted by label.

    `entries`: emoji-<R>.json's per-image entries; a label's images all record the same "heldout_caption"
    (data prepared before held-out captions records none: the list is empty). No image was trained with these
    captions; each names the images of its label.
    """
    pairs: dict[str, str] = {}
    for e in entries:
        held = e.get("heldout_caption")
        if held and pairs.setdefault(e["label"], held) != held:
            raise ValueError(f"label {e['label']!r} records two held-out captions; prepare again")
    return sorted(((c, lab) for lab, c in pairs.items()), key=lambda p: p[1])


def prepare_command(data_root: str | Path, resolution: int) -> str:
    """The command that prepares the emoji data under `data_root` at `resolution` px."""
    where = "" if Path(data_root) == Path("data") else f" --data-root {shlex.quote(str(data_root))}"
    return f"python -m dalle prepare emoji --resolution {resolution}{where}"


def load_emoji_eval(data_root: str | Path = "data", resolution: int = 64) -> EmojiEvalData:
    """Raises FileNotFoundError ("... run `python -m dalle prepare emoji --resolution R` first", the exact
    `prepare_command`) when the data is not prepared at this resolution."""
    root = Path(data_root) / "emoji"
    for path in (root / f"emoji-{resolution}.npz", root / f"emoji-{resolution}.json"):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run `{prepare_command(data_root, resolution)}` first")
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
    leaked = [c for c, _ in heldout_caption_pairs(entries) if c in index]
    if leaked:
        raise ValueError(f"{root}: held-out caption {leaked[0]!r} is among the training captions; prepare again")
    return EmojiEvalData(data, entries, canonical, plain)


HELDOUT_FRACTION = 0.3
HELDOUT_RULE = ("held out = labels whose int(sha256(label as UTF-8).hexdigest()[:8], 16) % 10000 < "
                "fraction * 10000 (both styles of a label together; emoji_data.is_heldout_label)")
# HELDOUT_CAPTION_RULE (from dalle.data.emoji): which caption of each label no image is trained with.


def is_heldout_label(label: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """Deterministic split by emoji label: True for the ~`fraction` of labels the evaluator never trains on.

    All styles of one emoji share a label, so they always fall on the same side.
    """
    h = int(hashlib.sha256(label.encode("utf-8")).hexdigest()[:8], 16)
    return (h % 10_000) < fraction * 10_000


def label_split(labels: list[str], fraction: float = HELDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Per-image labels -> (training image indices, held-out image indices), both sorted int arrays."""
    held = np.array([is_heldout_label(lab, fraction) for lab in labels], dtype=bool)
    return np.flatnonzero(~held), np.flatnonzero(held)


def heldout_labels_sha256(labels: list[str], fraction: float = HELDOUT_FRACTION) -> str:
    """sha256 of the sorted, distinct held-out labels joined by newlines (UTF-8): a fingerprint of the split."""
    held = sorted({lab for lab in labels if is_heldout_label(lab, fraction)})
    return hashlib.sha256("\n".join(held).encode("utf-8")).hexdigest()
