"""Shared pieces: timing statistics, the in-process matmul limit, FLOP counting, machine load,
and the checkpoints the benchmarks run on.

Timing rule used everywhere: `warmup` untimed calls, then `repeats` timed calls; a figure is
reported as {"median", "min", "max", "n"} of the timed calls.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dalle.checkpoint import copy_checkpoint

REPO = Path(__file__).resolve().parent.parent

CHECKPOINT_NAMES = ("emoji-64", "shapes-32")  # the two the app benchmark loads; the first is the one timed alone
# name -> (the live export of its preset's run, its dataset, its preset: the architecture of random weights)
RUN_EXPORTS = {"emoji-64": ("runs/emoji-64/checkpoint", "emoji", "emoji"),
               "emoji-32": ("runs/emoji-32/checkpoint", "emoji", "emoji-32"),
               "shapes-32": ("runs/shapes-32/checkpoint", "shapes", "shapes")}


# ---------------------------------------------------------------------------- statistics
def stats(samples: Iterable[float]) -> dict[str, float]:
    """{"median", "min", "max", "n"} of a non-empty list of numbers."""
    xs = [float(x) for x in samples]
    if not xs:
        raise ValueError("no samples")
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def scaled(s: dict[str, float], factor: float) -> dict[str, float]:
    """The same statistics multiplied by a positive factor (e.g. seconds -> ms)."""
    return {"median": s["median"] * factor, "min": s["min"] * factor, "max": s["max"] * factor, "n": s["n"]}


def inverted(s: dict[str, float], numerator: float = 1.0) -> dict[str, float]:
    """numerator / x for each statistic (min and max swap): seconds per call -> calls per second."""
    return {"median": numerator / s["median"], "min": numerator / s["max"], "max": numerator / s["min"], "n": s["n"]}


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int,
               sync: Callable[[], None] | None = None) -> list[float]:
    """Seconds per call of `fn()` over `repeats` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - t0)
    return out


def fmt(s: dict[str, float] | None, digits: int = 1, unit: str = "") -> str:
    """'median [min–max] unit' for a stats dict (or '–')."""
    if not s:
        return "–"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])} [{f.format(s['min'])}–{f.format(s['max'])}]{(' ' + unit) if unit else ''}"


# ---------------------------------------------------------------------------- the machine's own limit
def pooled_limit(*measurements: dict[str, Any]) -> dict[str, Any]:
    """Pool matmul measurements taken before and after a section (same dtype and n)."""
    samples: list[float] = []
    for m in measurements:
        samples += m.get("_samples", [])
    first = measurements[0]
    out = {k: v for k, v in first.items() if k != "_samples"}
    if samples:
        out["flops"] = stats(samples)
    return out


def matmul_limit(device: str = "cpu", n: int = 2048, warmup: int = 2, repeats: int = 5,
                 dtype: Any = None) -> dict[str, Any]:
    """Dense n x n @ n x n matmul FLOP/s measured in this process: fp32 on CPU, bf16 on CUDA.

    Returns {"dtype", "n", "flops": stats of FLOP/s per call, "_samples": the per-call values}
    (`pooled_limit` pools the samples of measurements taken before and after a section).
    """
    import torch

    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    with torch.inference_mode():
        secs = time_calls(lambda: torch.mm(a, b), warmup, repeats, sync)
    per_call = [2.0 * n ** 3 / s for s in secs]
    return {"dtype": str(dtype).replace("torch.", ""), "n": n, "flops": stats(per_call), "_samples": per_call}


# ---------------------------------------------------------------------------- FLOP counting
def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of `fn()` as counted by torch.utils.flop_counter (matmuls and convolutions).

    Runs under no_grad (FlopCounterMode's module tracker needs autograd-visible tensors, so an
    inference_mode decorator inside `fn` is fine, but the modules must not require grad).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ---------------------------------------------------------------------------- load on the box
def _proc_stat_cpu() -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


def _pid_cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


class LoadMeter:
    """How busy the box was during a section, besides this benchmark.

    Records the 1-minute load average at start and end, and the average number of cores that
    *other* processes kept busy (all busy CPU time from /proc/stat minus this process's and the
    tracked pids' CPU time, divided by wall time). Linux only; elsewhere the fields are None.
    """

    def __init__(self) -> None:
        self.result: dict[str, Any] = {}

    def track(self, pid: int) -> None:
        """Count `pid` (e.g. the app server) as part of the benchmark, not as outside load."""
        self._pid_start[pid] = _pid_cpu_ticks(pid)

    def untrack(self, pid: int) -> None:
        """Call before `pid` exits: its CPU time so far is kept."""
        if pid in self._pid_start:
            self._pid_done += _pid_cpu_ticks(pid) - self._pid_start.pop(pid)

    def __enter__(self) -> "LoadMeter":
        self._pid_start: dict[int, int] = {}
        self._pid_done = 0
        self._t0 = time.monotonic()
        self._load0 = _loadavg()
        self._self0 = sum(os.times()[:2])
        try:
            self._cpu0 = _proc_stat_cpu()
        except OSError:
            self._cpu0 = None
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = max(time.monotonic() - self._t0, 1e-9)
        ncpu = os.cpu_count() or 1
        other = None
        if self._cpu0 is not None:
            try:
                busy1, total1 = _proc_stat_cpu()
                busy = (busy1 - self._cpu0[0]) / max(total1 - self._cpu0[1], 1) * ncpu  # cores busy on average
                tick = os.sysconf("SC_CLK_TCK")
                own = (sum(os.times()[:2]) - self._self0) / wall
                ticks = self._pid_done + sum(_pid_cpu_ticks(p) - t for p, t in self._pid_start.items())
                own += ticks / tick / wall
                other = max(busy - own, 0.0)
            except OSError:
                pass
        self.result = {"loadavg_1m_start": self._load0, "loadavg_1m_end": _loadavg(),
                       "other_busy_cores": None if other is None else round(other, 2),
                       "cores": ncpu, "wall_s": round(wall, 2)}


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def training_jobs() -> list[dict[str, Any]]:
    """The background `python -m dalle train` processes and their state (R/S running, T stopped)."""
    out = []
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for p in proc.iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if re.search(r"-m dalle train\b", cmd) and "torchrun" not in cmd:
                state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
                out.append({"pid": int(p.name), "state": state, "cmd": cmd.strip()[:120]})
        except OSError:
            continue
    return sorted(out, key=lambda d: d["pid"])


def machine_info(threads: int | None = None) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu": cpu,
            "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "mem_total_gb": _mem_total_gb(), "platform": platform.platform(),
            "training_jobs": [{"pid": j["pid"], "state": j["state"]} for j in training_jobs()]}
    for mod in ("gradio", "gradio_client", "diffusers", "transformers"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional
            info[mod] = None
    return info


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def proc_memory(pid: int) -> dict[str, float | None]:
    """VmHWM (peak resident set) and VmRSS of a process in MiB, from /proc/<pid>/status."""
    out: dict[str, float | None] = {"vm_hwm_mib": None, "vm_rss_mib": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vm_hwm_mib"] = int(line.split()[1]) / 1024
            elif line.startswith("VmRSS:"):
                out["vm_rss_mib"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


# ---------------------------------------------------------------------------- checkpoints
def random_checkpoint(dest: Path, dataset: str, tiny: bool = False, preset: str | None = None) -> None:
    """A random-weight checkpoint: the architecture of `preset` (`dalle/presets.py`; the library's default when
    None), or a tiny 32 px one for smoke tests.

    Speed does not depend on the weights, so the timing of a random model is the timing of the trained one of
    the same architecture; the results say which was used.
    """
    import torch

    from dalle.checkpoint import save_checkpoint
    from dalle.config import ModelConfig
    from dalle.models.discriminator import Discriminator
    from dalle.models.generator import Generator
    from dalle.presets import preset_configs

    torch.manual_seed(0)
    cfg = (ModelConfig(resolution=32, channel_base=128, d_channel_base=128, channel_max=64, d_channel_max=64,
                       w_dim=64, z_dim=16, cond_dim=16, embed_dim=64, mapping_layers=2, attn_dim=32, max_tokens=8)
           if tiny else preset_configs(preset)[0] if preset else ModelConfig())
    config = {"model": cfg.to_dict(), "name": dest.name, "step": 0, "images_seen": 0,
              "dataset": {"name": dataset}}
    save_checkpoint(dest, config, Generator(cfg), Discriminator(cfg))


def prepare_checkpoints(dest_root: Path, source: Path | None = None, tiny: bool = False,
                        names: Iterable[str] = CHECKPOINT_NAMES) -> dict[str, str]:
    """Fill `dest_root` with one folder per name; returns name -> where it came from.

    Order: `source/<name>` (e.g. the shipped `checkpoints/`), then the live export
    `runs/<name>/checkpoint` (copied: training rewrites it every few minutes), then random weights.
    `tiny=True` always writes tiny random checkpoints (smoke tests).
    """
    dest_root.mkdir(parents=True, exist_ok=True)
    origin: dict[str, str] = {}
    for name in names:
        dest = dest_root / name
        if dest.exists():
            shutil.rmtree(dest)
        run_path, dataset, preset = RUN_EXPORTS.get(name, (f"runs/{name}/checkpoint", name.split("-")[0], None))
        if not tiny:
            for cand in ([source / name] if source else []) + [REPO / "checkpoints" / name, REPO / run_path]:
                if copy_checkpoint(cand, dest):
                    origin[name] = _relative(cand)
                    break
        if name not in origin:
            random_checkpoint(dest, dataset, tiny=tiny, preset=preset)
            origin[name] = "random weights (tiny 32 px)" if tiny else "random weights (no trained checkpoint found)"
    return origin


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dalle", "demo", "app.py"], cwd=REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+uncommitted" if dirty else "") if rev else None
    except (OSError, subprocess.SubprocessError):
        return None
