"""Load on the real app (`python app.py` as a child process, its own queue settings, loopback only).

* 20 concurrent gradio_client clients x 25 small `generate` requests (1 prompt x 1 image):
  zero failures. p50/p99 latency are printed and written to JSON under the pytest tmp dir;
  timings are reported, never asserted.
* A full queue answers at once and cleanly: HTTP 503 with a JSON reason over raw HTTP,
  `QueueError` in gradio_client; everything it accepted still completes, nothing hangs or 500s.
* Memory: the server's RSS after 1,000 requests is within 10% of its RSS after the first 100
  (cheap raw-HTTP requests, measured before the load test).

Reproduce: `.venv/bin/python -m pytest tests/demo/test_concurrent_load.py -s` (numbers in the output and in
<pytest tmp>/load0/load-results.json).
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client
from gradio_client.utils import QueueError
from test_reliability_support import AppProcess, raw_call

pytestmark = pytest.mark.load

CLIENTS, REQUESTS_PER_CLIENT = 20, 25
FIRST, TOTAL = 100, 1000  # RSS after FIRST requests vs after TOTAL requests
RSS_TOLERANCE = 0.10
REQUEST_TIMEOUT = 180  # s; a request that takes longer counts as failed
LOAD_DEADLINE = 600  # s for all 20 x 25 requests
PROMPTS = ["a red circle", "a small blue square in the center", "two green triangles", "a yellow triangle",
           "three blue circles", "a large purple triangle in the center", "red heart", "grinning face"]


def small(i: int) -> list:
    """A cheap generate request: 1 prompt x 1 image, a different seed each time."""
    return [PROMPTS[i % len(PROMPTS)], i, 0.7, 1, "shapes-32" if i % 4 else "emoji-32", 0]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


@pytest.fixture(scope="module")
def server(checkpoints_dir: Path, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The app as a child process, warmed up with FIRST requests (RSS recorded after them)."""
    out = tmp_path_factory.mktemp("load")
    app = AppProcess(checkpoints_dir, out / "app").wait_ready()
    state = SimpleNamespace(app=app, served=0, lock=threading.Lock(), results=out / "load-results.json",
                            numbers={})
    try:
        send_raw(state, FIRST, workers=4)
        state.numbers["rss_kib_after_first"] = app.rss_kib()
        state.numbers["requests_at_first"] = state.served
        yield state
    finally:
        app.stop()


def record(state: SimpleNamespace, **numbers) -> None:
    state.numbers.update(numbers)
    state.results.write_text(json.dumps(state.numbers, indent=2))


def send_raw(state: SimpleNamespace, count: int, workers: int) -> None:
    """`count` small requests over raw HTTP from `workers` threads; each must complete."""
    errors: list[str] = []
    base = 10_000 + state.served

    def work(offset: int) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
            for i in range(offset, count, workers):
                r = raw_call(state.app.url, "generate", {"data": small(base + i)}, http=http)
                if r.event != "complete":
                    errors.append(f"{r.status} {r.event} {str(r.data or r.body)[:200]}")
                else:
                    with state.lock:
                        state.served += 1

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(workers)))
    assert not errors, f"{len(errors)} of {count} requests failed, e.g. {errors[:3]}"


def rss_after_total(server: SimpleNamespace) -> int:
    """Requests FIRST+1..TOTAL over raw HTTP (4 at a time, each call its own session, as from
    many API users), once per server, then the server's RSS in KiB."""
    if "rss_kib_after_total" not in server.numbers:
        send_raw(server, TOTAL - server.served, workers=4)
        server.numbers["rss_kib_after_total"] = server.app.rss_kib()
    return server.numbers["rss_kib_after_total"]


def test_1000_requests_all_succeed(server, capsys) -> None:
    """TOTAL requests, all served; before the load test, so the RSS measures these alone."""
    last = rss_after_total(server)
    assert server.served == TOTAL
    first = server.numbers["rss_kib_after_first"]
    record(server, memory={"requests": server.served, "rss_mib_after_first": round(first / 1024, 1),
                           "rss_mib_after_total": round(last / 1024, 1),
                           "growth_pct": round(100 * (last - first) / first, 2)})
    with capsys.disabled():
        print(f"\n[memory] RSS after {FIRST} requests {first / 1024:.1f} MiB, after {server.served}: "
              f"{last / 1024:.1f} MiB ({100 * (last - first) / first:+.1f}%)")


def test_memory_is_flat_after_1000_requests(server) -> None:
    first, last = server.numbers["rss_kib_after_first"], rss_after_total(server)  # run alone, it sends them itself
    assert abs(last - first) / first <= RSS_TOLERANCE, \
        f"RSS went from {first} KiB to {last} KiB ({100 * (last - first) / first:+.1f}%)"


def test_concurrent_clients(server, capsys) -> None:
    latencies: list[float] = []
    failures: list[str] = []
    start = threading.Barrier(CLIENTS)

    def client_run(k: int) -> None:
        client = Client(server.app.url, verbose=False, download_files=False)
        start.wait(timeout=120)
        for j in range(REQUESTS_PER_CLIENT):
            t0 = time.perf_counter()
            try:
                png, table, _notes = client.submit(*small(k * 1000 + j), api_name="/generate").result(
                    timeout=REQUEST_TIMEOUT)
                assert len(table["data"]) == 1 and png
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                failures.append(f"client {k} request {j}: {type(e).__name__}: {str(e)[:200]}")
                continue
            latencies.append(time.perf_counter() - t0)
            with server.lock:
                server.served += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_run, args=(k,), daemon=True) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, LOAD_DEADLINE - (time.perf_counter() - t0)))
    wall = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads), f"clients still running after {LOAD_DEADLINE} s"
    total = CLIENTS * REQUESTS_PER_CLIENT
    numbers = {"clients": CLIENTS, "requests": total, "failed": len(failures), "wall_s": round(wall, 2),
               "throughput_rps": round(len(latencies) / wall, 2),
               "p50_s": round(statistics.median(latencies), 3) if latencies else None,
               "p99_s": round(percentile(latencies, 99), 3) if latencies else None,
               "max_s": round(max(latencies), 3) if latencies else None}
    record(server, load=numbers)
    with capsys.disabled():
        print(f"\n[load] {CLIENTS} clients x {REQUESTS_PER_CLIENT} generate (1 prompt x 1 image): "
              f"{len(failures)} failed, p50 {numbers['p50_s']} s, p99 {numbers['p99_s']} s, "
              f"{numbers['throughput_rps']} req/s, wall {numbers['wall_s']} s -> {server.results}")
    assert not failures, f"{len(failures)} of {total} requests failed: {failures[:5]}"
    assert len(latencies) == total


def test_full_queue_rejects_cleanly(server, capsys) -> None:
    """Hold the single worker with a few slow requests, post more than the queue holds over raw
    HTTP, and submit through gradio_client while it is full. Retried (up to 3 rounds) only if
    the queue drained before gradio_client's turn; every accepted request must complete."""
    from demo import QUEUE_MAX_SIZE

    url = server.app.url
    slow = ["\n".join(PROMPTS), 0, 0.7, 8, "shapes-32", 32]  # 8 prompts x 32 candidates
    client = Client(url, verbose=False, download_files=False)  # connected before the burst
    rounds, accepted_total, rejected, outcomes = [], 0, [], []
    with httpx.Client(timeout=30) as http:
        for round_ in range(3):
            accepted: list[str] = []
            t0 = time.perf_counter()
            for i in range(6 + QUEUE_MAX_SIZE + 12):
                body = {"data": slow if i < 6 else small(50_000 + 100 * round_ + i)}
                r = http.post(f"{url}/gradio_api/call/generate", json=body)
                if r.status_code == 200:
                    accepted.append(r.json()["event_id"])
                else:
                    rejected.append(r)
            burst_s = time.perf_counter() - t0
            jobs = [client.submit(*small(60_000 + 10 * round_ + k), api_name="/generate") for k in range(3)]
            round_outcomes = []
            for job in jobs:
                try:
                    job.result(timeout=REQUEST_TIMEOUT)
                    round_outcomes.append("accepted")
                except QueueError as e:
                    round_outcomes.append(f"QueueError: {e}")
            events = [raw_stream_event(http, url, e) for e in accepted]  # everything accepted completes
            assert events == ["complete"] * len(accepted), events
            accepted_total += len(accepted) + round_outcomes.count("accepted")
            outcomes += round_outcomes
            rounds.append({"accepted": len(accepted), "rejected_so_far": len(rejected), "burst_s": round(burst_s, 2),
                           "gradio_client": round_outcomes})
            if rejected and any(o.startswith("QueueError") for o in round_outcomes):
                break
    server.served += accepted_total
    record(server, queue_full={"queue_max_size": QUEUE_MAX_SIZE, "rounds": rounds},
           rss_mib_at_end=round(server.app.rss_kib() / 1024, 1), requests_at_end=server.served)
    with capsys.disabled():
        print(f"\n[queue] max_size {QUEUE_MAX_SIZE}: {rounds}")
    assert rejected, f"nothing was rejected: {rounds}"
    for r in rejected:
        assert r.status_code == 503, (r.status_code, r.text[:300])
        assert json.loads(r.text)["detail"].startswith(f"Queue is full. Max size is {QUEUE_MAX_SIZE}")
    assert all(o == "accepted" or o == "QueueError: Queue is full! Please try again." for o in outcomes), outcomes
    assert "QueueError: Queue is full! Please try again." in outcomes, rounds
    assert server.app.alive()
    _png, table, _notes = client.predict(*small(70_000), api_name="/generate")  # and it still serves
    assert len(table["data"]) == 1


def raw_stream_event(http: httpx.Client, url: str, event_id: str) -> str | None:
    text = http.get(f"{url}/gradio_api/call/generate/{event_id}", timeout=REQUEST_TIMEOUT).text
    names = [ln[len("event:"):].strip() for ln in text.splitlines() if ln.startswith("event:")]
    names = [n for n in names if n != "heartbeat"]
    return names[-1] if names else None
