"""Run the benchmarks: `python -m benchmarks.run [--quick | --smoke] [--out benchmarks/results]`.

Writes results.json (every number, with medians/min/max and the load), summary.md (the tables)
and the plots into --out; `--update-doc` also replaces the results block of BENCHMARKS.md.

Modes: full (default, the numbers in BENCHMARKS.md), --quick (fewer repeats, one app launch,
no thread-setting variants: ~2-3 min), --smoke (tiny random models, one repeat: checks that every
section produces numbers, not how fast they are).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from .common import CHECKPOINT_NAMES, REPO, git_revision, machine_info, prepare_checkpoints, training_jobs

SECTIONS = ("models", "diffusion", "gpu", "stages", "app")
DEFAULT_OUT = REPO / "benchmarks" / "results"
DOC = REPO / "BENCHMARKS.md"
DOC_START, DOC_END = "<!-- results:start -->", "<!-- results:end -->"

# Per mode, the keyword arguments of each section's run(); checkpoint paths are added at run time.
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "models": {"warmup": 2, "repeats": 7, "matmul_n": 2048, "matmul_repeats": 5},
        "stages": {"warmup": 2, "repeats": 8},
        "app": {"launches": 3, "warmup": 2, "repeats": 12},
        "diffusion": {"batches": [1, 4], "steps": 50, "warmup": 1, "repeats": 3},
        "gpu": {"batches": [1, 1024], "warmup": 3, "repeats": 10},
    },
    "quick": {
        "models": {"warmup": 1, "repeats": 3, "matmul_n": 2048, "matmul_repeats": 3},
        "stages": {"warmup": 1, "repeats": 4},
        "app": {"launches": 1, "warmup": 1, "repeats": 5},
        "diffusion": {"batches": [1], "steps": 50, "warmup": 1, "repeats": 1},
        "gpu": {"batches": [1, 1024], "warmup": 1, "repeats": 3},
    },
    "smoke": {
        "models": {"batches": [1, 2], "warmup": 0, "repeats": 1, "matmul_n": 128, "matmul_repeats": 1,
                   "profile": True, "threads": 1},
        "stages": {"warmup": 0, "repeats": 1, "threads": 1, "fake_encoder": True},
        "app": {"launches": 1, "warmup": 0, "repeats": 1, "phases": False},
        "diffusion": {"batches": [1], "steps": 2, "warmup": 0, "repeats": 1, "matmul_n": 128, "matmul_repeats": 1,
                      "threads": 1},
        "gpu": {"batches": [1, 4], "warmup": 0, "repeats": 1, "matmul_n": 128},
    },
}
# Thread settings for the generator/discriminator table (full mode): name -> (env, threads).
VARIANTS: dict[str, tuple[dict[str, str], int]] = {
    "OMP_WAIT_POLICY=PASSIVE, 2 threads": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "1 thread": ({}, 1),
}


def run_section(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run one section in this process and return its result dict."""
    if name == "models":
        from . import models

        return models.run(Path(kwargs.pop("checkpoint")), **_tuples(kwargs))
    if name == "stages":
        from . import stages

        return stages.run(Path(kwargs.pop("checkpoints")), **kwargs)
    if name == "app":
        from . import e2e

        return e2e.run(Path(kwargs.pop("checkpoints")), **kwargs)
    if name == "diffusion":
        from . import diffusion

        if kwargs.pop("tiny", False):
            kwargs["config"] = diffusion.TINY_UNET_CONFIG
        return diffusion.run(**_tuples(kwargs))
    if name == "gpu":
        from . import gpu

        return gpu.run(Path(kwargs.pop("checkpoint")), **_tuples(kwargs))
    raise ValueError(f"unknown section {name!r}")


def _tuples(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def run_section_subprocess(name: str, kwargs: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The same section in a fresh interpreter with extra environment (settings read at start-up,
    such as OMP_WAIT_POLICY, only take effect in a new process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "section.json"
        cmd = [sys.executable, "-m", "benchmarks.run", "--section", name, "--section-kwargs", json.dumps(kwargs),
               "--section-result", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or ''}"}
        return json.loads(out.read_text())


def _clean(x: Any) -> Any:
    """JSON-safe: drop private keys (leading underscore), NaN/inf -> None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def run_all(mode: str = "full", out: Path = DEFAULT_OUT, only: list[str] | None = None,
            checkpoints: Path | None = None, threads: int = 2, plots: bool = True, variants: bool | None = None,
            command: str = "", log: Any = print, overrides: dict[str, dict[str, Any]] | None = None,
            ) -> dict[str, Any]:
    """Run the selected sections and write results.json, summary.md and the plots into `out`.
    `overrides`: {section: {keyword: value}} on top of the mode's settings (`--set`)."""
    sections = [s for s in SECTIONS if not only or s in only]
    settings = {k: {**v, **(overrides or {}).get(k, {})} for k, v in SETTINGS[mode].items()}
    work = Path(tempfile.mkdtemp(prefix="dalle-bench-"))
    ckpts = work / "checkpoints"
    origin = prepare_checkpoints(ckpts, source=checkpoints, tiny=(mode == "smoke"))
    res: dict[str, Any] = {"meta": {**machine_info(threads), "mode": mode, "git": git_revision(),
                                    "started": dt.datetime.now().isoformat(timespec="seconds"),
                                    "command": command or f"python -m benchmarks.run --{mode}", "checkpoints": origin,
                                    "env": {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                                                        "GOMP_SPINCOUNT") if k in os.environ}}}
    previous = out / "results.json"
    if only and previous.exists():  # --only: update those sections of an earlier run in the same folder
        kept = json.loads(previous.read_text())
        for key in SECTIONS + ("models_variants",):
            if key in kept and key not in sections and not (key == "models_variants" and "models" in sections):
                res[key] = kept[key]
        res["meta"]["merged_from"] = kept.get("meta", {}).get("sections_run", {})
    res["meta"]["sections_run"] = {**res["meta"].get("merged_from", {})}
    main = ckpts / CHECKPOINT_NAMES[0]
    prestarted = None
    if mode == "smoke" and "app" in sections:
        # smoke mode only: boot the app while the in-process sections run (timings mean nothing here)
        from .e2e import App

        prestarted = App(ckpts, work)
        prestarted.start()
    import torch

    default_threads = torch.get_num_threads()  # sections that set their own are undone after each
    try:
        for name in sections:
            torch.set_num_threads(default_threads)
            kwargs = dict(settings[name])
            if name in ("models", "gpu"):
                kwargs["checkpoint"] = str(main)
            if name in ("models", "diffusion"):
                kwargs.setdefault("threads", threads)
            if name == "app" and prestarted is not None:
                kwargs["prestarted"] = prestarted
            if name in ("stages", "app"):
                kwargs["checkpoints"] = str(ckpts)
            if name == "diffusion" and mode == "smoke":
                kwargs["tiny"] = True
            log(f"[benchmarks] {name} ...")
            res["meta"]["sections_run"][name] = {
                "started": dt.datetime.now().isoformat(timespec="seconds"), "command": command,
                "training_jobs": " ".join(f"{j['pid']}:{j['state']}" for j in training_jobs()) or "none"}
            t0 = time.perf_counter()
            try:
                res[name] = run_section(name, dict(kwargs))
            except Exception as e:  # noqa: BLE001 - one failed section must not lose the others
                res[name] = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
                if mode == "smoke":
                    raise
                traceback.print_exc()
            log(f"[benchmarks] {name} done in {time.perf_counter() - t0:.0f} s")
            out.mkdir(parents=True, exist_ok=True)  # partial results survive a later timeout
            (out / "results.json").write_text(json.dumps(_clean(res), indent=1))
            if name == "app":
                prestarted = None
            if name == "models" and (variants if variants is not None else mode == "full"):
                res["models_variants"] = {}
                for vname, (env, th) in VARIANTS.items():
                    log(f"[benchmarks] models, {vname} ...")
                    vk = {**kwargs, "threads": th, "profile": False, "batches": [1, 4, 16, 64]}
                    res["models_variants"][vname] = run_section_subprocess("models", vk, env)
    finally:
        torch.set_num_threads(default_threads)
        if prestarted is not None:  # the app section was skipped or failed before using it
            prestarted.stop()
    res["meta"]["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    res["meta"].pop("merged_from", None)
    return write_report(_clean(res), out, plots)


def write_report(res: dict[str, Any], out: Path, plots: bool = True) -> dict[str, Any]:
    """(Re)compute the targets, write results.json, summary.md and the plots into `out`."""
    from . import report

    res["targets"] = report.targets(res)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    md = report.markdown(res)
    files = report.plots(res, out) if plots else []
    if files:
        rel = [_rel(f, DOC.parent) for f in files]
        md += "\n" + "\n".join(f"![{Path(r).stem}]({r})" for r in rel) + "\n"
    (out / "summary.md").write_text(md)
    return res


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def update_doc(summary: str, doc: Path = DOC) -> None:
    """Replace the text between the results markers of BENCHMARKS.md with `summary`."""
    text = doc.read_text()
    if DOC_START not in text or DOC_END not in text:
        raise SystemExit(f"{doc} has no {DOC_START} ... {DOC_END} block")
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    doc.write_text(f"{head}{DOC_START}\n{summary.strip()}\n{DOC_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    m = p.add_mutually_exclusive_group()
    m.add_argument("--quick", action="store_true", help="fewer repeats, one app launch (~2-3 min)")
    m.add_argument("--smoke", action="store_true", help="tiny random models, one repeat: numbers, not speed")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json, summary.md, plots")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--checkpoints", type=Path, default=None,
                   help="folder holding emoji-64/ and shapes-32/ (default: checkpoints/, then runs/*/checkpoint, "
                        "then random weights of the same architecture)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for the model sections")
    p.add_argument("--variants", action=argparse.BooleanOptionalAction, default=None,
                   help="also time G/D with other thread settings (default: on in full mode)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                   help="override one setting, e.g. --set app.repeats=8 --set diffusion.batches=[1]")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--update-doc", action="store_true", help="write summary.md into BENCHMARKS.md's results block")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild summary.md, the plots (and with --update-doc BENCHMARKS.md) from --out/results.json")
    p.add_argument("--section", help=argparse.SUPPRESS)
    p.add_argument("--section-kwargs", help=argparse.SUPPRESS)
    p.add_argument("--section-result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.section:  # internal: one section in a fresh process (see run_section_subprocess)
        result = run_section(args.section, json.loads(args.section_kwargs or "{}"))
        Path(args.section_result).write_text(json.dumps(_clean(result)))
        return 0
    if args.report_only:
        res = json.loads((args.out / "results.json").read_text())
        write_report(res, args.out, not args.no_plots)
        summary = (args.out / "summary.md").read_text()
        print(summary)
        if args.update_doc:
            update_doc(summary)
        return 0
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {sorted(unknown)}")
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name or not value:
            p.error(f"--set wants SECTION.KEY=JSON with SECTION in {SECTIONS}, got {item!r}")
        try:
            overrides.setdefault(section, {})[name] = json.loads(value)
        except json.JSONDecodeError:
            overrides.setdefault(section, {})[name] = value
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    res = run_all(mode, args.out, only, args.checkpoints, args.threads, not args.no_plots, args.variants,
                  command.strip(), overrides=overrides)
    summary = (args.out / "summary.md").read_text()
    print(summary)
    if args.update_doc:
        update_doc(summary)
    failed = [k for k, v in res.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
