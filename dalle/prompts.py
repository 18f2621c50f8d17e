"""Prompt text before the text encoder: emoji become their CLDR short names, as captions spell them.

The text encoder's vocabulary has no emoji, so "😀" and "🍕" would both be one unknown token
and give the same image. `spell_out_emoji("😀 happy")` gives "grinning face happy": each emoji
sequence (ZWJ sequences, flags, keycaps, skin tones; FE0F optional) is looked up, longest first,
in the package's `dalle/data/emoji_names.json`, emojibase-data's labels normalised like the emoji
dataset's captions (`caption_label`: "flag: Japan" -> "flag, japan"). A character not in the table
falls back to its lower-case Unicode name; an unknown regional-indicator pair to "flag" and its
region code ("flag XX"). Symbols that are also plain text (©, ™, ↔) are spelled out only when
FE0F asks for their emoji form.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

from .data.emoji import NAMES_FILE, VARIATION_SELECTOR_16, names_key, skin_tone_label

REGIONAL_A, REGIONAL_Z = 0x1F1E6, 0x1F1FF
JOINERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}  # zero-width joiner, text/emoji presentation selectors, keycap
SKIN_TONES = range(0x1F3FB, 0x1F400)


def _is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" and ord(ch) >= 0x2300


MAX_SEQUENCE = 16  # code points, FE0F included, an emoji sequence may span (emojibase's longest: 10 without FE0F)
KEYCAP_BASES = frozenset("#*0123456789")  # the only ASCII characters an emoji sequence starts with


@functools.lru_cache(maxsize=1)
def emoji_names() -> Mapping[str, str]:
    """The shipped table {emoji sequence without FE0F: caption label}, read once per process (read-only)."""
    try:
        text = NAMES_FILE.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{NAMES_FILE} is missing; `python -m dalle prepare emoji-names` writes it") from e
    return MappingProxyType(json.loads(text))


def _match_emoji(text: str, i: int, names: Mapping[str, str]) -> tuple[int, str] | None:
    """(end, label) of the longest emoji sequence in `names` that starts at text[i], or None."""
    if text[i] == VARIATION_SELECTOR_16 or (ord(text[i]) < 0x80 and text[i] not in KEYCAP_BASES):
        return None
    for end in range(min(len(text), i + MAX_SEQUENCE), i, -1):
        span = text[i:end]
        key = names_key(span)
        label = names.get(key) or skin_tone_label(key, names)
        if label is None or (len(key) == 1 and not _is_emoji(key) and VARIATION_SELECTOR_16 not in span):
            continue  # "©" is text, "©️" the emoji
        return end, label
    return None


def spell_out_emoji(text: str) -> str:
    """The prompt with every emoji replaced by its caption label or Unicode name (see module doc)."""
    names = emoji_names()
    words: list[str] = []
    chars = list(text)
    i = 0
    while i < len(chars):
        found = _match_emoji(text, i, names)
        if found is not None:
            words.append(f" {found[1]} ")
            i = found[0]
            continue
        cp = ord(chars[i])
        if REGIONAL_A <= cp <= REGIONAL_Z and i + 1 < len(chars) and REGIONAL_A <= ord(chars[i + 1]) <= REGIONAL_Z:
            region = "".join(chr(ord("A") + ord(c) - REGIONAL_A) for c in chars[i:i + 2])
            words.append(f" flag {region} ")
            i += 2
            continue
        if cp in JOINERS or cp in SKIN_TONES:
            words.append(" ")
        elif _is_emoji(chars[i]):
            words.append(f" {unicodedata.name(chars[i], '').lower()} ")
        else:
            words.append(chars[i])
        i += 1
    return " ".join("".join(words).split())
