"""Nothing the app or the library loads can run code.

1. A static scan (ast) of every .py under dalle/ and demo/ and of app.py: no pickle.load(s)
   (nor Unpickler, marshal, shelve, dill, joblib), torch.load only with weights_only=True,
   numpy.load never with allow_pickle=True, no eval/exec. Import aliases are followed
   (`import pickle as p`, `from torch import load`), and the scanner is tested on bad code.
2. A dynamic check: while `TextToImagePipeline.from_pretrained` loads a copied checkpoint
   (with decoy files beside it), every file opened under the checkpoint folder is a .json or
   .safetensors file, and no unpickling happens at all, text encoder included.
"""

from __future__ import annotations

import ast
import builtins
import io
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted([*REPO.joinpath("dalle").rglob("*.py"), *REPO.joinpath("demo").rglob("*.py"), REPO / "app.py"])

FORBIDDEN_CALLS = {  # fully qualified name -> why
    "pickle.load": "unpickling runs code", "pickle.loads": "unpickling runs code",
    "pickle.Unpickler": "unpickling runs code", "_pickle.load": "unpickling runs code",
    "_pickle.loads": "unpickling runs code", "cPickle.load": "unpickling runs code",
    "cPickle.loads": "unpickling runs code", "dill.load": "unpickling runs code",
    "dill.loads": "unpickling runs code", "joblib.load": "joblib unpickles",
    "marshal.load": "marshal loads code objects", "marshal.loads": "marshal loads code objects",
    "shelve.open": "shelve unpickles", "pandas.read_pickle": "unpickling runs code",
    "builtins.eval": "eval runs code", "builtins.exec": "exec runs code",
    "yaml.unsafe_load": "builds arbitrary objects",
}


def _qualify(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """`np.load` -> "numpy.load" given `import numpy as np`; None for calls on other objects."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    head = aliases.get(node.id)
    if head is None:
        if node.id in ("eval", "exec") and not parts:
            head = f"builtins.{node.id}"  # the builtins, unless shadowed by an import
        else:
            return None
    return ".".join([head, *reversed(parts)])


def _aliases(tree: ast.AST) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    out[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every unsafe loading or code-running call in `source`, as 'file:line: call (why)'."""
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _qualify(node.func, aliases)
        if name is None:
            continue
        why = FORBIDDEN_CALLS.get(name)
        if name == "torch.load" and not _is_const(_kw(node, "weights_only"), True):
            why = "torch.load without weights_only=True unpickles"
        elif name == "numpy.load" and not (_kw(node, "allow_pickle") is None
                                           or _is_const(_kw(node, "allow_pickle"), False)):
            why = "numpy.load with allow_pickle unpickles"
        elif name == "yaml.load" and not any(isinstance(a, ast.Attribute) and a.attr.startswith("Safe")
                                             for a in [*node.args[1:], _kw(node, "Loader")]):
            why = "yaml.load without a SafeLoader builds arbitrary objects"
        if why:
            found.append(f"{filename}:{node.lineno}: {name} ({why})")
    return found


# ------------------------------------------------------------------------------ the scanner itself
SHOULD_FLAG = [
    "import pickle\npickle.load(f)",
    "import pickle as pk\npk.loads(b)",
    "from pickle import loads\nloads(b)",
    "from pickle import load as l\nl(f)",
    "import pickle\npickle.Unpickler(f).load()",
    "import torch\ntorch.load('x.pt')",
    "import torch\ntorch.load('x.pt', weights_only=False)",
    "from torch import load\nload('x.pt', map_location='cpu')",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
    "import numpy\nnumpy.load('x.npy', allow_pickle=flag)",
    "eval('1+1')",
    "exec(code)",
    "import builtins\nbuiltins.eval(s)",
    "import marshal\nmarshal.loads(b)",
    "import joblib\njoblib.load('m.joblib')",
    "import yaml\nyaml.load(s)",
]
SHOULD_PASS = [
    "import torch\ntorch.load('x.pt', weights_only=True)",
    "import numpy as np\nnp.load('x.npy')",
    "import numpy as np\nnp.load('x.npy', allow_pickle=False)",
    "model.eval()",
    "self.generator.eval().requires_grad_(False)",
    "from safetensors.torch import load_file\nload_file('x.safetensors')",
    "import json\njson.loads(s)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
]


@pytest.mark.parametrize("source", SHOULD_FLAG)
def test_scanner_flags_unsafe_code(source: str) -> None:
    assert unsafe_calls(source), f"not flagged:\n{source}"


@pytest.mark.parametrize("source", SHOULD_PASS)
def test_scanner_passes_safe_code(source: str) -> None:
    assert unsafe_calls(source) == [], source


# ------------------------------------------------------------------------------ the project
def test_sources_are_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in SOURCES}
    assert {"app.py", "dalle/checkpoint.py", "dalle/pipeline.py", "demo/service.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=[p.relative_to(REPO).as_posix() for p in SOURCES])
def test_no_unsafe_loading_or_eval(path: Path) -> None:
    assert unsafe_calls(path.read_text(encoding="utf-8"), path.relative_to(REPO).as_posix()) == []


# ------------------------------------------------------------------------------ what loading opens
class Recorder:
    """Every file path opened from Python (audit hook: builtins/io/os/pathlib opens) or handed to
    safetensors, plus any unpickling (pickle.find_class audit event, torch.load)."""

    active = False
    opened: list[str] = []
    unpickled: list[str] = []

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if not cls.active:
            return
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            cls.opened.append(os.fsdecode(args[0]))
        elif event == "pickle.find_class":
            cls.unpickled.append(f"{args[0]}.{args[1]}")


_HOOKED = False


@pytest.fixture()
def recorder(monkeypatch) -> Recorder:
    global _HOOKED
    if not _HOOKED:  # audit hooks cannot be removed: install once, switch on and off
        sys.addaudithook(Recorder.hook)
        _HOOKED = True
    Recorder.opened, Recorder.unpickled = [], []

    import safetensors
    import safetensors.torch

    import dalle.checkpoint

    def wrap(fn):
        def recorded(filename, *args, **kwargs):
            Recorder.opened.append(os.fsdecode(filename))
            return fn(filename, *args, **kwargs)
        return recorded

    for mod, attr in ((dalle.checkpoint, "load_file"), (safetensors.torch, "load_file"),
                      (safetensors, "safe_open"), (safetensors.torch, "safe_open")):
        if hasattr(mod, attr):
            monkeypatch.setattr(mod, attr, wrap(getattr(mod, attr)))

    def no_torch_load(*args, **kwargs):
        Recorder.unpickled.append(f"torch.load{args[:1]}")
        raise AssertionError("torch.load called while loading a checkpoint")

    monkeypatch.setattr(torch, "load", no_torch_load)
    Recorder.active = True
    yield Recorder
    Recorder.active = False


def test_the_recorder_sees_python_and_safetensors_opens(recorder, tmp_path: Path) -> None:
    from safetensors.torch import load_file as lf
    from safetensors.torch import save_file

    import dalle.checkpoint

    (tmp_path / "a.json").write_text("{}")
    Path(tmp_path / "a.json").read_text()
    with builtins.open(tmp_path / "a.json") as f, io.open(tmp_path / "a.json") as g:
        f.read(), g.read()
    os.close(os.open(tmp_path / "a.json", os.O_RDONLY))
    save_file({"x": torch.zeros(1)}, str(tmp_path / "t.safetensors"))
    dalle.checkpoint.load_file(str(tmp_path / "t.safetensors"))
    import pickle

    pickle.loads(pickle.dumps(Path("x")))
    opened = [p for p in recorder.opened if p.startswith(str(tmp_path))]
    assert opened.count(str(tmp_path / "a.json")) >= 4 and str(tmp_path / "t.safetensors") in opened
    assert recorder.unpickled and lf is not None


@pytest.fixture()
def checkpoint_copy(checkpoints_dir: Path, tmp_path: Path) -> Path:
    """A copy of the app tests' shapes-32 with decoys a careless loader might open."""
    dest = shutil.copytree(checkpoints_dir / "shapes-32", tmp_path / "shapes-copy")
    (dest / "metrics.json").write_text('{"fid": 1.0}')
    (dest / "samples.png").write_bytes(b"\x89PNG decoy")
    (dest / "notes.txt").write_text("decoy")
    (dest / "optimizer.npz").write_bytes(b"decoy")
    (dest / "extra.safetensors.bak").write_bytes(b"decoy")
    return dest


def test_checkpoint_loading_opens_only_json_and_safetensors(recorder, checkpoint_copy: Path) -> None:
    from dalle.checkpoint import model_config, read_config
    from dalle.pipeline import TextToImagePipeline
    from dalle.text_encoder import TextEncoder

    recorder.active = False
    encoder = TextEncoder(model_config(read_config(checkpoint_copy)).text_encoder)  # outside the record
    recorder.opened.clear()
    recorder.active = True
    pipe = TextToImagePipeline.from_pretrained(checkpoint_copy, device="cpu", text_encoder=encoder)
    recorder.active = False
    inside = sorted({Path(p).resolve() for p in recorder.opened
                     if Path(p).resolve().is_relative_to(checkpoint_copy.resolve())})
    assert inside, "nothing recorded: the recorder is broken"
    assert {p.suffix for p in inside} <= {".json", ".safetensors"}, inside
    assert {p.name for p in inside} >= {"config.json", "generator.safetensors", "discriminator.safetensors"}
    assert recorder.unpickled == []
    assert pipe.step >= 0


def test_text_encoder_loading_unpickles_nothing(recorder, checkpoint_copy: Path) -> None:
    """The packaged text encoder ships safetensors; loading it (as the app does) opens no pickle
    file and runs no unpickler."""
    from dalle.pipeline import TextToImagePipeline

    recorder.opened.clear()
    TextToImagePipeline.from_pretrained(checkpoint_copy, device="cpu")
    recorder.active = False
    pickles = [p for p in recorder.opened if Path(p).suffix.lower() in (".pt", ".pth", ".pkl", ".pickle",
                                                                        ".bin", ".ckpt", ".joblib")]
    assert pickles == [] and recorder.unpickled == []
