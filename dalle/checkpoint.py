"""Checkpoint folders: config.json + safetensors, never pickle.

Layout of a checkpoint folder:
    config.json                 format version, model config, text encoder, dataset, step, images seen
    generator.safetensors       EMA generator (fp16; `generator-0000x-of-0000n.safetensors` if sharded)
    discriminator.safetensors   discriminator (fp16)
    metrics.json, samples.png, log.csv, README.md   optional

Every failure raises `CheckpointError` with one line that names the file.
Writes are atomic: files go to a temporary folder that is renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import FORMAT_VERSION, ModelConfig
from .models.discriminator import Discriminator
from .models.generator import Generator

MAX_FILE_BYTES = 15 * 1024 * 1024  # shard above this: no shipped file may exceed 16 MiB
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


class CheckpointError(ValueError):
    """A checkpoint could not be loaded or written; the message is one line naming the file."""


def refuse_pickles(folder: Path) -> None:
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in PICKLE_SUFFIXES:
            raise CheckpointError(f"{p}: pickle-based files are refused (they can run code); "
                                  "only safetensors and JSON are loaded")


def read_config(folder: str | Path) -> dict:
    """Read and validate `config.json` of a checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no such directory)")
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a checkpoint folder needs config.json")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise CheckpointError(f"{path}: no 'model' section")
    version = cfg.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: missing or invalid format_version")
    if version < FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version} is older than this library reads "
                              f"({FORMAT_VERSION}); retrain it with `python -m dalle train --preset ...`")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version} is newer than this library reads "
                              f"({FORMAT_VERSION}); upgrade dalle")
    try:
        ModelConfig.from_dict(cfg["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config ({e})") from None
    return cfg


def model_config(cfg: dict) -> ModelConfig:
    return ModelConfig.from_dict(cfg["model"])


def load_networks(folder: str | Path) -> tuple[dict, Generator, Discriminator]:
    """Read a checkpoint folder: its config.json (read once), the EMA generator and the discriminator, built
    from the config's model section with their weights loaded (fp32, on the CPU). Pickles are refused."""
    folder = Path(folder)
    config = read_config(folder)
    refuse_pickles(folder)
    cfg = model_config(config)
    G, D = Generator(cfg), Discriminator(cfg)
    load_into(G, folder, "generator")
    load_into(D, folder, "discriminator")
    return config, G, D


def _shard_names(folder: Path, stem: str) -> list[Path]:
    single = folder / f"{stem}.safetensors"
    if single.exists():
        return [single]
    shards = sorted(folder.glob(f"{stem}-*-of-*.safetensors"))
    if not shards:
        raise CheckpointError(f"{single}: missing")
    return shards


def load_tensors(folder: str | Path, stem: str) -> dict[str, torch.Tensor]:
    """Load `stem.safetensors` (or its shards) as a flat dict of CPU tensors."""
    tensors: dict[str, torch.Tensor] = {}
    for path in _shard_names(Path(folder), stem):
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({msg})") from None
    return tensors


def load_into(module: torch.nn.Module, folder: str | Path, stem: str) -> None:
    """Load weights into `module`, checking names and shapes first (clear errors, no partial loads)."""
    load_checked(module, load_tensors(folder, stem), Path(folder) / f"{stem}.safetensors")


def load_checked(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load `tensors` (read from `path`, named in errors) into `module`, checking names, shapes and values first."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not match the config's architecture "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: tensor '{k}' has shape {tuple(tensors[k].shape)}, "
                                  f"expected {tuple(v.shape)}")
        if not torch.isfinite(tensors[k].float()).all():
            raise CheckpointError(f"{path}: tensor '{k}' holds NaN or inf values")
    module.load_state_dict({k: t.to(v.dtype) for k, t in tensors.items() for v in [expected[k]]})


def save_tensors(tensors: dict[str, torch.Tensor], folder: Path, stem: str,
                 max_bytes: int = MAX_FILE_BYTES) -> list[str]:
    """Write tensors as one file, or as shards when over `max_bytes`. Returns file names."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in tensors.items():
        n = v.numel() * v.element_size()
        if groups[-1] and size + n > max_bytes:
            groups.append({})
            size = 0
        groups[-1][k] = v
        size += n
    if len(groups) == 1:
        names = [f"{stem}.safetensors"]
    else:
        names = [f"{stem}-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    for name, group in zip(names, groups):
        save_file(group, str(folder / name))
    return names


def write_folder_atomically(dest: str | Path, write: "callable[[Path], None]") -> Path:
    """Call write(tmp_dir), then swap tmp_dir into `dest`. A crash leaves the old folder intact.

    Raises CheckpointError (naming dest) when the disk is full or the folder is read-only.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    except OSError as e:
        raise CheckpointError(f"{dest}: cannot write checkpoint ({e.strerror or e})") from None
    try:
        write(tmp)
        for p in tmp.iterdir():  # flush file contents before the rename makes them visible
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        old = dest.with_name(dest.name + ".old")
        if dest.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old.exists():
            shutil.rmtree(old)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        recover_folder(dest)  # the failure may have come after dest was moved aside
        raise CheckpointError(f"{dest}: cannot write checkpoint ({e.strerror or e}); "
                              "the previous checkpoint is kept") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        recover_folder(dest)
        raise
    return dest


def recover_folder(dest: str | Path) -> Path:
    """If a crash happened between the two renames, `dest.old` is the last good copy."""
    dest = Path(dest)
    old = dest.with_name(dest.name + ".old")
    if not dest.exists() and old.exists():
        os.replace(old, dest)
    return dest


def half_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """fp16 copy of a module's floating-point weights (what ships)."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in module.state_dict().items()}


def save_checkpoint(dest: str | Path, config: dict, generator: torch.nn.Module,
                    discriminator: torch.nn.Module, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write a checkpoint folder atomically. `config` must hold 'model'; the format version is added."""
    config = {"format_version": FORMAT_VERSION, **config}

    def write(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        save_tensors(half_state(generator), tmp, "generator")
        save_tensors(half_state(discriminator), tmp, "discriminator")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)

    return write_folder_atomically(dest, write)


def copy_checkpoint(src: str | Path, dest: str | Path, attempts: int = 5) -> bool:
    """Copy a checkpoint folder whole. A live training run swaps its export in place every few
    minutes, so a copy caught mid-swap is discarded and retried. False if `src` is not a checkpoint."""
    src, dest = Path(src), Path(dest)
    for _ in range(attempts):
        if not (src / "config.json").is_file():
            return False
        try:
            shutil.copytree(src, dest)
            json.loads((dest / "config.json").read_text())
            if any(dest.glob("generator*.safetensors")) and any(dest.glob("discriminator*.safetensors")):
                return True
        except (OSError, ValueError):
            pass
        shutil.rmtree(dest, ignore_errors=True)
        time.sleep(1)
    return False
