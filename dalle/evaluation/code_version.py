"""A hash of the code that evaluation and generation run, recorded in metrics.json.

The files are `dalle/evaluation/evaluate.py` and `dalle/pipeline.py` plus every module of the
`dalle` package they import, directly or through each other, at module level or inside functions
(found by reading their import statements), and the `__init__.py` of each package around them.
evaluate.py picks each dataset's evaluation (`dalle/shapes/evaluate.py`, `dalle/evaluation/emoji.py`)
from the dataset registry, `dalle/datasets.py`, so the files the registry imports count too: the datasets'
evaluation and report parts, and their training-data modules.
A metrics.json whose recorded hash differs from `code_hash()` was measured with other code and
must be measured again (`scripts/regenerate.sh`).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # .../dalle
ROOTS = ("evaluation/evaluate.py", "pipeline.py")


def _module_file(name: str, package: Path) -> Path | None:
    """'dalle.shapes.world' -> <package>/data/shapes.py (or its __init__.py); None outside the package."""
    parts = name.split(".")
    if parts[0] != package.name:
        return None
    base = package.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, package: Path) -> set[Path]:
    """Files of the package that `path` imports anywhere (absolute or relative imports), with the
    `__init__.py` of every package around them."""
    here = list(path.relative_to(package.parent).parts[:-1])  # ['dalle', 'evaluation'] for this file
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            names = [module] + [f"{module}.{a.name}" for a in node.names]  # `from . import x` names a module
        found.update(f for f in (_module_file(n, package) for n in names) if f is not None)
    for f in list(found):  # importing a module runs the __init__.py of each package around it
        found.update(d / "__init__.py" for d in f.parents
                     if d.is_relative_to(package) and (d / "__init__.py").is_file())
    return found


def code_files(package: Path = PACKAGE) -> list[Path]:
    """The evaluation and generation files of `package`, sorted."""
    todo = [package / r for r in ROOTS]
    seen: set[Path] = set()
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(_imports(f, package) - seen)
    return sorted(seen)


def code_hash(package: Path = PACKAGE) -> str:
    """sha256 over (path inside the repository, contents with LF line ends) of `code_files()`: 64 hex digits."""
    h = hashlib.sha256()
    for f in code_files(package):
        h.update(f.relative_to(package.parent).as_posix().encode() + b"\0")
        h.update(f.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return h.hexdigest()


def code_record(package: Path = PACKAGE) -> dict:
    """What metrics.json stores under run.code: the hash and the files it covers."""
    return {"sha256": code_hash(package),
            "files": [f.relative_to(package.parent).as_posix() for f in code_files(package)]}
