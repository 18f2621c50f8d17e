"""Prompt text before the text encoder: emoji characters become their Unicode names.

The text encoder's vocabulary has no emoji, so "😀" and "🍕" would both be one unknown token
and give the same image. `spell_out_emoji("😀 happy")` gives "grinning face happy". A flag
(two regional-indicator letters) becomes "flag" and its region code, e.g. "🇯🇵" -> "flag JP".
"""

from __future__ import annotations

import unicodedata

REGIONAL_A, REGIONAL_Z = 0x1F1E6, 0x1F1FF
JOINERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}  # zero-width joiner, text/emoji presentation selectors, keycap
SKIN_TONES = range(0x1F3FB, 0x1F400)


def _is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" and ord(ch) >= 0x2300


def spell_out_emoji(text: str) -> str:
    """The prompt with every emoji character replaced by its lower-case Unicode name (see module doc)."""
    words: list[str] = []
    chars = list(text)
    i = 0
    while i < len(chars):
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
