"""Behaviour kept: a short fixed-seed run of the shapes preset and of the emoji recipe (on a small captioned
folder) ends with the same weights, optimizer moments and RNG states, bit for bit, as the recorded runs.

The record (`golden_weights.json`) was made with the code before the package took its present layout, by
this file's own runner, from the repository root:
`python -m tests.training.test_same_weights --record` (one thread, fp32). Float
results depend on the CPU's kernels, so the record is compared only on the kind of CPU it was made on (its
key says which); elsewhere the runs are still made and checked for finite weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

GOLDEN = Path(__file__).with_name("golden_weights.json")
# The two runs: the shapes preset through its warm-up into the GAN phase, and the emoji recipe on a folder
RUNS = {
    "shapes": ["--preset", "shapes", "--warmup-kimg", "1", "--max-steps", "60"],
    "emoji_recipe": ["--preset", "emoji-32", "--max-steps", "40"],  # the 32 px recipe, as recorded
}
COMMON = ["--threads", "1", "--mixed-precision", "false", "--max-minutes", "0", "--sample-every", "20",
          "--checkpoint-every", "100000"]


def cpu_key() -> str:
    """What decides the float kernels: the machine, its widest vector units, and the torch version."""
    import torch

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    units = "amx" if "amx_bf16" in flags else "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return f"{platform.machine()}-{units}-torch{torch.__version__}"


def make_folder(root: Path) -> Path:
    """24 small captioned images (coloured discs and bars on white), a metadata.jsonl of two captions each."""
    root.mkdir(parents=True, exist_ok=True)
    colours = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 60, 210), "yellow": (230, 200, 20)}
    lines = []
    for i, (name, rgb) in enumerate(colours.items()):
        for j in range(6):
            img = np.full((32, 32, 3), 255, np.uint8)
            y, x = np.mgrid[:32, :32]
            if j % 2 == 0:
                img[(y - 8 - 2 * j) ** 2 + (x - 16) ** 2 < 40 + 8 * j] = rgb
                caption = f"a {name} disc"
            else:
                img[4 * j: 4 * j + 6, 4:28] = rgb
                caption = f"a {name} bar"
            file = f"{name}-{j}.png"
            Image.fromarray(img).save(root / file)
            lines.append(json.dumps({"file_name": file, "text": [caption, f"{caption}, number {j}"]}))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def state_digests(out: Path) -> dict[str, str]:
    """sha256 (16 hex digits) of each part of a run's saved state: G, G_ema, D, opt_g, opt_d, rng."""
    from safetensors.torch import load_file

    tensors = {}
    for f in sorted((out / "state").glob("state*.safetensors")):
        tensors.update(load_file(f))
    groups: dict[str, hashlib._Hash] = {}
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        groups.setdefault(name.split(".")[0], hashlib.sha256()).update(name.encode() + t.numpy().tobytes())
    return {part: h.hexdigest()[:16] for part, h in groups.items()}


def train(run: str, work: Path) -> dict[str, str]:
    """Run `run` through the command line in `work` and return its state digests."""
    from dalle.cli import main

    extra = ["--data", str(make_folder(work / "folder"))] if run == "emoji_recipe" else []
    out = work / run
    args = ["train", *RUNS[run], *extra, *COMMON, "--out", str(out), "--cache-dir", str(work / "cache")]
    assert main(args) == 0
    return state_digests(out)


@pytest.mark.parametrize("run", list(RUNS))
def test_a_short_fixed_seed_run_gives_the_recorded_weights(run, tmp_path):
    import torch
    from safetensors.torch import load_file

    digests = train(run, tmp_path)
    for f in (tmp_path / run / "state").glob("state*.safetensors"):
        assert all(torch.isfinite(t.float()).all() for t in load_file(f).values())
    record = json.loads(GOLDEN.read_text())
    if cpu_key() not in record["runs"]:
        pytest.skip(f"no record for this CPU ({cpu_key()}); recorded on: {', '.join(record['runs'])}")
    assert digests == record["runs"][cpu_key()][run]


if __name__ == "__main__":  # python -m tests.training.test_same_weights [--record]
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write the digests into golden_weights.json")
    parser.add_argument("--note", default="", help="what code made the record")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        found = {run: train(run, Path(tmp)) for run in RUNS}
    print(json.dumps(found, indent=1))
    if args.record:
        record = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"runs": {}}
        record["runs"][cpu_key()] = found
        record.setdefault("recorded_with", {})[cpu_key()] = args.note
        GOLDEN.write_text(json.dumps(record, indent=1) + "\n")
