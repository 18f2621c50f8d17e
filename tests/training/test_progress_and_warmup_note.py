"""What `python -m dalle train` tells the person watching: the progress bar's postfix names the phase (warm-up or
GAN) and the speed in img/s, and a run that ends inside the reconstruction warm-up says that its D is untrained."""

import pytest
from conftest import TINY_FLAGS

from dalle.cli import main

NOTE = "note: the run ended inside the reconstruction warm-up"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Caption-embedding cache shared by the runs of this module (the first run fills it)."""
    return tmp_path_factory.mktemp("caption-cache")


def train_stderr(capsys, out, cache, *extra: str) -> str:
    capsys.readouterr()
    rc = main(["train", "--data", "shapes", "--out", str(out), "--sample-every", "100", "--checkpoint-every", "100",
               "--cache-dir", str(cache), *TINY_FLAGS, *extra])
    assert rc == 0
    return capsys.readouterr().err  # tqdm writes to stderr


def test_a_run_that_ends_in_the_warmup_says_so_and_its_bar_shows_the_phase(tmp_path, cache, capsys):
    err = train_stderr(capsys, tmp_path / "run", cache, "--max-steps", "10", "--warmup-kimg", "1")
    assert NOTE in err
    assert "its D is untrained, so its realism and match scores mean nothing yet" in err
    assert "(0.0 of 1 kimg)" in err  # 10 steps of 4 images
    assert "phase=warm-up" in err and "img/s=" in err  # the postfix, set every 10 steps


def test_a_run_without_warmup_has_no_note_and_its_bar_shows_the_gan_phase(tmp_path, cache, capsys):
    err = train_stderr(capsys, tmp_path / "run", cache, "--max-steps", "10", "--warmup-kimg", "0")
    assert NOTE not in err
    assert "phase=GAN" in err and "img/s=" in err


def test_a_run_past_its_warmup_has_no_note(tmp_path, cache, capsys):
    err = train_stderr(capsys, tmp_path / "run", cache, "--max-steps", "3", "--warmup-kimg", "0.008")  # 2 steps of 4
    assert NOTE not in err
