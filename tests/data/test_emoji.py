"""prepare_emoji / load_emoji on a tiny fake set of npm tarballs (npm is never called): two PNG styles, one SVG
style in Iconify JSON, emojibase labels, keywords and shortcodes."""

import hashlib
import io
import json
import re
import subprocess
import tarfile

import numpy as np
import pytest
from PIL import Image

from dalle.data import emoji
from dalle.data.emoji import PACKAGES, canonical_caption, load_emoji, prepare_emoji, sri_sha512, tarball_name
from dalle.evaluation.emoji_data import heldout_caption_pairs, load_emoji_eval

COLORS = {"1f600.png": (250, 200, 0), "1f44d.png": (0, 0, 255), "1f44d-1f3fd.png": (150, 100, 50),
          "2764-fe0f.png": (255, 0, 0), "1fae8.png": (0, 200, 0)}


def _png(color):
    """64x64 RGBA: transparent with an opaque 32x32 centre of `color`."""
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    img.paste(Image.new("RGBA", (32, 32), (*color, 255)), (16, 16))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _tgz(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            data = data if isinstance(data, bytes) else json.dumps(data).encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _datasource(style):
    def e(unified, image, **extra):
        return {"unified": unified, "image": image, "short_name": image, "category": "Smileys & Emotion",
                "has_img_google": True, "has_img_twitter": style != "twitter" or image != "2764-fe0f.png",
                "has_img_apple": True, "has_img_facebook": True, **extra}
    thumbs = e("1F44D", "1f44d.png", skin_variations={"1F3FD": e("1F44D-1F3FD", "1f44d-1f3fd.png")})
    return [e("1F600", "1f600.png"), thumbs, e("2764-FE0F", "2764-fe0f.png"), e("1FAE8", "1fae8.png")]


EMOJIBASE = [
    {"label": "grinning face", "hexcode": "1F600", "tags": ["face", "grin", "smile", "happy", "143"]},
    {"label": "thumbs up", "hexcode": "1F44D", "tags": ["hand", "up", "approve", "yes"],
     "skins": [{"label": "thumbs up: medium skin tone", "hexcode": "1F44D-1F3FD", "tone": 3}]},
    {"label": "red heart", "hexcode": "2764", "tags": ["heart", "love"]},  # no FE0F, as in emojibase
    {"label": "smile", "hexcode": "1F642", "tags": ["smile"]},
]  # 1FAE8 has no label: skipped
SHORTCODES = {  # en/shortcodes/<source>.json: a shortcode or a list of them per hexcode
    "cldr": {"1F600": "grinning_face", "1F44D": "thumbs_up", "2764": "red_heart"},
    "github": {"1F600": "grinning", "1F44D": ["+1", "thumbsup"], "2764": "heart"},
    "iamcal": {"1F600": "grinning", "1F642": "slightly_smiling_face"},
    "emojibase": {"1F44D": ["thumbsup", "yes"], "1F44D-1F3FD": ["thumbsup_tone3"]},
    "joypixels": {"2764": ["heart", "smile"]},  # "smile" is another emoji's label: not a caption of this one
}


def _rect_svg_body(color, x=8, y=8, w=16, h=16):
    return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="rgb{tuple(color)}"/>'


def _iconify(colors):
    """icons.json and chars.json of a 32-unit Iconify emoji set: a centred square of each emoji's colour.

    chars.json leaves out the skin-tone icon (matched by its name) and the alias; one icon is hidden."""
    icons = {"grinning-face": {"body": _rect_svg_body(colors["1f600.png"])},
             "thumbs-up": {"body": _rect_svg_body(colors["1f44d.png"])},
             "thumbs-up-medium": {"body": _rect_svg_body(colors["1f44d-1f3fd.png"])},
             "red-heart": {"body": _rect_svg_body(colors["2764-fe0f.png"])},
             "shaking-face": {"body": _rect_svg_body(colors["1fae8.png"])},
             "grinning-face-old": {"body": _rect_svg_body((0, 0, 0)), "hidden": True}}
    aliases = {"grinning-face-flipped": {"parent": "grinning-face", "hFlip": True}}
    chars = {"1f600": "grinning-face", "1f44d": "thumbs-up", "2764": "red-heart", "1fae8": "shaking-face"}
    return {"prefix": "fake", "icons": icons, "aliases": aliases, "width": 32, "height": 32}, chars


@pytest.fixture
def tarballs(tmp_path, monkeypatch):
    def no_npm(*args, **kwargs):
        raise AssertionError("npm must not run in tests")
    monkeypatch.setattr(subprocess, "run", no_npm)
    work = tmp_path / "npm"
    work.mkdir()
    for style, spec in emoji.DATASOURCE_STYLES.items():
        files = {"emoji.json": _datasource(style), "LICENSE": b"MIT"}
        files.update({f"img/{style}/64/{name}": _png(c) for name, c in COLORS.items()})
        files["img/apple/64/1f600.png"] = _png((0, 0, 0))
        _tgz(work / tarball_name(spec), files)
    icons, chars = _iconify(COLORS)
    _tgz(work / tarball_name(emoji.ICONIFY_STYLES["fluent"]), {"icons.json": icons, "chars.json": chars,
                                                                "info.json": {"license": {"spdx": "MIT"}}})
    _tgz(work / tarball_name(emoji.LABELS_PACKAGE), {"en/data.json": EMOJIBASE, **{
        f"en/shortcodes/{src}.json": SHORTCODES.get(src, {}) for src in emoji.SHORTCODE_SOURCES}})
    return work, {spec: sri_sha512(work / tarball_name(spec)) for spec in PACKAGES}


def test_prepare_and_load(tmp_path, tarballs, capsys):
    work, pins = tarballs
    out = tmp_path / "out"
    npz = prepare_emoji(out, 64, work_dir=work, integrity=pins)
    printed = capsys.readouterr().out
    assert npz == out / "emoji-64.npz" and "skipped 3" in printed and "fluent 4" in printed

    meta = json.loads((out / "emoji-64.json").read_text())
    assert [p["integrity"] for p in meta["packages"]] == [pins[s] for s in PACKAGES]
    assert {"name": "@iconify-json/fluent-emoji-flat", "version": "1.2.6",
            "integrity": pins["@iconify-json/fluent-emoji-flat@1.2.6"]} in meta["packages"]
    licences = {a["license"] for a in meta["attribution"]}
    assert {"Apache License 2.0", "CC-BY 4.0", "MIT"} <= licences
    assert any(a["what"] == "fluent style images" and a["license"] == "MIT" and "Microsoft" in a["copyright"]
               for a in meta["attribution"])
    assert meta["skipped"] == {"google: no label": 1, "twitter: no label": 1, "fluent: no label": 1}
    assert meta["iconify_matched"] == {"fluent": {"chars.json": 4, "by name": 1, "hidden": 1, "no label": 1}}
    styles = [(e["hexcode"], e["style"]) for e in meta["images"]]
    assert len(styles) == 11 and ("2764-FE0F", "twitter") not in styles  # has_img_twitter false
    assert [h for h, s in styles if s == "fluent"] == ["2764-FE0F", "1F44D", "1F44D-1F3FD", "1F600"]  # code points

    data = load_emoji(out, 64)
    assert data.name == "emoji" and data.images.shape == (11, 64, 64, 3) and data.images.dtype == np.uint8
    assert "attribution" in data.info and data.info["styles"] == {"google": 4, "twitter": 3, "fluent": 4}
    for entry, img, caps in zip(meta["images"], data.images, data.image_captions):
        color = COLORS[entry["hexcode"].lower() + ".png"]
        assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[32, 32]) == color  # on white
        assert [data.captions[i] for i in caps] == entry["captions"]
        assert canonical_caption(entry) in entry["captions"] and entry["label"] in entry["captions"]

    by_key = {(e["hexcode"], e["style"]): e["captions"] for e in meta["images"]}
    assert by_key[("1F600", "google")][:3] == [
        "grinning face", "grinning face, google style", "grinning face, smile, happy"]
    assert by_key[("1F44D-1F3FD", "twitter")][:3] == [
        "thumbs up, medium skin tone", "thumbs up, medium skin tone, twitter style",
        "thumbs up, medium skin tone, approve, hand"]
    assert by_key[("1F600", "fluent")][1] == "grinning face, fluent style"
    assert by_key[("2764-FE0F", "google")][0] == "red heart"
    assert all(c == c.lower() for caps in by_key.values() for c in caps)
    assert len(set(data.captions)) == len(data.captions)


def test_captions_hold_every_source_but_the_heldout_one(tmp_path, tarballs):
    work, pins = tarballs
    prepare_emoji(tmp_path / "emoji", 64, work_dir=work, integrity=pins)
    meta = json.loads((tmp_path / "emoji" / "emoji-64.json").read_text())
    assert meta["heldout_caption_rule"] == emoji.HELDOUT_CAPTION_RULE
    entries = meta["images"]
    every = {}  # label -> training captions and held-out caption of all its images
    for e in entries:
        every.setdefault(e["label"], set()).update(e["captions"] + [e["heldout_caption"]])
    # shortcodes in words, keywords as "<keyword> emoji", the skin variant's with its tone
    assert every["grinning face"] >= {"grinning", "grin emoji", "happy emoji", "smile emoji"}
    assert every["thumbs up"] >= {"+1", "thumbsup", "yes", "approve emoji", "yes emoji", "hand emoji"}
    assert every["thumbs up, medium skin tone"] >= {"+1, medium skin tone", "thumbsup, medium skin tone",
                                                    "approve emoji, medium skin tone"}
    assert every["red heart"] >= {"heart", "love emoji"}
    assert "smile" not in every["red heart"]  # another emoji's label
    assert not every["grinning face"] & {"face emoji", "143 emoji"}  # a word of the label; a number

    training = {c for e in entries for c in e["captions"]}
    pairs = heldout_caption_pairs(entries)
    assert [lab for _, lab in pairs] == sorted(every)  # every label here has a phrase of its own
    for held, label in pairs:
        assert held not in training  # in no image's training captions, of any label or style
        assert held in emoji.label_phrases(EMOJIBASE, SHORTCODES)[label]
        assert {e["heldout_caption"] for e in entries if e["label"] == label} == {held}  # all its styles agree

    ev = load_emoji_eval(tmp_path, 64)  # the evaluation's view: same pairs, none among the captions
    assert ev.heldout_captions == pairs and not set(ev.data.captions) & {c for c, _ in pairs}
    assert [ev.data.captions[i] for i in ev.canonical] == [canonical_caption(e) for e in entries]


def test_heldout_choice_follows_the_rule():
    captions = {"a": {"a", "x", "y", "shared"}, "b": {"b", "shared", "z"}, "c": {"c", "shared"}}
    candidates = {"a": ["x", "y", "shared"], "b": ["shared", "z"], "c": ["shared"]}
    chosen = emoji.choose_heldout_captions(captions, candidates)
    assert chosen["b"] == "z" and "c" not in chosen  # a caption another label has is never held out
    h = int(hashlib.sha256(b"a").hexdigest()[:8], 16)
    assert chosen["a"] == ["x", "y"][h % 2]


def test_label_phrases_keep_distinctive_keywords():
    data = [{"label": f"animal {k}", "hexcode": f"1F4{k:02X}", "tags": ["animal", "furry", f"kind{'x' * k}"]}
            for k in range(3)]
    phrases = emoji.label_phrases(data, {}, max_labels=2)
    assert phrases["animal 0"] == ["kind emoji"]  # "furry" names 3 labels (> 2); "animal" is in the label
    assert emoji.keyword_phrase("12:30") is None and emoji.keyword_phrase("I\u2019m") is None
    assert emoji.keyword_phrase("red hair") == "red hair emoji" and emoji.keyword_phrase("ma\u2019am") == "ma'am emoji"
    assert emoji.keyword_phrase("bus", "oncoming bus") is None
    assert emoji.shortcode_words("slightly_smiling_face") == "slightly smiling face"
    assert [emoji.shortcode_words(c) for c in ("thumbsup", "+1", "-1", "flag-jp")] == ["thumbsup", "+1", "-1",
                                                                                      "flag jp"]


def test_scoped_tarball_name():
    assert tarball_name("@iconify-json/fluent-emoji-flat@1.2.6") == "iconify-json-fluent-emoji-flat-1.2.6.tgz"
    assert tarball_name("emojibase-data@17.0.0") == "emojibase-data-17.0.0.tgz"
    assert emoji.split_spec("@scope/name@1.0.0") == ("@scope/name", "1.0.0")
    with pytest.raises(ValueError):
        emoji.split_spec("@scope/name")


@pytest.mark.parametrize("resolution", [17, 32, 64])
def test_svg_rasterised_on_white_at_the_resolution(resolution):
    icons, _ = _iconify(COLORS)
    icons["icons"]["dot"] = {"body": '<circle cx="16" cy="16" r="10" fill="#0000ff"/>'
                                     '<rect x="0" y="0" width="8" height="32" fill="#ff0000" opacity="0.5"/>'}
    img = emoji.svg_to_rgb(emoji.iconify_svg(icons, "dot"), resolution)
    assert img.shape == (resolution, resolution, 3) and img.dtype == np.uint8
    c = resolution // 2
    assert tuple(img[c, c]) == (0, 0, 255) and tuple(img[0, -1]) == (255, 255, 255)
    assert tuple(img[c, 0]) == (255, 128, 128) or abs(int(img[c, 0, 1]) - 127) <= 1  # half red on white
    edge = {tuple(p) for p in img.reshape(-1, 3)} - {(0, 0, 255), (255, 255, 255)}
    assert any(b > 0 and r < 255 for r, _, b in edge)  # antialiased rim: blue mixed with white


def test_iconify_aliases_flip_and_names_match():
    icons, chars = _iconify(COLORS)
    half = {"prefix": "t", "width": 32, "height": 32,
            "icons": {"left": {"body": '<rect x="0" y="0" width="16" height="32" fill="#00ff00"/>'}},
            "aliases": {"right": {"parent": "left", "hFlip": True}}}
    left, right = (emoji.svg_to_rgb(emoji.iconify_svg(half, n), 32) for n in ("left", "right"))
    assert tuple(left[16, 4]) == (0, 255, 0) and tuple(left[16, 28]) == (255, 255, 255)
    assert tuple(right[16, 28]) == (0, 255, 0) and tuple(right[16, 4]) == (255, 255, 255)
    assert emoji.iconify_svg(half, "missing") is None
    keys = {emoji.name_key("thumbs up: medium skin tone"): "1F44D-1F3FD", emoji.name_key("grinning face"): "1F600",
            emoji.name_key("grinning face flipped"): "1F600"}
    names, counts = emoji.iconify_hexcodes(icons, chars, keys)
    assert names["thumbs-up-medium"] == "1F44D-1F3FD" and names["grinning-face"] == "1F600"
    assert "grinning-face-flipped" not in names  # its emoji is drawn already
    assert counts == {"chars.json": 4, "by name": 1, "hidden": 1, "duplicate": 1}


def test_resize(tmp_path, tarballs):
    work, pins = tarballs
    prepare_emoji(tmp_path, 32, work_dir=work, integrity=pins)
    data = load_emoji(tmp_path, 32)
    assert data.images.shape[1:] == (32, 32, 3)
    assert tuple(data.images[0, 0, 0]) == (255, 255, 255)
    assert tuple(data.images[0, 16, 16]) in set(COLORS.values())


@pytest.mark.parametrize("spec", [emoji.LABELS_PACKAGE, emoji.ICONIFY_STYLES["fluent"]])
def test_wrong_integrity_raises(tmp_path, tarballs, spec):
    work, pins = tarballs
    bad = dict(pins, **{spec: PACKAGES[spec]})  # the real pin: not the fake tarball's
    with pytest.raises(ValueError, match=f"integrity mismatch for {re.escape(tarball_name(spec))}"):
        prepare_emoji(tmp_path / "out", work_dir=work, integrity=bad)
    assert not (tmp_path / "out" / "emoji-64.npz").exists()


def test_every_package_is_pinned_exactly():
    for spec, sri in PACKAGES.items():
        assert re.fullmatch(r"(@[a-z0-9-]+/)?[a-z0-9-]+@\d+\.\d+\.\d+", spec) and sri.startswith("sha512-")
    assert set(emoji.STYLES.values()) | {emoji.LABELS_PACKAGE} == set(PACKAGES)


def test_load_missing_says_how_to_prepare(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m dalle prepare emoji"):
        load_emoji(tmp_path)


def test_emoji_folder_is_one_style_that_load_folder_reads_back(tmp_path, tarballs, capsys):
    from dalle.data.emoji import write_emoji_folder
    from dalle.data.folder import load_folder

    work, pins = tarballs
    prepare_emoji(tmp_path / "emoji", 64, work_dir=work, integrity=pins)
    meta = json.loads((tmp_path / "emoji" / "emoji-64.json").read_text())
    fluent = [e for e in meta["images"] if e["style"] == "fluent"]
    folder = write_emoji_folder(tmp_path / "folder", "fluent", tmp_path / "emoji", 64)
    assert "4 fluent images" in capsys.readouterr().out

    data = load_folder(folder, 64)
    assert data.images.shape == (4, 64, 64, 3) and data.info["skipped"] == {}
    for entry, img, caps in zip(fluent, data.images, data.image_captions):
        assert tuple(img[32, 32]) == COLORS[entry["hexcode"].lower() + ".png"]
        written = [data.captions[i] for i in caps]
        assert written == [c for c in entry["captions"] if c != f"{entry['label']}, fluent style"]
        assert entry["label"] in written and not any("style" in c for c in written)
        assert entry["heldout_caption"] not in written
    with pytest.raises(ValueError, match="exists"):  # never writes over a folder
        write_emoji_folder(tmp_path / "folder", "fluent", tmp_path / "emoji", 64)
    with pytest.raises(ValueError, match="unknown emoji style"):
        write_emoji_folder(tmp_path / "other", "apple", tmp_path / "emoji", 64)
