"""A tiny end-to-end run: train on `shapes` at 32 px on CPU, then sample from what it saved."""

import json

import pytest
import torch

from dalle.cli import main
from dalle.config import ModelConfig, TrainConfig
from dalle.images import read_png_metadata
from dalle.pipeline import TextToImagePipeline
from dalle.model_card import render_model_card
from dalle.train import Trainer, setting_changes

TINY_FLAGS = ["--resolution", "32", "--channel-base", "128", "--d-channel-base", "128", "--w-dim", "64",
              "--z-dim", "16", "--cond-dim", "16", "--embed-dim", "64", "--batch-size", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "shapes32"
    rc = main(["train", "--data", "shapes", "--out", str(out), "--max-steps", "6", "--sample-every", "3",
               "--checkpoint-every", "3", "--cache-dir", str(out.parent / "cache"), *TINY_FLAGS])
    assert rc == 0
    return out


def test_training_writes_a_checkpoint_samples_and_log(trained):
    ck = trained / "checkpoint"
    cfg = json.loads((ck / "config.json").read_text())
    assert cfg["step"] == 6 and cfg["images_seen"] == 24
    assert cfg["dataset"]["holdout"] == [["purple", "triangle"], ["orange", "circle"], ["cyan", "square"]]
    assert cfg["model"]["resolution"] == 32 and cfg["text_encoder"] == "all-MiniLM-L6-v2"
    assert (ck / "samples.png").exists() and (ck / "log.csv").exists()
    rows = (trained / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,kimg,loss_d") and len(rows) == 3  # header + steps 3 and 6
    assert len(list((trained / "samples").glob("step-*.png"))) == 2


def test_sample_cli_writes_grid_with_metadata(trained, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    rc = main(["sample", "--checkpoint", str(trained / "checkpoint"), "--prompt", "a red circle",
               "--prompt", "two blue squares", "--seed", "11", "--truncation", "0.5", "--num-images", "3",
               "--out", str(grid), "--device", "cpu"])
    assert rc == 0
    from PIL import Image
    with Image.open(grid) as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)  # 3 columns (seeds), 2 rows (prompts), 2px padding
    meta = read_png_metadata(str(grid))
    assert json.loads(meta["prompts"]) == ["a red circle", "two blue squares"]
    assert meta["seed"] == "11" and meta["truncation"] == "0.5" and meta["checkpoint"] == "checkpoint"
    assert meta["step"] == "6"
    assert "realism=" in capsys.readouterr().out


def test_pipeline_is_deterministic_and_seed_j_is_seed_plus_j(trained):
    pipe = TextToImagePipeline.from_pretrained(trained / "checkpoint", device="cpu")
    a = pipe(["a red circle", "a blue square"], seed=3, truncation=0.7, num_images=3)
    b = pipe(["a blue square"], seed=4, truncation=0.7, num_images=1)
    assert a.pixels.shape == (2, 3, 32, 32, 3)
    assert (a.pixels == pipe(["a red circle", "a blue square"], seed=3, num_images=3).pixels).all()
    assert (a.pixels[1, 1] == b.pixels[0, 0]).all()  # image j uses seed + j, whatever the batch
    assert ((a.realism >= 0) & (a.realism <= 1)).all() and ((a.match >= 0) & (a.match <= 1)).all()
    assert a.seeds == [3, 4, 5]


def test_save_pretrained_round_trip(trained, tmp_path):
    pipe = TextToImagePipeline.from_pretrained(trained / "checkpoint", device="cpu")
    pipe.save_pretrained(tmp_path / "copy")
    again = TextToImagePipeline.from_pretrained(tmp_path / "copy", device="cpu", text_encoder=pipe.text_encoder)
    assert (pipe("a red circle", seed=1).pixels == again("a red circle", seed=1).pixels).all()


def test_resume_continues_exactly(tmp_path):
    def trainer(out):
        mcfg = ModelConfig(resolution=32, channel_base=128, d_channel_base=128, w_dim=64, z_dim=16, cond_dim=16,
                           embed_dim=64)
        cfg = TrainConfig(data="shapes", out=str(out), batch_size=4, augment="translation,cutout", r1_every=2,
                          sample_every=100, checkpoint_every=100, cache_dir=str(tmp_path / "cache"))
        return Trainer(mcfg, cfg)

    straight = trainer(tmp_path / "a")
    straight.run(max_steps=6)
    first = trainer(tmp_path / "b")
    first.run(max_steps=3)
    resumed = trainer(tmp_path / "b")
    resumed.run(resume=True, max_steps=6)
    assert resumed.step == 6 and resumed.images_seen == straight.images_seen
    for name in ("G", "G_ema", "D"):
        sa, sb = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k} differs after resume"


def test_resume_with_changed_settings_is_recorded(tmp_path, capsys):
    """A resume may change the learning recipe and the shape-free model field cond_noise; the change is
    written into the state, the checkpoint's config.json and the model card. A shape-changing field is refused."""
    out = tmp_path / "run"
    common = ["train", "--data", "shapes", "--out", str(out), "--sample-every", "100", "--checkpoint-every", "2",
              "--cache-dir", str(tmp_path / "cache"), *TINY_FLAGS]
    assert main([*common, "--max-steps", "2", "--cond-noise", "1.0"]) == 0
    assert main([*common, "--max-steps", "4", "--resume", "--cond-noise", "0.25", "--r1-gamma", "2.0"]) == 0
    cfg = json.loads((out / "checkpoint" / "config.json").read_text())
    assert cfg["model"]["cond_noise"] == 0.25 and cfg["step"] == 4
    assert cfg["training_history"] == [{"step": 2, "kimg": 0.0,
                                        "changed": {"cond_noise": [1.0, 0.25], "r1_gamma": [1.0, 2.0]}}]
    assert json.loads((out / "state" / "state.json").read_text())["history"] == cfg["training_history"]
    card = render_model_card(out / "checkpoint", [])
    assert "resumed at step 2 (0.0 kimg) with changed settings: cond_noise 1.0 → 0.25, r1_gamma 1.0 → 2.0" in card
    capsys.readouterr()
    assert main([*common, "--max-steps", "6", "--resume", "--z-dim", "8"]) == 0  # shape fields: the run's own win
    assert json.loads((out / "checkpoint" / "config.json").read_text())["model"]["z_dim"] == 16


def test_setting_changes_ignores_bookkeeping():
    before = {"r1_gamma": 1.0, "threads": 1, "out": "a", "betas": (0.0, 0.99)}
    after = {"r1_gamma": 1.0, "threads": 2, "out": "b", "betas": [0.0, 0.99], "kl_weight": 0.001}
    assert setting_changes(before, after) == {"kl_weight": [None, 0.001]}


def test_data_parallel_under_torchrun(tmp_path):
    """Two CPU ranks (gloo): each draws its own batch, rank 0 writes; no code changes needed."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "--master_addr=127.0.0.1", "-m", "dalle", "train", "--data", "shapes", "--out", str(out),
           "--max-steps", "2", "--checkpoint-every", "2", "--sample-every", "2",
           "--cache-dir", str(tmp_path / "cache"), *TINY_FLAGS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((out / "checkpoint" / "config.json").read_text())
    assert cfg["images_seen"] == 2 * 4 * 2 and cfg["training_compute"]["world_size"] == 2
    TextToImagePipeline.from_pretrained(out / "checkpoint", device="cpu")
