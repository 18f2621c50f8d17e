"""`python -m dalle train --data FOLDER` on a tiny captioned folder with bad entries: it trains on the rest, lists
what it skipped by reason, and writes a checkpoint whose config names the folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_FLAGS
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (240, 220, 40),
           "black": (10, 10, 10), "white": (250, 250, 250), "orange": (250, 140, 20), "purple": (130, 40, 170),
           "cyan": (30, 210, 220), "pink": (250, 150, 190), "grey": (128, 128, 128), "brown": (120, 70, 30)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """12 good images (a disc of a colour on white, one in a subfolder) and four bad entries."""
    root = tmp_path_factory.mktemp("captioned") / "my_data"
    (root / "sub").mkdir(parents=True)
    yy, xx = np.mgrid[:40, :40]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 < 12 ** 2
    lines = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        img = np.full((40, 40, 3), 255, np.uint8)
        img[disc] = rgb
        file = f"sub/{name}.png" if i == 0 else f"{name}.png"
        Image.fromarray(img).save(root / file)
        lines.append({"file_name": file, "text": [f"a {name} circle", f"{name} disc"]})
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "nocaption.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root.parent / "outside.png")
    lines += [{"file_name": "broken.png", "text": "a broken image"},
              {"file_name": "nocaption.png"},
              {"file_name": "does_not_exist.png", "text": "a missing file"},
              {"file_name": "../outside.png", "text": "a file outside the folder"}]
    (root / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    work = tmp_path_factory.mktemp("work")
    out = work / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "dalle", "train", "--data", str(folder), "--out", str(out), "--max-steps", "3",
         "--sample-every", "3", "--checkpoint-every", "3", "--cache-dir", str(work / "cache"), *TINY_FLAGS],
        cwd=work, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


def test_it_trains_on_the_good_images_and_lists_the_skipped_by_reason(trained, folder):
    proc, out = trained
    warnings = [line for line in proc.stderr.splitlines() if "skipped" in line and str(folder) in line]
    assert len(warnings) == 1, proc.stderr[-3000:]  # the folder is read once
    warning = warnings[0]
    assert "skipped 4 entries" in warning
    for reason, name in [("unreadable image", "broken.png"), ("missing caption", "nocaption.png"),
                         ("missing file", "does_not_exist.png"), ("path outside folder", "../outside.png")]:
        assert f"{reason}: 1 (e.g. {name})" in warning, warning
    rows = (out / "log.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("step,") and int(rows[-1].split(",")[0]) == 3


def test_the_checkpoint_is_complete_and_names_the_folder(trained, folder):
    _, out = trained
    checkpoint = next(p.parent for p in sorted(out.glob("**/config.json")))
    for name in ("config.json", "generator.safetensors", "discriminator.safetensors", "samples.png"):
        assert (checkpoint / name).is_file(), f"{name} missing from {checkpoint}: {sorted(os.listdir(checkpoint))}"
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    dataset = config["dataset"]
    assert dataset["name"] == f"folder:{folder}" and dataset["source"] == str(folder)
    assert dataset["num_images"] == 12 and dataset["num_captions"] == 24  # the good images and their captions
    assert {reason: v["count"] for reason, v in dataset["skipped"].items()} == {
        "unreadable image": 1, "missing caption": 1, "missing file": 1, "path outside folder": 1}
    captions = json.loads((checkpoint / "captions.json").read_text(encoding="utf-8"))
    assert "a red circle" in captions and not any("broken" in c or "missing" in c or "outside" in c for c in captions)
    assert config["model"]["resolution"] == 32
    with Image.open(checkpoint / "samples.png") as grid:
        assert grid.size[0] >= 32 and grid.size[1] >= 32
