"""Emoji in prompts are spelled out for the text encoder, which has no emoji in its vocabulary."""

import pytest

from dalle.prompts import spell_out_emoji


@pytest.mark.parametrize("text,expected", [
    ("😀", "grinning face"),
    ("🍕 on a plate", "slice of pizza on a plate"),
    ("❤️ red heart", "heavy black heart red heart"),  # the emoji presentation selector goes
    ("thumbs up 👍🏽", "thumbs up thumbs up sign"),  # so does the skin-tone modifier
    ("🇯🇵", "flag JP"),  # a regional-indicator pair is a flag
    ("👩‍💻", "woman personal computer"),  # joined sequences: each part named
    ("a red circle at the top", "a red circle at the top"),  # plain text unchanged
    ("сердце 心 ©", "сердце 心 ©"),  # other scripts and plain symbols unchanged
])
def test_spell_out_emoji(text, expected):
    assert spell_out_emoji(text) == expected


def test_different_emoji_give_different_text():
    faces = ["😀", "😢", "🍕", "🚀", "🇯🇵", "🇫🇷"]
    assert len({spell_out_emoji(f) for f in faces}) == len(faces)
