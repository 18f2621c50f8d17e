"""Smoke test of `benchmarks/`: the whole run in --smoke mode (tiny random models, one repeat)
produces finite, positive numbers under the right keys, plus the report files. It never
asserts how fast anything is."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

STATS_KEYS = {"median", "min", "max", "n"}


def assert_stats(s: dict, name: str = "") -> None:
    assert isinstance(s, dict) and STATS_KEYS <= set(s), f"{name}: not a stats dict: {s!r}"
    for k in ("median", "min", "max"):
        v = s[k]
        assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{name}.{k} = {v!r}"
    assert s["min"] <= s["median"] <= s["max"], f"{name}: {s}"
    assert s["n"] >= 1


def assert_positive(v: object, name: str = "") -> None:
    assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{name} = {v!r}"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    from benchmarks.run import run_all

    out = tmp_path_factory.mktemp("bench")
    return run_all("smoke", out=out, variants=False, log=lambda *_: None), out


def test_every_section_ran(smoke: tuple[dict, Path]) -> None:
    res, _ = smoke
    assert {"meta", "models", "diffusion", "gpu", "stages", "app", "targets"} <= set(res)
    errors = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}
    assert not errors
    assert res["meta"]["mode"] == "smoke" and res["meta"]["cores"] >= 1


def test_models_section(smoke: tuple[dict, Path]) -> None:
    m = smoke[0]["models"]
    for which in ("generator", "discriminator"):
        assert [r["batch"] for r in m[which]] == [1, 2]
        for r in m[which]:
            for key in ("s_per_call", "ms_per_image", "images_per_s", "flops_per_s", "fraction_of_matmul"):
                assert_stats(r[key], f"{which}[{r['batch']}].{key}")
        assert_positive(m["flops_per_image"][which], which)
        assert_positive(m["params"][which], which)
        assert 0 < m["profile"][which]["dense_share"] <= 1
    assert_positive(m["flops_per_image"]["center_per_prompt"])
    assert m["matmul_limit"]["dtype"] == "float32"
    assert_stats(m["matmul_limit"]["flops"], "matmul")


def test_diffusion_section_and_speed_ratio(smoke: tuple[dict, Path]) -> None:
    from benchmarks.report import speed_ratios

    res = smoke[0]
    d = res["diffusion"]
    assert d["steps"] == 2 and d["params"] > 0
    assert_positive(d["flops_per_step"])
    assert d["flops_per_image"] == pytest.approx(d["flops_per_step"] * d["steps"])
    for r in d["batches"]:
        for key in ("s_per_image", "images_per_s", "flops_per_s", "fraction_of_matmul"):
            assert_stats(r[key], key)
    ratios = speed_ratios(res)
    assert ratios and all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in ratios)


def test_gpu_section_says_when_there_is_no_gpu(smoke: tuple[dict, Path]) -> None:
    import torch

    g = smoke[0]["gpu"]
    if torch.cuda.is_available():
        assert g["available"] is True
        for r in g["generator"] + g["discriminator"]:
            assert_stats(r["images_per_s"])
            assert_stats(r["mfu"])
    else:
        assert g == {"available": False, "note": "no GPU in this run"}


def test_gpu_code_path_runs_on_cpu(tmp_path: Path) -> None:
    """The bf16 GPU code path, forced onto the CPU with a tiny model: numbers, not speed."""
    from benchmarks import gpu
    from benchmarks.common import prepare_checkpoints

    prepare_checkpoints(tmp_path, tiny=True, names=["emoji-32"])
    g = gpu.run(tmp_path / "emoji-32", batches=(1, 4), warmup=0, repeats=1, matmul_n=64, force_cpu_for_test=True)
    assert g["available"] and g["dtype"] == "bfloat16" and g["matmul_limit"]["dtype"] == "bfloat16"
    for which in ("generator", "discriminator"):
        assert [r["batch"] for r in g[which]] == [1, 4]
        for r in g[which]:
            for key in ("ms_per_image", "images_per_s", "flops_per_s", "mfu"):
                assert_stats(r[key], f"{which}.{key}")


def test_stages_section(smoke: tuple[dict, Path]) -> None:
    s = smoke[0]["stages"]
    assert set(s["scenarios"]) == {"1x4_hit", "1x4_miss", "4x4_hit", "4x4_miss"}
    for name, rows in s["scenarios"].items():
        for label in ("handler (Handlers.generate)", "    generator (mapping + synthesis)",
                      "    discriminator scores", "server total (handler + postprocess)"):
            assert_stats(rows[label]["ms"], f"{name}: {label}")
    # a miss runs the text encoder and the centres; a hit serves both from the caches
    assert "    truncation centres" in s["scenarios"]["1x4_miss"]


def test_app_section(smoke: tuple[dict, Path]) -> None:
    a = smoke[0]["app"]
    assert set(a["warm"]) == {"1x4_hit", "1x4_miss", "4x4_hit", "4x4_miss", "1x4_hit_default_client",
                              "4x4_hit_default_client", "1x4_miss_default_client", "4x4_miss_default_client",
                              "1x4_hit_no_download"}
    for name, v in a["warm"].items():
        assert_stats(v["ms"], name)
    for phase in ("http_ready_s", "client_connected_s", "first_image_s"):
        assert_stats(a["cold_start"][phase], phase)
    assert_stats(a["peak_rss_mib"], "peak RSS")


def test_targets_and_report_files(smoke: tuple[dict, Path]) -> None:
    res, out = smoke
    rows = res["targets"]
    assert len(rows) >= 8
    for r in rows:
        assert {"metric", "target", "measured", "met", "why"} <= set(r)
        assert isinstance(r["met"], bool) and (r["why"] == "") == r["met"], r  # a missed target says why
    saved = json.loads((out / "results.json").read_text())
    assert saved["targets"] == rows
    summary = (out / "summary.md").read_text()
    assert "### Targets" in summary
    assert ("no GPU in this run" in summary) == (not res["gpu"].get("available"))
    for png in ("models_cpu.png", "app_latency.png", "server_stages.png", "gan_vs_diffusion.png"):
        assert (out / png).stat().st_size > 1000


def test_compare_table(smoke: tuple[dict, Path]) -> None:
    """The before/after table of two results files (here the same run twice: every speed-up is 1)."""
    from benchmarks.compare import table

    md = table(smoke[0], smoke[0])
    rows = [line for line in md.splitlines() if line.startswith("| ") and "figure" not in line]
    assert len(rows) > 10 and all(line.rstrip().endswith("1.00× |") for line in rows)


def _stats(median: float) -> dict:
    return {"median": median, "min": median, "max": median, "n": 1}


def test_targets_are_met_at_the_limit_and_missed_beyond_it() -> None:
    """`targets` on hand-made results: each figure at its limit is met, a little past it is missed."""
    from benchmarks.report import TARGETS, targets

    def rows(scale: float) -> dict[str, bool]:
        """Every figure at `scale` x its limit (latency, cold start, RSS: lower is better)."""
        res = {"app": {"warm": {"1x4_hit": {"ms": _stats(TARGETS["1x4"] * scale)},
                                "4x4_miss": {"ms": _stats(TARGETS["4x4"] * scale)}},
                       "cold_start": {"first_image_s": _stats(TARGETS["cold"] * scale)},
                       "peak_rss_mib": _stats(TARGETS["rss"] * scale)},
               "models": {"generator": [{"batch": 4, "fraction_of_matmul": _stats(TARGETS["fraction"] / scale),
                                         "flops_per_s": _stats(1e9), "ms_per_image": _stats(1.0),
                                         "s_per_call": _stats(TARGETS["1x4_networks"] * 0.75e-3 * scale)}],
                          "discriminator": [{"batch": 4, "s_per_call": _stats(TARGETS["1x4_networks"] * 0.25e-3 * scale)}],
                          "matmul_limit": {"flops": _stats(2e9)}, "resolution": 64, "checkpoint": "emoji-64"},
               "diffusion": {"batches": [{"batch": 4, "s_per_image": _stats(TARGETS["ratio"] / 1000 / scale)}]}}
        return {r["metric"].split(",")[0].split(" (")[0]: r["met"] for r in targets(res)}

    at_limit, beyond = rows(1.0), rows(1.01)
    assert len(at_limit) == 7 and all(at_limit.values()), at_limit
    assert not any(beyond.values()), beyond
