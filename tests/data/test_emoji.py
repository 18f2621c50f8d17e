"""prepare_emoji / load_emoji on a tiny fake set of npm tarballs (npm is never called)."""

import io
import json
import subprocess
import tarfile

import numpy as np
import pytest
from PIL import Image

from dalle.data import emoji
from dalle.data.emoji import PACKAGES, canonical_caption, load_emoji, prepare_emoji, sri_sha512, tarball_name

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


@pytest.fixture
def tarballs(tmp_path, monkeypatch):
    def no_npm(*args, **kwargs):
        raise AssertionError("npm must not run in tests")
    monkeypatch.setattr(subprocess, "run", no_npm)
    work = tmp_path / "npm"
    work.mkdir()
    for style, spec in emoji.STYLES.items():
        files = {"emoji.json": _datasource(style), "LICENSE": b"MIT"}
        files.update({f"img/{style}/64/{name}": _png(c) for name, c in COLORS.items()})
        files["img/apple/64/1f600.png"] = _png((0, 0, 0))
        _tgz(work / tarball_name(spec), files)
    _tgz(work / tarball_name(emoji.LABELS_PACKAGE), {"en/data.json": EMOJIBASE})
    return work, {spec: sri_sha512(work / tarball_name(spec)) for spec in PACKAGES}


def test_prepare_and_load(tmp_path, tarballs, capsys):
    work, pins = tarballs
    out = tmp_path / "out"
    npz = prepare_emoji(out, 64, work_dir=work, integrity=pins)
    assert npz == out / "emoji-64.npz" and "skipped 2" in capsys.readouterr().out

    meta = json.loads((out / "emoji-64.json").read_text())
    assert [p["integrity"] for p in meta["packages"]] == [pins[s] for s in PACKAGES]
    licences = {a["license"] for a in meta["attribution"]}
    assert {"Apache License 2.0", "CC-BY 4.0", "MIT"} <= licences
    assert meta["skipped"] == {"google: no label": 1, "twitter: no label": 1}
    styles = [(e["hexcode"], e["style"]) for e in meta["images"]]
    assert len(styles) == 7 and ("2764-FE0F", "twitter") not in styles  # has_img_twitter false

    data = load_emoji(out, 64)
    assert data.name == "emoji" and data.images.shape == (7, 64, 64, 3) and data.images.dtype == np.uint8
    assert "attribution" in data.info and data.info["styles"] == {"google": 4, "twitter": 3}
    for entry, img, caps in zip(meta["images"], data.images, data.image_captions):
        color = COLORS[entry["hexcode"].lower() + ".png"]
        assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[32, 32]) == color  # on white
        assert [data.captions[i] for i in caps] == entry["captions"]
        assert canonical_caption(entry) in entry["captions"]

    by_key = {(e["hexcode"], e["style"]): e["captions"] for e in meta["images"]}
    assert by_key[("1F600", "google")] == ["grinning face", "grinning face, google style", "grinning face, smile, happy"]
    assert by_key[("1F44D-1F3FD", "twitter")] == [
        "thumbs up, medium skin tone", "thumbs up, medium skin tone, twitter style",
        "thumbs up, medium skin tone, approve, hand"]
    assert by_key[("2764-FE0F", "google")][0] == "red heart"
    assert all(c == c.lower() for caps in by_key.values() for c in caps)
    assert len(set(data.captions)) == len(data.captions)


def test_resize(tmp_path, tarballs):
    work, pins = tarballs
    prepare_emoji(tmp_path, 32, work_dir=work, integrity=pins)
    data = load_emoji(tmp_path, 32)
    assert data.images.shape[1:] == (32, 32, 3)
    assert tuple(data.images[0, 0, 0]) == (255, 255, 255)
    assert tuple(data.images[0, 16, 16]) in set(COLORS.values())


def test_wrong_integrity_raises(tmp_path, tarballs):
    work, pins = tarballs
    bad = dict(pins, **{emoji.LABELS_PACKAGE: PACKAGES[emoji.LABELS_PACKAGE]})
    with pytest.raises(ValueError, match="integrity mismatch for emojibase-data-17.0.0.tgz"):
        prepare_emoji(tmp_path / "out", work_dir=work, integrity=bad)
    assert not (tmp_path / "out" / "emoji-64.npz").exists()


def test_load_missing_says_how_to_prepare(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m dalle prepare emoji"):
        load_emoji(tmp_path)
