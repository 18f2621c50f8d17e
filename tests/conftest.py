"""App fixtures shared by test_app_api.py and test_browser.py: a temporary checkpoints
folder and one running `python app.py` (started once per test session)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dalle.checkpoint import copy_checkpoint
from dalle.config import ModelConfig
from scripts.screenshot import AppDidNotStart, free_port, stop, wait_until_up

REPO = Path(__file__).resolve().parent.parent

# name in the test folder -> (folders to copy, first found wins: shipped, then live training export;
# dataset of the random-weight fallback)
SOURCES = {"shapes-32": (("checkpoints/shapes-32", "runs/shapes-32/checkpoint"), "shapes"),
           "emoji-32": (("checkpoints/emoji-32", "runs/emoji-32/checkpoint"), "emoji")}
# The columns training writes (dalle.training.trainer.LOG_FIELDS), spelled out so a rename shows up here.
LOG_FIELDS = ["step", "kimg", "loss_d", "loss_g", "loss_joint_d", "loss_joint_g", "r1", "kl", "diversity",
              "d_real_acc", "match_acc", "contrastive_d", "contrastive_g", "recon", "vae_kl", "near_miss_d",
              "near_miss_g", "spread_d", "spread_g", "wrong_d", "img_per_s", "elapsed_s", "lr_scale"]
LOG_HEADER = ",".join(LOG_FIELDS) + "\n"

# A tiny model for training tests: flags for the command line, and the same as a config
TINY_FLAGS = ["--resolution", "32", "--channel-base", "128", "--d-channel-base", "256", "--w-dim", "64",
              "--z-dim", "16", "--cond-dim", "16", "--embed-dim", "64", "--attn-dim", "16", "--max-tokens", "8",
              "--batch-size", "4", "--threads", "1"]
TINY_MODEL = ModelConfig(resolution=32, channel_base=128, d_channel_base=256, w_dim=64, z_dim=16, cond_dim=16,
                         embed_dim=64, attn_dim=16, max_tokens=8)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """The CLI verbs set torch's thread count for the whole process (--threads, default 1); put it back after
    each test, so one test's setting does not reach the next. (At one thread, torch's backward of a tiny strided
    1x1 convolution crashed a later test on an AVX2-only AMD EPYC.)"""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _log_row(s: int) -> str:
    """One plausible log.csv row at step s (blank where a term is off, as training writes it)."""
    row = {"step": s, "kimg": f"{s * 0.032:.3f}", "loss_d": 1.4 - s / 2000, "loss_g": 0.9 + s / 3000,
           "loss_joint_d": 0.7, "loss_joint_g": 0.6, "r1": 0.02, "kl": 0.01, "diversity": "", "d_real_acc": 0.5,
           "match_acc": 0.5, "img_per_s": 20, "elapsed_s": s, "contrastive_d": 1.3, "contrastive_g": 1.2,
           "recon": 0.4, "vae_kl": "", "lr_scale": "", "near_miss_d": "",
           "near_miss_g": "", "spread_d": "", "spread_g": "", "wrong_d": ""}
    return ",".join(str(row[k]) for k in LOG_FIELDS) + "\n"


def _tiny_checkpoint(dest: Path, dataset: str) -> None:
    """A random-weight 32px checkpoint with a short log.csv and a model card."""
    from dalle.checkpoint import save_checkpoint
    from dalle.config import ModelConfig
    from dalle.models.discriminator import Discriminator
    from dalle.models.generator import Generator

    cfg = ModelConfig(resolution=32, channel_base=256, d_channel_base=256)
    log = LOG_HEADER + "".join(_log_row(s) for s in range(0, 501, 100))
    config = {"model": cfg.to_dict(), "name": dest.name, "step": 500, "images_seen": 16000,
              "dataset": {"name": dataset}, "training_compute": {"wall_time_s": 60.0, "device": "CPU"}}
    save_checkpoint(dest, config, Generator(cfg), Discriminator(cfg),
                    {"log.csv": log.encode(), "README.md": f"# {dest.name}\n\nRandom weights for tests.\n".encode()})


@pytest.fixture(scope="session")
def checkpoints_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """shapes-32 and emoji-32 (copied from checkpoints/ or runs/, else random), plus `broken`
    (truncated weights: fails to load) and `evaluator` (kind "evaluator": skipped by the pickers; the
    shipped one when present, so the Compare tab has its common judge)."""
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("checkpoints")
    for name, (sources, dataset) in SOURCES.items():
        if not any(copy_checkpoint(REPO / src, root / name) for src in sources):
            _tiny_checkpoint(root / name, dataset)
    broken = root / "broken"
    shutil.copytree(root / "shapes-32", broken)
    (broken / "generator.safetensors").write_bytes(b"\x00" * 16)
    if (REPO / "checkpoints" / "evaluator" / "config.json").is_file():  # the Compare tab's common judge
        shutil.copytree(REPO / "checkpoints" / "evaluator", root / "evaluator")
    else:
        (root / "evaluator").mkdir()
        (root / "evaluator" / "config.json").write_text(json.dumps({"format_version": 1, "kind": "evaluator"}))
    return root


@pytest.fixture(scope="session")
def app_url(checkpoints_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of `python app.py` serving `checkpoints_dir` on a free port (its output: app.log)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "DALLE_CHECKPOINTS": str(checkpoints_dir), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(url, proc, log_path, timeout_s=180)
        except AppDidNotStart as e:
            pytest.fail(str(e))
        yield url
    finally:
        stop(proc)
