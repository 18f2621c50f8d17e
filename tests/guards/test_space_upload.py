"""The README's `hf upload` command sends the app and the shipped checkpoints, and nothing else.

The files are selected the way `huggingface_hub` selects them for a folder upload: every file
under the folder, kept by the command's --include patterns, dropped by its --exclude patterns
and huggingface_hub's own defaults (.git)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("runs/", "data/", "benchmarks/", ".venv/", "venv/", "tests/", ".git/")  # never sent
ANYWHERE = ("train_state/", "state/", "__pycache__/")  # a training run's resume state, bytecode
LIMIT_BYTES = 100 * 1000 * 1000


def upload_command() -> list[str]:
    """The `hf upload ...` line of the README, split as the shell splits it."""
    lines = [ln for ln in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
             if ln.startswith("hf upload ")]
    assert len(lines) == 1, f"expected one `hf upload` line in README.md, found {len(lines)}"
    return shlex.split(lines[0])


def patterns(argv: list[str], flag: str) -> list[str]:
    """Values of a repeatable `--flag VALUE` option."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def upload_set(folder: Path, include: list[str], exclude: list[str]) -> dict[str, int]:
    """{path relative to folder: bytes} of what `hf upload REPO folder --include ... --exclude ...` sends."""
    from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
    from huggingface_hub.utils import filter_repo_objects

    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
    kept = filter_repo_objects(files, allow_patterns=include or None, ignore_patterns=exclude + DEFAULT_IGNORE_PATTERNS)
    return {rel: files[rel].stat().st_size for rel in kept}


def test_upload_command_is_the_documented_shape() -> None:
    argv = upload_command()
    assert argv[:5] == ["hf", "upload", "USER/SPACE", ".", "--repo-type=space"]
    assert patterns(argv, "--include"), "without --include the whole working tree (venv, runs, data) is sent"


def test_upload_set_is_the_app_and_its_checkpoints_only(capsys) -> None:
    argv = upload_command()
    sent = upload_set(REPO, patterns(argv, "--include"), patterns(argv, "--exclude"))
    with capsys.disabled():
        print(f"\n{len(sent)} files, {sum(sent.values()) / 1e6:.1f} MB:")
        for rel, size in sent.items():
            print(f"  {size / 1e6:8.3f} MB  {rel}")
    bad = [rel for rel in sent if rel.startswith(TOP_LEVEL) or any(f"/{part}" in f"/{rel}" for part in ANYWHERE)]
    assert not bad, f"the upload would send {bad[:10]}"
    assert sum(sent.values()) < LIMIT_BYTES, f"{sum(sent.values()) / 1e6:.1f} MB"
    for needed in ("app.py", "requirements.txt", "README.md", "demo/layout.py", "dalle/pipeline.py",
                   "checkpoints/evaluator/evaluator.safetensors", "dalle/data/emoji_names.json"):
        assert needed in sent, f"{needed} would be missing on the Space"
    shipped = [p.parent.name for p in (REPO / "checkpoints").glob("*/generator.safetensors")]
    assert shipped and all(f"checkpoints/{name}/generator.safetensors" in sent for name in shipped)
    assert all(re.fullmatch(r"[\w./-]+", rel) for rel in sent)


def test_upload_set_leaves_out_what_training_and_tests_leave_behind(tmp_path: Path) -> None:
    """The same command on a folder that has every kind of leftover: only the app side is sent."""
    for rel in ("app.py", "requirements.txt", "README.md", "dalle/pipeline.py", "dalle/shapes/world.py",
                "demo/layout.py", "checkpoints/shapes-32/config.json", "runs/shapes-32/state/optimizer.safetensors",
                "runs/x/train_state/state.json", "data/emoji/images.npy", "benchmarks/results/results.json",
                ".venv/lib/python3.11/site-packages/torch/__init__.py", "venv/bin/python",
                "demo/__pycache__/layout.cpython-311.pyc", "dalle/__pycache__/pipeline.cpython-311.pyc",
                ".git/config", "tests/test_x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    argv = upload_command()
    sent = set(upload_set(tmp_path, patterns(argv, "--include"), patterns(argv, "--exclude")))
    assert sent == {"app.py", "requirements.txt", "README.md", "dalle/pipeline.py", "dalle/shapes/world.py",
                    "demo/layout.py", "checkpoints/shapes-32/config.json"}
