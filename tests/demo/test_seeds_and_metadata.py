"""Seeds past 2**31 - 1 are named one way (notes, score table, PNG), and the CLI's grid PNG and the
app's share one metadata format (seeds: one list per prompt row)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dalle.pipeline import MAX_SEED
from demo.handlers import Handlers, seed_span
from demo.render import OutputFolder
from demo.service import ModelService

REPO = Path(__file__).resolve().parents[2]
PROMPTS = "a small blue square in the center\ntwo green triangles"


@pytest.fixture(scope="module")
def handlers(checkpoints_dir: Path) -> Handlers:
    return Handlers(ModelService(checkpoints_dir, capacity=2), OutputFolder())


def test_seed_span_wording() -> None:
    assert seed_span(42, 4) == "seeds 42–45" and seed_span(5, 1) == "seed 5"
    assert seed_span(MAX_SEED, 2) == "seeds 2147483647, 0 ((seed + j) mod 2**31)"
    assert seed_span(MAX_SEED - 1, 4) == "seeds 2147483646–2147483647, 0–1 ((seed + j) mod 2**31)"


def test_wrapped_seeds_read_the_same_in_notes_table_and_png(handlers: Handlers) -> None:
    png, table, notes, gen = handlers.generate(PROMPTS, MAX_SEED, 0.7, 2, "shapes-32", 0)
    assert list(table["seed"]) == [MAX_SEED, 0] * 2
    assert "seeds 2147483647, 0 ((seed + j) mod 2**31)" in notes and "2147483648" not in notes
    with Image.open(png) as im:
        assert json.loads(im.text["seeds"]) == [[MAX_SEED, 0]] * 2
    _, _, best_notes, _ = handlers.generate(PROMPTS, MAX_SEED - 1, 0.7, 1, "shapes-32", 3)
    assert "best 1 of 3 candidates by " in best_notes
    assert " (seeds 2147483646–2147483647, 0 ((seed + j) mod 2**31))" in best_notes
    assert "2147483648" not in best_notes


def test_cli_and_app_grid_pngs_share_one_metadata_format(handlers: Handlers, checkpoints_dir: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    proc = subprocess.run([sys.executable, "-m", "dalle", "sample", "--checkpoint", str(checkpoints_dir / "shapes-32"),
                           "--prompt", "a small blue square in the center", "--prompt", "two green triangles",
                           "--seed", "3", "--truncation", "0.7", "--num-images", "2", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(out) as im:
        cli = {k: json.loads(v) if k != "checkpoint" else v for k, v in im.text.items()}
    png, _, _, _ = handlers.generate(PROMPTS, 3, 0.7, 2, "shapes-32", 0)
    with Image.open(png) as im:
        app = {k: json.loads(v) if k != "checkpoint" else v for k, v in im.text.items()}
    assert cli["seeds"] == app["seeds"] == [[3, 4], [3, 4]]
    assert set(cli) == set(app) == {"prompts", "seed", "seeds", "truncation", "checkpoint", "step"}
    assert {k: cli[k] for k in ("prompts", "seed", "truncation", "checkpoint", "step")} == \
        {k: app[k] for k in ("prompts", "seed", "truncation", "checkpoint", "step")}


def test_readme_documents_the_metadata_format() -> None:
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    api = readme[readme.index("## HTTP API"):]
    assert "same for the app and for `python -m dalle sample`" in api
    assert "`seeds` (one list per prompt row" in api
