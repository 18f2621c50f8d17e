"""Emoji in prompts are spelled out for the text encoder, which has no emoji in its vocabulary."""

import pytest

from dalle.data.emoji import caption_label
from dalle.prompts import emoji_names, spell_out_emoji


@pytest.mark.parametrize("text,expected", [
    ("😀", "grinning face"),
    ("❤️", "red heart"),  # the CLDR short name, not the Unicode name ("heavy black heart")
    ("❤", "red heart"),  # FE0F is optional
    ("🍕", "pizza"),
    ("🍕 on a plate", "pizza on a plate"),  # text around an emoji is kept
    ("a 🚀 over the ❤️ moon", "a rocket over the red heart moon"),
    ("🇯🇵", "flag, japan"),  # "flag: Japan", normalised as the captions are (caption_label)
    ("🇦🇦", "flag AA"),  # a regional-indicator pair that is no flag: its letters
    ("thumbs up 👍🏽", "thumbs up thumbs up, medium skin tone"),  # skin tone, derived from the base's label
    ("🧑🏻‍🤝‍🧑🏿", "people holding hands, light skin tone, dark skin tone"),
    ("🫱🏻‍🫲🏿", "handshake, light skin tone, dark skin tone"),  # a variant the table stores itself
    ("👩‍💻", "woman technologist"),  # ZWJ sequences: the whole sequence, longest first
    ("👩‍❤️‍💋‍👨", "kiss, woman, man"),
    ("👨‍👩‍👧‍👦", "family, man, woman, girl, boy"),
    ("1️⃣", "keycap, 1"),
    ("🏴󠁧󠁢󠁳󠁣󠁴󠁿", "flag, scotland"),  # a tag sequence
    ("☈", "thunderstorm"),  # a symbol not in the table: its Unicode name
    ("©️", "copyright"),  # a text symbol asked for as emoji
    ("a red circle at the top", "a red circle at the top"),  # plain text unchanged
    ("сердце 心 © 12", "сердце 心 © 12"),  # other scripts, plain symbols and digits unchanged
])
def test_spell_out_emoji(text, expected):
    assert spell_out_emoji(text) == expected


def test_different_emoji_give_different_text():
    faces = ["😀", "😢", "🍕", "🚀", "🇯🇵", "🇫🇷"]
    assert len({spell_out_emoji(f) for f in faces}) == len(faces)


def test_the_table_is_loaded_once_and_read_only():
    names = emoji_names()
    assert emoji_names() is names
    assert names["🍕"] == "pizza" and len(names) > 1000
    with pytest.raises(TypeError):
        names["🍕"] = "slice"  # type: ignore[index]


def test_table_labels_are_caption_labels():
    names = emoji_names()
    assert list(names) == sorted(names)
    assert all(label == caption_label(label) for label in names.values())
    assert all("\ufe0f" not in key for key in names)
