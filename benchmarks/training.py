"""Training throughput of a preset, bf16 autocast on and off, in one process: `python -m benchmarks.training`.

    python -m benchmarks.training --preset shapes --steps 20 --rounds 3

Both trainers are built once; the rounds alternate between them (on, off, on, off, ...) so that
drift in the machine's load hits both alike. Each round times `--steps` full training steps
(D step, G step, EMA) after a warm-up, and the table gives the median img/s of the rounds and
the ratio. The reconstruction-only warm-up is timed separately (`--warmup`), since a preset
spends its first images there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from dalle.datasets import open_training_data
from dalle.presets import PRESETS, preset_configs
from dalle.training.trainer import Trainer


def build(preset: str, autocast: bool, warmup: bool, out: str) -> Trainer:
    """A Trainer with the preset's model and learning settings (no run folder writes until `run`)."""
    model, train, options = preset_configs(preset, out=out, mixed_precision=autocast,
                                           warmup_kimg=1e9 if warmup else 0.0)
    return Trainer(model, train, open_training_data(train.data, model.resolution, options))


def images_per_second(trainer: Trainer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return steps * trainer.cfg.batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shapes", choices=list(PRESETS))
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per setting")
    parser.add_argument("--warmup", action="store_true", help="time the reconstruction-only warm-up steps instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {on: build(args.preset, on, args.warmup, f"{tmp}/{on}") for on in (True, False)}
        if not trainers[True].objective.autocast:
            print("note: this CPU has no native bf16 (AMX or AVX512-bf16), so autocast stays off in both")
        for t in trainers.values():
            images_per_second(t, 3)  # warm-up: allocator, oneDNN kernels
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for on, t in trainers.items():
                rates[on].append(images_per_second(t, args.steps))
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    step = "reconstruction-only warm-up step" if args.warmup else "full step (D + G + EMA)"
    print(f"| preset | step | bf16 autocast img/s | fp32 img/s | speed-up |\n|---|---|---|---|---|\n"
          f"| {args.preset} | {step} | {on:.1f} | {off:.1f} | {on / off:.2f}x |")
    print(f"(one thread, batch {trainers[True].cfg.batch_size}, median of {args.rounds} rounds of {args.steps} steps)")


if __name__ == "__main__":
    main()
