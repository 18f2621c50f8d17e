"""load_folder: the imagefolder layout, mode conversion and skip reporting."""

import json
import random

import numpy as np
import pytest
from PIL import Image

from dalle.data.folder import load_folder

WHITE = (255, 255, 255)


def _write_metadata(folder, lines):
    (folder / "metadata.jsonl").write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    # 60x20 RGB: blue | red | green; the center crop keeps only red.
    strip = np.zeros((20, 60, 3), np.uint8)
    strip[:, :20], strip[:, 20:40], strip[:, 40:] = (0, 0, 255), (255, 0, 0), (0, 255, 0)
    Image.fromarray(strip).save(root / "rgb.png")
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(root / "rgba.png")  # fully transparent -> white
    Image.new("L", (24, 24), 128).save(root / "sub" / "gray.png")
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    pal.putpixel((8, 8), 1)
    pal.save(root / "pal.png", transparency=0)  # index 0 transparent -> white, index 1 red
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(root / "deep.png")  # 16-bit grey
    (root / "corrupt.png").write_bytes(b"not a png at all")
    (root / "nocap.png").write_bytes((root / "rgb.png").read_bytes())
    Image.new("RGB", (8, 8)).save(tmp_path / "escape.png")
    _write_metadata(root, [
        {"file_name": "rgb.png", "text": "a red square"},
        {"file_name": "rgba.png", "text": ["nothing", "empty", "  ", "nothing"]},
        {"file_name": "sub/gray.png", "text": "grey"},
        {"file_name": "pal.png", "text": "a red dot"},
        {"file_name": "cmyk.jpg", "text": "cmyk red"},
        {"file_name": "deep.png", "text": "sixteen bit white"},
        {"file_name": "corrupt.png", "text": "broken"},
        {"file_name": "nocap.png", "text": ""},
        "{this is not json",
        "",
        {"file_name": "../escape.png", "text": "escapes"},
        {"file_name": str(tmp_path / "escape.png"), "text": "absolute"},
        {"file_name": "gone.png", "text": "missing"},
    ])
    return root


def test_load_folder_converts_and_skips(folder, capsys):
    data = load_folder(folder, 16)
    assert data.name == f"folder:{folder}"
    assert data.images.shape == (6, 16, 16, 3) and data.images.dtype == np.uint8
    by_caption = {data.captions[caps[0]]: img for img, caps in zip(data.images, data.image_captions)}
    assert np.abs(by_caption["a red square"].astype(int) - (255, 0, 0)).max() < 8  # center crop
    assert (by_caption["nothing"] == 255).all()
    assert np.allclose(by_caption["grey"], 128, atol=1)
    dot = by_caption["a red dot"]
    assert tuple(dot[0, 0]) == WHITE and dot[8, 8, 0] > 150 and dot[8, 8, 1] < 80
    assert by_caption["cmyk red"][8, 8, 0] > 200 and by_caption["cmyk red"][8, 8, 1] < 60
    assert (by_caption["sixteen bit white"] == 255).all()
    caps = [data.captions[i] for i in data.image_captions[1]]
    assert caps == ["nothing", "empty"]

    skipped = data.info["skipped"]
    assert {k: v["count"] for k, v in skipped.items()} == {
        "bad json line": 1, "missing caption": 1, "path outside folder": 2,
        "missing file": 1, "unreadable image": 1}
    assert skipped["unreadable image"]["examples"] == ["corrupt.png"]
    assert "../escape.png" in skipped["path outside folder"]["examples"]
    err = capsys.readouterr().err
    assert "skipped 6 entries" in err and "corrupt.png" in err

    images, idx = data.sample(5, random.Random(0))
    assert images.shape == (5, 16, 16, 3) and idx.dtype == np.int64
    assert all(0 <= i < len(data.captions) for i in idx)


def test_no_metadata_is_a_clear_error(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="no metadata.jsonl"):
        load_folder(tmp_path, 8)


def test_no_usable_images_is_a_clear_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"junk")
    _write_metadata(tmp_path, [{"file_name": "bad.png", "text": "x"}, {"file_name": "none.png", "text": "y"}])
    with pytest.raises(ValueError, match="no usable images.*unreadable image 1"):
        load_folder(tmp_path, 8)
