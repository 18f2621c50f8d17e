"""Before/after table of two results.json files: `python -m benchmarks.compare BEFORE AFTER [--md OUT]`.

Used for proposed changes: run the suite on the current tree (before) and on a scratch copy with
the change applied (after), each with `--out`, then compare. Only the figures present in both
runs are listed; "speed-up" is before / after for times and after / before for rates.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import fmt


def _rows(res: dict[str, Any]) -> dict[str, tuple[dict[str, float], str, bool]]:
    """name -> (stats, unit, lower_is_better) for every headline figure of a run."""
    out: dict[str, tuple[dict[str, float], str, bool]] = {}
    for k, v in (res.get("app", {}).get("warm") or {}).items():
        out[f"API generate {k.replace('_', ' ')}"] = (v["ms"], "ms", True)
    for k, v in (res.get("app", {}).get("cold_start") or {}).items():
        out[f"cold start → {k.replace('_s', '').replace('_', ' ')}"] = (v, "s", True)
    if res.get("app", {}).get("peak_rss_mib"):
        out["peak RSS (VmHWM)"] = (res["app"]["peak_rss_mib"], "MiB", True)
    m = res.get("models") or {}
    for which in ("generator", "discriminator"):
        for r in m.get(which, []):
            out[f"{which} batch {r['batch']} ms/image"] = (r["ms_per_image"], "ms", True)
        for r in m.get(which, []):
            frac = {k: (x * 100 if k != "n" else x) for k, x in r["fraction_of_matmul"].items()}
            out[f"{which} batch {r['batch']} % of matmul FLOP/s"] = (frac, "%", False)
    for name, rows in ((res.get("stages") or {}).get("scenarios") or {}).items():
        for label, v in rows.items():
            out[f"server {name}: {label.strip()}"] = (v["ms"], "ms", True)
    return out


def table(before: dict[str, Any], after: dict[str, Any]) -> str:
    a, b = _rows(before), _rows(after)
    lines = ["| figure | before: median [min–max] | after: median [min–max] | speed-up (medians) |",
             "|---|---|---|---|"]
    for name, (sa, unit, lower) in a.items():
        if name not in b:
            continue
        sb = b[name][0]
        if sa["median"] > 0 and sb["median"] > 0:
            ratio = sa["median"] / sb["median"] if lower else sb["median"] / sa["median"]
            speed = f"{ratio:.2f}×"
        else:
            speed = "–"
        digits = 0 if unit in ("ms", "MiB", "%") and sa["median"] >= 10 else 1 if unit != "ms" else 2
        lines.append(f"| {name} | {fmt(sa, digits, unit)} | {fmt(sb, digits, unit)} | {speed} |")
    loads = [f"{tag}: " + ", ".join(f"{sec} {r[sec]['load'].get('other_busy_cores')}"
                                     for sec in ("models", "stages", "app") if isinstance(r.get(sec), dict)
                                     and r[sec].get("load"))
             for tag, r in (("before", before), ("after", after))]
    return "\n".join(lines) + "\n\nOther processes' busy cores per section — " + "; ".join(loads) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--md", type=Path, help="also write the table to this file")
    args = p.parse_args(argv)
    md = table(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    print(md)
    if args.md:
        args.md.write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
