"""Paired before/after of the app: `python -m benchmarks.ab --after-repo /tmp/perf [--before-repo .]`.

On a shared box the load drifts by more than the effect of a change, so two separate runs cannot
be compared. Here both apps (the current tree and a scratch copy with a change applied) run from
the same checkpoints, and every measurement alternates between them: cold starts A, B, B, A, ...,
and warm calls A, B, B, A, ... for each scenario. Each figure is reported per side (median, min,
max) and as the median of the per-pair ratios before/after.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import CHECKPOINT_NAMES, REPO, LoadMeter, fmt, machine_info, prepare_checkpoints, proc_memory, stats
from .e2e import EMOJI_PROMPTS, App, _generate, cold_start

SCENARIOS = ("1x4_hit", "1x4_miss", "4x4_hit", "4x4_miss", "1x4_hit_no_download")


def _pair_order(i: int) -> tuple[str, str]:
    return ("before", "after") if i % 2 == 0 else ("after", "before")


def run(checkpoints: Path, before_repo: Path, after_repo: Path, launches: int = 3, warmup: int = 1,
        repeats: int = 10, checkpoint: str = CHECKPOINT_NAMES[0]) -> dict[str, Any]:
    from gradio_client import Client

    repos = {"before": before_repo, "after": after_repo}
    work = Path(tempfile.mkdtemp(prefix="dalle-bench-ab-"))
    cold: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    rss: dict[str, list[float]] = {"before": [], "after": []}
    warm: dict[str, dict[str, list[float]]] = {s: {"before": [], "after": []} for s in SCENARIOS}
    token = secrets.token_hex(3)
    counter = iter(range(10 ** 9))
    with LoadMeter() as load:
        # launch 0 of each side: cold start, then the warm scenarios with both servers up
        apps: dict[str, App] = {}
        clients: dict[str, Any] = {}
        try:
            for tag in _pair_order(0):
                app = App(checkpoints, work, repo=repos[tag])
                apps[tag] = app
                first, clients[tag] = cold_start(app, checkpoint, work / f"dl-{tag}", load)
                cold[tag].append(first)
            plain = {t: Client(apps[t].url, verbose=False, download_files=False, ssl_verify=False) for t in apps}
            for t in apps:  # both checkpoints' pipelines used once, as in e2e.run
                _generate(clients[t], [EMOJI_PROMPTS[1]], 0, 4, "shapes-32")
            for scenario in SCENARIOS:
                k = 4 if scenario.startswith("4x4") else 1
                miss = "miss" in scenario
                for i in range(warmup + repeats):
                    prompts = ([f"{EMOJI_PROMPTS[j % 4]} {token} {next(counter)}" for j in range(k)] if miss
                               else list(EMOJI_PROMPTS[:k]))  # the same new prompts for both sides
                    for tag in _pair_order(i):
                        c = plain[tag] if scenario.endswith("no_download") else clients[tag]
                        t0 = time.perf_counter()
                        _generate(c, prompts, i + 1, 4, checkpoint)
                        if i >= warmup:
                            warm[scenario][tag].append(time.perf_counter() - t0)
            for tag, app in apps.items():
                assert app.proc is not None
                rss[tag].append(proc_memory(app.proc.pid)["vm_hwm_mib"] or 0.0)
        finally:
            for app in apps.values():
                if app.proc is not None:
                    load.untrack(app.proc.pid)
                app.stop()
        # further cold starts, alternating which side goes first
        for i in range(1, launches):
            for tag in _pair_order(i):
                app = App(checkpoints, work, repo=repos[tag])
                try:
                    first, _ = cold_start(app, checkpoint, work / f"dl-{tag}", load)
                    cold[tag].append(first)
                    assert app.proc is not None
                    rss[tag].append(proc_memory(app.proc.pid)["vm_hwm_mib"] or 0.0)
                finally:
                    if app.proc is not None:
                        load.untrack(app.proc.pid)
                    app.stop()
    out: dict[str, Any] = {"before_repo": str(before_repo), "after_repo": str(after_repo), "launches": launches,
                           "repeats": repeats, "load": load.result, "rows": {}}
    for scenario, sides in warm.items():
        ratios = [b / a for b, a in zip(sides["before"], sides["after"])]
        out["rows"][f"warm generate {scenario.replace('_', ' ')} (ms)"] = {
            "before": stats([x * 1000 for x in sides["before"]]), "after": stats([x * 1000 for x in sides["after"]]),
            "paired_speedup": statistics.median(ratios)}
    for phase in ("http_ready_s", "first_image_s"):
        b = [c[phase] for c in cold["before"]]
        a = [c[phase] for c in cold["after"]]
        out["rows"][f"cold start → {phase.replace('_s', '').replace('_', ' ')} (s)"] = {
            "before": stats(b), "after": stats(a), "paired_speedup": statistics.median(x / y for x, y in zip(b, a))}
    out["rows"]["peak RSS, VmHWM (MiB)"] = {"before": stats(rss["before"]), "after": stats(rss["after"]),
                                           "paired_speedup": statistics.median(x / y for x, y in zip(rss["before"], rss["after"]))}
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = ["| figure | before: median [min–max] | after: median [min–max] | paired speed-up (median of ratios) |",
             "|---|---|---|---|"]
    for name, r in res["rows"].items():
        digits = 1 if "(s)" in name else 0
        lines.append(f"| {name} | {fmt(r['before'], digits)} | {fmt(r['after'], digits)} | {r['paired_speedup']:.2f}× |")
    ld = res.get("load", {})
    lines += ["", f"Alternating A/B, {res['launches']} launches per side, {res['repeats']} timed calls per scenario and "
              f"side; other processes busy on {ld.get('other_busy_cores')} of {ld.get('cores')} cores over "
              f"{ld.get('wall_s')} s (loadavg {ld.get('loadavg_1m_start')} → {ld.get('loadavg_1m_end')})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.splitlines()[0])
    p.add_argument("--after-repo", type=Path, required=True, help="scratch copy with the change applied")
    p.add_argument("--before-repo", type=Path, default=REPO)
    p.add_argument("--checkpoints", type=Path, default=None, help="folder with emoji-64/ and shapes-32/")
    p.add_argument("--launches", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ab")
    args = p.parse_args(argv)
    ckpts = Path(tempfile.mkdtemp(prefix="dalle-bench-ab-ckpt-"))
    origin = prepare_checkpoints(ckpts, source=args.checkpoints)
    res = run(ckpts, args.before_repo.resolve(), args.after_repo.resolve(), args.launches, args.warmup, args.repeats)
    res["meta"] = {**machine_info(), "checkpoints": origin,
                   "command": "python -m benchmarks.ab " + " ".join(argv if argv is not None else __import__("sys").argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ab.json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    (args.out / "ab.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
