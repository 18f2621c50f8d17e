"""The shipped emoji-name table (dalle/data/emoji_names.json) and the function that generates it."""

from __future__ import annotations

import json
import subprocess

import pytest

from dalle.data.emoji import (
    LABELS_PACKAGE,
    NAMES_FILE,
    PACKAGES,
    build_emoji_names,
    caption_label,
    emoji_names,
    names_json,
    names_key,
    skin_tone_label,
    tarball_name,
    verify_integrity,
)

FAKE = [  # emojibase en/data.json entries, trimmed to the fields used
    {"emoji": "👍️", "label": "thumbs up", "skins": [
        {"emoji": "👍🏽", "label": "thumbs up: medium skin tone"}]},
    {"emoji": "🏽", "label": "medium skin tone"},
    {"emoji": "🇯🇵", "label": "flag: Japan"},
    {"emoji": "🇯", "label": "regional indicator J"},
    {"emoji": "🧑‍🦲", "label": "person: bald", "skins": [
        {"emoji": "🧑🏽‍🦲", "label": "person: medium skin tone, bald"}]},  # the tone is not last: kept
]


def test_emoji_names_normalises_and_leaves_out_what_it_can_rebuild():
    names = emoji_names(FAKE)
    assert names == {"👍": "thumbs up", "🏽": "medium skin tone", "🇯🇵": "flag, japan", "🧑‍🦲": "person, bald",
                     "🧑🏽‍🦲": "person, medium skin tone, bald"}
    assert skin_tone_label("👍🏽", names) == "thumbs up, medium skin tone"
    assert skin_tone_label("👍", names) is None and skin_tone_label("🏽👍", names) is None
    text = names_json(names)
    assert json.loads(text) == names and list(json.loads(text)) == sorted(names) and text.endswith("}\n")


def _labels_tarball(tmp_path):
    """The pinned emojibase-data tarball from npm's cache (or the registry), or skip."""
    try:
        done = subprocess.run(["npm", "pack", LABELS_PACKAGE, "--prefer-offline", "--pack-destination", str(tmp_path)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=180)
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"npm unavailable: {e}")
    path = tmp_path / tarball_name(LABELS_PACKAGE)
    if done.returncode != 0 or not path.is_file():
        pytest.skip(f"{LABELS_PACKAGE} neither in npm's cache nor fetchable: {done.stderr.strip()[-300:]}")
    verify_integrity(path, PACKAGES[LABELS_PACKAGE])
    return path


def test_shipped_table_is_what_the_pinned_tarball_gives(tmp_path):
    tarball = _labels_tarball(tmp_path)
    assert NAMES_FILE.read_text(encoding="utf-8") == names_json(build_emoji_names(tarball)), \
        "dalle/data/emoji_names.json is stale: python -m dalle prepare emoji-names"

    # every emojibase sequence (but lone regional-indicator letters) gets its caption label back
    import tarfile
    with tarfile.open(tarball) as tar:
        data = json.load(tar.extractfile("package/en/data.json"))
    names = json.loads(NAMES_FILE.read_text(encoding="utf-8"))
    wrong = [(e["emoji"], e["label"]) for entry in data for e in (entry, *(entry.get("skins") or []))
             if not e["label"].startswith("regional indicator")
             and (names.get(names_key(e["emoji"])) or skin_tone_label(names_key(e["emoji"]), names))
             != caption_label(e["label"])]
    assert not wrong, wrong[:10]
