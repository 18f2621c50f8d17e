"""Faults in checkpoint folders: each refused with a one-line reason naming the file (library),
and the app keeps serving the good checkpoints while it reports the broken ones (app).

Library level goes through `TextToImagePipeline.from_pretrained`, the app's own entry point;
the text encoder is a stand-in with the right name, because every check runs before the
encoder would be used. App level starts `python app.py` on a folder with one good checkpoint
and the same faults, and reads the status line the UI shows (the `/rescan` endpoint).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError
from safetensors.torch import load_file, save_file
from test_reliability_support import AppProcess

from dalle.checkpoint import CheckpointError, save_checkpoint
from dalle.config import FORMAT_VERSION, ModelConfig
from dalle.models.discriminator import Discriminator
from dalle.models.generator import Generator
from dalle.pipeline import TextToImagePipeline

CFG = ModelConfig(resolution=32, channel_base=128, d_channel_base=256, z_dim=8, cond_dim=8, w_dim=32,
                  mapping_layers=2, embed_dim=32)


# ------------------------------------------------------------------------------ the faults
def truncate(name: str, keep: float) -> Callable[[Path], None]:
    def f(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: int(len(data) * keep)])
    return f


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def edit_config(**changes) -> Callable[[Path], None]:
    """Change top-level config.json keys; `model__x=v` changes model field x."""
    def f(d: Path) -> None:
        cfg = json.loads((d / "config.json").read_text())
        for k, v in changes.items():
            if k.startswith("model__"):
                cfg["model"][k[len("model__"):]] = v
            else:
                cfg[k] = v
        (d / "config.json").write_text(json.dumps(cfg))
    return f


def edit_tensors(stem: str, fn: Callable[[dict], dict]) -> Callable[[Path], None]:
    def f(d: Path) -> None:
        path = d / f"{stem}.safetensors"
        save_file(fn(dict(load_file(str(path)))), str(path))
    return f


def first_float_to_nan(t: dict) -> dict:
    k = next(k for k, v in t.items() if v.is_floating_point())
    t[k] = t[k].clone()
    t[k].view(-1)[0] = float("nan")
    return t


def drop_one(t: dict) -> dict:
    t.pop(sorted(t)[0])
    return t


def swap_symlink(name: str, target: str) -> Callable[[Path], None]:
    def f(d: Path) -> None:
        (d / name).unlink()
        (d / name).symlink_to(target)
    return f


# (case id, how to break a good folder, regex for the one-line reason)
FAULTS = [
    ("truncated-half", truncate("generator.safetensors", 0.5), r"generator\.safetensors: corrupt or truncated"),
    ("truncated-to-empty", truncate("generator.safetensors", 0), r"generator\.safetensors: corrupt or truncated"),
    ("truncated-discriminator", truncate("discriminator.safetensors", 0.9),
     r"discriminator\.safetensors: corrupt or truncated"),
    ("zero-bytes-garbage", write("generator.safetensors", b"\x00" * 16), r"generator\.safetensors: corrupt"),
    ("header-claims-4-EiB", write("generator.safetensors", struct.pack("<Q", 2**62) + b"{}"),
     r"generator\.safetensors: corrupt or truncated .*header too large"),
    ("header-not-json", write("generator.safetensors", struct.pack("<Q", 12) + b'{"a: "b"}   '),
     r"generator\.safetensors: corrupt"),
    ("symlink-to-etc-passwd", swap_symlink("generator.safetensors", "/etc/passwd"), r"generator\.safetensors: corrupt"),
    ("weights-missing", lambda d: (d / "generator.safetensors").unlink(), r"generator\.safetensors: missing"),
    ("wrong-shapes", edit_config(model__w_dim=48), r"generator\.safetensors: tensor '.*' has shape .* expected"),
    ("wrong-resolution", edit_config(model__resolution=64), r"\.safetensors: (tensor|does not match)"),
    ("tensor-missing", edit_tensors("generator", drop_one), r"generator\.safetensors: does not match the config"),
    ("nan-weights", edit_tensors("generator", first_float_to_nan), r"generator\.safetensors: tensor .* NaN or inf"),
    ("config-missing", lambda d: (d / "config.json").unlink(), r"config\.json: missing"),
    ("config-not-json", write("config.json", b"{not json"), r"config\.json: not valid JSON"),
    ("config-binary", write("config.json", b"\xff\xfe\x00garbage"), r"config\.json: not valid JSON"),
    ("config-a-list", write("config.json", b"[1, 2, 3]"), r"config\.json: no 'model' section"),
    ("config-newer-format", edit_config(format_version=FORMAT_VERSION + 1),
     r"config\.json: format version \d+ is newer than this library reads"),
    ("config-no-format-version", edit_config(format_version=None), r"config\.json: missing or invalid format_version"),
    ("config-unknown-model-field", edit_config(model__evil="x"), r"config\.json: bad model config"),
    ("pickle-pt", write("generator.pt", b"\x80\x04K\x01."), r"generator\.pt: pickle-based files are refused"),
    ("pickle-pkl", write("model.pkl", b"\x80\x04K\x01."), r"model\.pkl: pickle-based files are refused"),
    ("pickle-bin-uppercase", write("PYTORCH_MODEL.BIN", b"\x80\x04K\x01."), r"PYTORCH_MODEL\.BIN: pickle-based"),
    ("pickle-ckpt", write("last.ckpt", b"\x80\x04K\x01."), r"last\.ckpt: pickle-based files are refused"),
]

# Model configs of the right keys but wrong types or values: today these escape as TypeError /
# ZeroDivisionError from building the networks, without the file's name.
BAD_MODEL_VALUES = [
    ("resolution-string", edit_config(model__resolution="abc")),
    ("resolution-zero", edit_config(model__resolution=0)),
    ("z-dim-float", edit_config(model__z_dim=8.5)),
    ("cond-noise-negative", edit_config(model__cond_noise=-1.0)),
    ("cond-noise-string", edit_config(model__cond_noise="0.1")),
]

ENCODER = SimpleNamespace(name=CFG.text_encoder)  # from_pretrained only compares the name


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "good", {"model": CFG.to_dict(), "name": "good", "step": 3},
                           Generator(CFG), Discriminator(CFG), {"samples.png": b"png", "log.csv": b"step\n"})


def broken_copy(good: Path, name: str, breaker: Callable[[Path], None]) -> Path:
    dest = good.parent / name
    shutil.copytree(good, dest, symlinks=True)
    breaker(dest)
    return dest


def test_the_good_folder_loads(good: Path) -> None:
    pipe = TextToImagePipeline.from_pretrained(good, device="cpu", text_encoder=ENCODER)
    assert pipe.step == 3


@pytest.mark.parametrize("breaker,reason", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_fault_is_refused_with_a_one_line_reason(good: Path, breaker, reason: str) -> None:
    folder = broken_copy(good, "broken", breaker)
    with pytest.raises(CheckpointError, match=reason) as e:
        TextToImagePipeline.from_pretrained(folder, device="cpu", text_encoder=ENCODER)
    message = str(e.value)
    assert "\n" not in message and len(message) < 500, message
    assert message.startswith(str(folder)), f"the reason does not name the file: {message}"


@pytest.mark.parametrize("breaker", [f[1] for f in BAD_MODEL_VALUES], ids=[f[0] for f in BAD_MODEL_VALUES])
def test_bad_model_values_are_a_checkpoint_error(good: Path, breaker) -> None:
    folder = broken_copy(good, "broken", breaker)
    with pytest.raises(CheckpointError, match=r"config\.json: bad model config"):
        TextToImagePipeline.from_pretrained(folder, device="cpu", text_encoder=ENCODER)


def test_a_pickle_is_never_unpickled(good: Path, monkeypatch) -> None:
    """A real pickle whose loading would run code: refused by name, and nothing unpickles it."""
    import pickle

    marker = good.parent / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (good / "generator.pt").write_bytes(pickle.dumps(Evil()))
    (good / "generator.safetensors").unlink()  # tempt a fallback to the .pt
    with pytest.raises(CheckpointError, match="pickle-based files are refused"):
        TextToImagePipeline.from_pretrained(good, device="cpu", text_encoder=ENCODER)
    assert not marker.exists()


# ------------------------------------------------------------------------------ the app
APP_FAULTS = {  # folder name -> (how to break a copy of the good one, words its status line must contain)
    "truncated": (truncate("generator.safetensors", 0.5), "generator.safetensors: corrupt or truncated"),
    "wrong-shapes": (edit_config(model__w_dim=48), "has shape"),
    "newer-format": (edit_config(format_version=FORMAT_VERSION + 1), "newer than this library reads"),
    "with-pickle": (write("generator.pt", b"\x80\x04K\x01."), "generator.pt: pickle-based files are refused"),
    "config-not-json": (write("config.json", b"{oops"), "not readable JSON"),
    "nan-weights": (edit_tensors("generator", first_float_to_nan), "NaN or inf"),
}


@pytest.fixture(scope="module")
def faulty_app(checkpoints_dir: Path, tmp_path_factory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("faulty-checkpoints")
    good = root / "good"
    shutil.copytree(checkpoints_dir / "shapes-32", good)
    for name, (breaker, _) in APP_FAULTS.items():
        broken_copy(good, name, breaker)
    weights_only = root / "no-config"  # weights without config.json
    weights_only.mkdir()
    shutil.copy(good / "generator.safetensors", weights_only)
    (root / "only-a-pickle").mkdir()
    (root / "only-a-pickle" / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    app = AppProcess(root, tmp_path_factory.mktemp("faulty-app")).wait_ready()
    try:
        yield SimpleNamespace(root=root, app=app, client=Client(app.url, verbose=False, download_files=False))
    finally:
        app.stop()


def status_line(client: Client) -> tuple[str, list[str]]:
    status, choices, *_ = client.predict("good", ["good"], "good", "good", api_name="/rescan")
    return status, [c[0] for c in choices["choices"]]


def test_app_serves_the_good_checkpoint_and_reports_the_broken(faulty_app) -> None:
    status, names = status_line(faulty_app.client)
    assert names == ["good"], names
    lines = status.splitlines()
    for name, (_, words) in APP_FAULTS.items():
        line = next((ln for ln in lines if f"`{name}` failed to load" in ln), None)
        assert line is not None, f"{name} is not reported:\n{status}"
        assert words in line, f"{name}: {line!r} lacks {words!r}"
    assert str(faulty_app.root) not in status, "the status line shows the server's folder layout"
    _png, table, notes = faulty_app.client.predict("a red circle", 1, 0.7, 2, "good", 0, api_name="/generate")
    assert len(table["data"]) == 2 and "good" in notes
    assert faulty_app.app.alive()


@pytest.mark.parametrize("name", [*APP_FAULTS, "no-config", "only-a-pickle"])
def test_app_refuses_broken_names(faulty_app, name: str) -> None:
    with pytest.raises(AppError, match=f"Unknown checkpoint '{name}'; choose one of: good"):
        faulty_app.client.predict("a red circle", 1, 0.7, 1, name, 0, api_name="/generate")


def test_app_reports_weights_without_a_config(faulty_app) -> None:
    status, _ = status_line(faulty_app.client)
    assert "`no-config` failed to load" in status and "config.json" in status
    assert "`only-a-pickle` failed to load" in status
