"""Faults during training: a SIGKILLed run resumed in another process, a full disk, and an
output folder that cannot be written.

* SIGKILL: `python -m dalle train` runs as a child process and is killed (by its own pid) as
  soon as a resumable state exists; `--resume` in a new process must continue from that state
  and end bit-identical to an uninterrupted run of the same length: weights (G, G_ema, D),
  Adam moments and step counts, the torch and Python RNG states, step and image counters.
  Every safetensors file left by the killed run must load, and leftover `.tmp-` folders
  must not get in the way.
* Disk full / read-only: simulated in-process (tests run as root, where chmod does not stop
  writes); each must end in a one-line `CheckpointError` naming the folder, with the previous
  checkpoint byte-identical and loadable.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_FLAGS
from safetensors.torch import load_file

import dalle.checkpoint as ckpt_mod
from dalle.checkpoint import CheckpointError, load_into, read_config, save_checkpoint
from dalle.cli import main
from dalle.config import ModelConfig
from dalle.models.discriminator import Discriminator
from dalle.models.generator import Generator

REPO = Path(__file__).resolve().parents[2]
STEPS = 40  # total steps of the killed+resumed run and of the reference run
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """Caption-embedding cache shared by every run here (the first run fills it)."""
    return tmp_path_factory.mktemp("caption-cache")


def train_args(out: Path, cache: Path, steps: int, *extra: str) -> list[str]:
    return ["train", "--data", "shapes", "--out", str(out), "--max-steps", str(steps), "--checkpoint-every", "2",
            "--sample-every", "4", "--cache-dir", str(cache), *TINY_FLAGS, *extra]


def state_step(out: Path) -> int | None:
    """Step recorded in out/state (or out/state.old, if the kill fell between the two renames)."""
    for name in ("state", "state.old"):
        try:
            return int(json.loads((out / name / "state.json").read_text())["step"])
        except (OSError, ValueError, KeyError):
            continue
    return None


def run_state(out: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = json.loads((out / "state" / "state.json").read_text())
    return meta, ckpt_mod.load_tensors(out / "state", "state")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def tmp_leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if ".tmp-" in p.name)


def load_checkpoint_weights(folder: Path) -> None:
    """What the app does with a checkpoint folder, minus the text encoder."""
    cfg = ModelConfig.from_dict(read_config(folder)["model"])
    load_into(Generator(cfg), folder, "generator")
    load_into(Discriminator(cfg), folder, "discriminator")


# ------------------------------------------------------------------------------ SIGKILL
def test_sigkill_then_resume_in_a_new_process_is_bit_exact(tmp_path: Path, cache_dir: Path) -> None:
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    log = tmp_path / "killed.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "dalle", *train_args(killed, cache_dir, STEPS)], cwd=REPO,
                                stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while (state_step(killed) or 0) < 2:
            assert proc.poll() is None, f"training exited early ({proc.returncode}):\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no state after 240 s:\n{log.read_text()[-2000:]}"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # our own child only
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = state_step(killed)
    assert last is not None and 2 <= last < STEPS and last % 2 == 0, last

    # Nothing the killed run left behind is corrupt: every safetensors file loads.
    files = sorted(p for d in ("state", "state.old", "checkpoint", "checkpoint.old") if (killed / d).is_dir()
                   for p in (killed / d).glob("*.safetensors"))
    assert files, "no safetensors written before the kill"
    for p in files:
        load_file(str(p))
    if (killed / "checkpoint").is_dir():
        load_checkpoint_weights(killed / "checkpoint")
    leftovers = tmp_leftovers(killed)  # a kill during a write may leave one; it must not matter

    # Resume in a fresh process while the uninterrupted reference run trains in this one.
    resumed_log = tmp_path / "resumed.log"
    with open(resumed_log, "wb") as f:
        resumed = subprocess.Popen([sys.executable, "-m", "dalle", *train_args(killed, cache_dir, STEPS), "--resume"],
                                   cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    try:
        assert main(train_args(reference, cache_dir, STEPS)) == 0
        assert resumed.wait(timeout=300) == 0, resumed_log.read_text()[-3000:]
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait()
    out = resumed_log.read_text()
    assert f"resumed {killed} at step {last} " in out, out[-2000:]

    meta_a, tensors_a = run_state(reference)
    meta_b, tensors_b = run_state(killed)
    assert meta_b["step"] == meta_a["step"] == STEPS and meta_b["images_seen"] == meta_a["images_seen"]
    assert meta_b["python_rng"] == meta_a["python_rng"]  # the data sampler's RNG
    assert meta_b["opt"] == meta_a["opt"]  # Adam step counts and hyper-parameters
    assert set(tensors_a) == set(tensors_b)
    kinds = {k.split(".", 1)[0] for k in tensors_a}
    assert {"G", "G_ema", "D", "opt_g", "opt_d", "rng"} <= kinds  # weights, EMA, Adam moments, RNGs
    different = [k for k in tensors_a if not torch.equal(tensors_a[k], tensors_b[k])]
    assert not different, f"{len(different)} tensors differ after the resume, e.g. {different[:5]}"

    # The shipped export (fp16 EMA generator + discriminator) is identical too.
    for stem in ("generator", "discriminator"):
        a, b = (load_file(str(o / "checkpoint" / f"{stem}.safetensors")) for o in (reference, killed))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The log was trimmed back to the resumed step and continued: same steps as the reference.
    steps = [[ln.split(",")[0] for ln in (o / "log.csv").read_text().splitlines()] for o in (reference, killed)]
    assert steps[0] == steps[1]
    # Leftover temporary folders (if the kill hit a write) are hidden names the loaders never read.
    assert all(name.startswith(".") for name in tmp_leftovers(killed)), leftovers
    load_checkpoint_weights(killed / "checkpoint")


# ------------------------------------------------------------------------------ disk full, read-only
@pytest.fixture()
def good_run(tmp_path: Path, cache_dir: Path) -> Path:
    """A run directory with a good state and export at step 2 (and the log row and samples a run ends with)."""
    out = tmp_path / "run"
    assert main(train_args(out, cache_dir, 2, "--sample-every", "1000")) == 0
    assert state_step(out) == 2
    return out


def assert_kept(out: Path, before: dict[str, dict[str, bytes]]) -> None:
    """The previous state and checkpoint are byte-identical, loadable, and no temp folder is left."""
    for name, files in before.items():
        assert (out / name).is_dir(), f"{out / name} is gone"
        assert snapshot(out / name) == files, f"{out / name} changed"
    assert tmp_leftovers(out) == []
    load_checkpoint_weights(out / "checkpoint")
    assert run_state(out)[0]["step"] == 2


def one_line_error(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("target", ["state", "checkpoint"])
def test_disk_full_during_save_keeps_the_last_good_checkpoint(good_run, cache_dir, monkeypatch, capsys,
                                                              target) -> None:
    before = {"state": snapshot(good_run / "state"), "checkpoint": snapshot(good_run / "checkpoint")}
    real_save = ckpt_mod.save_file

    def full_disk(tensors, path, *args, **kwargs):
        if target == "state" or "generator" in Path(path).name:  # "checkpoint": only the export fails
            real_save(tensors, path, *args, **kwargs)  # a partial file, as a real ENOSPC leaves
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_save(tensors, path, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod, "save_file", full_disk)
    capsys.readouterr()
    assert main(train_args(good_run, cache_dir, 4, "--sample-every", "1000", "--resume")) == 2
    line = one_line_error(capsys)
    assert f"{good_run / target}: cannot write checkpoint (No space left on device)" in line, line
    assert "previous checkpoint is kept" in line
    if target == "state":
        assert_kept(good_run, before)
    else:  # the state at step 4 was written before the export failed; the export stays at step 2
        assert snapshot(good_run / "checkpoint") == before["checkpoint"] and tmp_leftovers(good_run) == []
        assert read_config(good_run / "checkpoint")["step"] == 2
        load_checkpoint_weights(good_run / "checkpoint")

    monkeypatch.setattr(ckpt_mod, "save_file", real_save)  # space freed: the run carries on
    assert main(train_args(good_run, cache_dir, 6, "--sample-every", "1000", "--resume")) == 0
    assert state_step(good_run) == 6 and read_config(good_run / "checkpoint")["step"] == 6


def test_disk_full_on_rename_keeps_the_last_good_checkpoint(good_run, monkeypatch) -> None:
    before = {"state": snapshot(good_run / "state"), "checkpoint": snapshot(good_run / "checkpoint")}
    calls = []

    def no_space(src, dst):
        calls.append((src, dst))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))

    g, d, cfg = rebuild(good_run)
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(CheckpointError) as e:
        save_checkpoint(good_run / "checkpoint", cfg, g, d)
    monkeypatch.undo()
    assert calls and str(e.value).startswith(f"{good_run / 'checkpoint'}: cannot write checkpoint")
    assert "\n" not in str(e.value)
    assert_kept(good_run, before)


def test_failed_second_rename_puts_the_previous_checkpoint_back(good_run, monkeypatch) -> None:
    before = {"state": snapshot(good_run / "state"), "checkpoint": snapshot(good_run / "checkpoint")}
    real_replace = os.replace

    def second_fails(src, dst):
        if ".tmp-" in Path(src).name:  # the tmp -> dest rename, after dest -> dest.old succeeded
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(src))
        return real_replace(src, dst)

    g, d, cfg = rebuild(good_run)
    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(CheckpointError, match="previous checkpoint is kept"):
        save_checkpoint(good_run / "checkpoint", cfg, g, d)
    monkeypatch.undo()
    assert_kept(good_run, before)


def rebuild(out: Path) -> tuple[Generator, Discriminator, dict]:
    cfg = read_config(out / "checkpoint")
    mcfg = ModelConfig.from_dict(cfg["model"])
    return Generator(mcfg), Discriminator(mcfg), {k: v for k, v in cfg.items() if k != "format_version"}


def chmod_blocks_writes(folder: Path) -> bool:
    """True when chmod 0o500 really makes `folder` unwritable (not as root, where it does not)."""
    folder.chmod(0o500)
    try:
        probe = tempfile.mkdtemp(dir=folder)
    except PermissionError:
        return True
    os.rmdir(probe)
    return False


def test_read_only_output_folder(good_run, cache_dir, monkeypatch, capsys) -> None:
    before = {"state": snapshot(good_run / "state"), "checkpoint": snapshot(good_run / "checkpoint")}
    real = chmod_blocks_writes(good_run)
    if not real:  # root: make the temporary-folder creation fail as it does in a 0o500 folder
        good_run.chmod(0o755)

        def denied(*args, dir=None, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))

        monkeypatch.setattr(ckpt_mod.tempfile, "mkdtemp", denied)
    try:
        capsys.readouterr()
        assert main(train_args(good_run, cache_dir, 4, "--sample-every", "1000", "--resume")) == 2
        line = one_line_error(capsys)
    finally:
        good_run.chmod(0o755)
        monkeypatch.undo()
    assert f"{good_run / 'state'}: cannot write checkpoint (Permission denied)" in line, line
    assert_kept(good_run, before)


def test_unwritable_out_path_is_a_one_line_error(tmp_path, cache_dir, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    capsys.readouterr()
    assert main(train_args(blocker / "run", cache_dir, 2)) == 2
    line = one_line_error(capsys)
    assert str(blocker / "run") in line and "Traceback" not in line
