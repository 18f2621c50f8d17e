"""The command line as a new user meets it: where evaluate writes, what info prints, what train --help says."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import _tiny_checkpoint

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    dest = tmp_path_factory.mktemp("ck") / "tiny-shapes"
    _tiny_checkpoint(dest, "shapes")
    return dest


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dalle", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})


def test_evaluate_leaves_the_checkpoint_folder_alone_by_default(tiny, tmp_path):
    before = sorted(p.name for p in tiny.iterdir())
    proc = run(["evaluate", str(tiny), "--num-samples", "4", "--no-sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tiny.iterdir()) == before  # nothing written into the checkpoint
    written = tmp_path / "runs" / "evaluate" / "tiny-shapes" / "metrics.json"
    assert json.loads(written.read_text())["checkpoint"]["name"] == "tiny-shapes"
    assert f"wrote {Path('runs') / 'evaluate' / 'tiny-shapes' / 'metrics.json'}" in proc.stdout


def test_info_is_a_short_summary_and_json_on_request(tiny, tmp_path):
    short = run(["info", str(tiny)], cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    assert len(short.stdout.splitlines()) < 15 and "32 px" in short.stdout
    full = run(["info", str(tiny), "--json"], cwd=tmp_path)
    assert json.loads(full.stdout)["model"]["resolution"] == 32


def test_module_docstring_names_every_verb():
    import dalle.cli

    verbs = build_verbs()
    first_line = dalle.cli.__doc__.splitlines()[0]
    assert all(v in first_line for v in verbs), (verbs, first_line)


def build_verbs() -> list[str]:
    from dalle.cli import build_parser

    return list(build_parser()._subparsers._group_actions[0].choices)


def test_seeds_wrap_so_every_seed_shown_can_be_typed_back_in(tiny):
    from dalle.pipeline import MAX_SEED, TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(tiny, device="cpu")
    out = pipe("a red circle", seed=MAX_SEED, truncation=1.0, num_images=3)
    assert out.seeds == [MAX_SEED, 0, 1]
    for j, s in enumerate(out.seeds):  # each column is what its seed gives when entered alone
        again = pipe("a red circle", seed=s, truncation=1.0, num_images=1)
        # (a batch of 1 and a batch of 3 may round differently in the last bit of a pixel)
        assert np.abs(again.pixels[0, 0].astype(int) - out.pixels[0, j].astype(int)).max() <= 1
    with pytest.raises(ValueError, match="seed must be between 0 and 2147483647"):
        pipe("a red circle", seed=MAX_SEED + 1)


def test_a_blank_prompt_or_no_images_is_refused_with_a_message(tiny):
    from dalle.pipeline import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(tiny, device="cpu")
    with pytest.raises(ValueError, match="prompt 2 of 2 is empty"):
        pipe(["a red circle", "   "], seed=0)
    with pytest.raises(ValueError, match="num_images must be at least 1, got 0"):
        pipe("a red circle", seed=0, num_images=0)
    with pytest.raises(ValueError, match="truncation must be a number"):
        pipe("a red circle", seed=0, truncation=float("nan"))
    assert pipe("a red circle", seed=0, num_images=1).pixels.shape[:2] == (1, 1)


def test_an_emoji_prompt_draws_what_its_name_draws(tiny, tmp_path):
    """The library and `sample` read "❤️" as the captions spell it ("red heart"), not as an unknown token."""
    from dalle.pipeline import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(tiny, device="cpu")
    emoji, named, other = (pipe(p, seed=5, truncation=1.0, num_images=2) for p in ("❤️", "red heart", "pizza"))
    assert np.array_equal(emoji.pixels, named.pixels) and np.allclose(emoji.match, named.match)
    assert not np.array_equal(emoji.pixels, other.pixels)
    assert emoji.prompts == ["❤️"]  # the grid's label stays what was typed
    done = run(["sample", "--checkpoint", str(tiny), "--prompt", "❤️", "--num-images", "1",
                "--out", str(tmp_path / "g.png")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "'❤️' reads as 'red heart'" in done.stderr
