"""Fixed-budget recipe comparison: train each variant for the same wall-clock minutes, evaluate, tabulate.

    python -m dalle ablate --preset shapes --minutes 8 \
        --variant "base=" --variant "no-recon=--recon none"

Each variant is `python -m dalle train --preset P --max-minutes M --threads 1 <its flags>` in its own
process (`--parallel` at once, one core each), then `python -m dalle evaluate` on its checkpoint.
The table goes to stdout and, with `--doc`, replaces the matching section of a Markdown file,
together with the command that reproduced it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .report import summary


@dataclass
class Variant:
    name: str  # row label and run folder name
    flags: list[str]  # extra `train` flags on top of the preset


def parse_variant(spec: str) -> Variant:
    """'name=--flag value ...' -> Variant. An empty flag list is the preset itself."""
    name, sep, flags = spec.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"variant {spec!r}: write it as NAME=FLAGS, for example 'no-recon=--recon none'")
    return Variant(name.strip(), shlex.split(flags))


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "ab") as f:
        f.write(("$ " + shlex.join(cmd) + "\n").encode())
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)


def train_and_evaluate(variant: Variant, preset: str, minutes: float, root: Path) -> dict:
    """Train one variant for `minutes` on one thread, evaluate it; returns its metrics.json as a dict."""
    out = root / variant.name
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    _run([py, "-m", "dalle", "train", "--preset", preset, "--out", str(out), "--max-minutes", str(minutes),
          "--threads", "1", *variant.flags], out / "ablate.log")
    metrics_path = out / "metrics.json"
    _run([py, "-m", "dalle", "evaluate", str(out / "checkpoint"), "--out", str(metrics_path), "--no-sweep"],
         out / "ablate.log")
    return json.loads(metrics_path.read_text())


def markdown_table(rows: list[tuple[Variant, dict]]) -> str:
    cols = list(rows[0][1])
    lines = ["| variant | flags | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for v, r in rows:
        cells = ["-" if r[c] is None else (f"{r[c]:.3f}" if isinstance(r[c], float) and c != "kimg" else str(r[c]))
                 for c in cols]
        lines.append(f"| {v.name} | `{shlex.join(v.flags) or '(preset)'}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_section(doc: Path, title: str, body: str) -> None:
    """Replace (or append) the `## title` section of a Markdown file."""
    text = doc.read_text() if doc.exists() else ""
    head = f"## {title}\n"
    start = text.find(head)
    block = head + "\n" + body.strip() + "\n\n"
    if start < 0:
        text = text.rstrip() + ("\n\n" if text.strip() else "") + block
    else:
        end = text.find("\n## ", start + len(head))
        text = text[:start] + block + (text[end + 1:] if end >= 0 else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def ablate(variants: list[Variant], preset: str, minutes: float, root: Path, parallel: int = 2,
           doc: Path | None = None, title: str = "", command: str = "") -> str:
    """Train and evaluate every variant at the same budget; returns (and optionally writes) the table."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must differ: {names}")
    start = time.time()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(lambda v: train_and_evaluate(v, preset, minutes, root), variants))
    table = markdown_table([(v, summary(m)) for v, m in zip(variants, results)])
    if doc is not None:
        body = (f"Each row: `{preset}` preset, {minutes:g} min of training on one CPU thread, "
                f"{parallel} at once; evaluated with `python -m dalle evaluate --no-sweep` "
                f"(finished {time.strftime('%Y-%m-%d')}, {time.time() - start:.0f} s in all).\n\n"
                f"```bash\n{command}\n```\n\n{table}")
        write_section(doc, title or f"{preset}, {minutes:g} min", body)
    return table
