"""`scripts/screenshot.py` takes the README's screenshot from the app serving the shipped checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


def test_screenshot_script_shoots_the_shipped_checkpoints(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run ./test.sh or apt-get install chromium"
    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, "scripts/screenshot.py", "--out", str(out), "--width", "1200"], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shipped = sorted(p.parent.name for p in (REPO / "checkpoints").glob("*/generator.safetensors"))
    status = proc.stdout
    assert f"{len(shipped)} checkpoints in checkpoints/" in status, status
    assert all(name in status for name in shipped) and "failed" not in status, status
    with Image.open(out) as im:
        assert im.size == (1200, 1100)
        colours = im.convert("RGB").getcolors(1 << 20)
    assert colours is not None and len(colours) > 500  # a page with images, not a blank one
