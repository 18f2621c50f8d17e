"""The playground end to end: `python app.py` in a subprocess, driven through `gradio_client`.

Per launch: cold start (process start -> HTTP 200 -> client connected -> first image back) and
the peak resident set (VmHWM) of the server with both checkpoints loaded. On the first launch
also the warm latency of `/generate` for 1 prompt x 4 images and 4 prompts x 4 images, each
with a text-embedding cache hit (the same prompts every call, the seed changes) and with a miss
(new unique prompts every call, so the text encoder and the truncation centres run too).
A call includes downloading the returned file (the grid PNG; the call also returns the score
table and notes), as an API user's script does by default. Every scenario runs with two
clients: the tuned `Client(url, ssl_verify=False)` (the URL is plain http, so this only skips
loading the CA bundle for every request and file; scenario names without a suffix) and the
default `Client(url)` (suffix `_default_client`). One more skips the download, to show its share.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from .common import CHECKPOINT_NAMES, REPO, LoadMeter, proc_memory, stats, time_calls

EMOJI_PROMPTS = ("red heart", "grinning face", "thumbs up", "smiling face with sunglasses")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """One `python app.py` process serving `checkpoints` on a free port (output in `log_path`)."""

    def __init__(self, checkpoints: Path, workdir: Path, repo: Path = REPO, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"app-{self.port}.log"
        (workdir / "gradio-tmp").mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "DALLE_CHECKPOINTS": str(checkpoints), "GRADIO_SERVER_NAME": "127.0.0.1",
                    "GRADIO_SERVER_PORT": str(self.port), "GRADIO_ANALYTICS_ENABLED": "False",
                    "GRADIO_TEMP_DIR": str(workdir / "gradio-tmp"), "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.repo = repo
        self.proc: subprocess.Popen | None = None
        self.t_start = 0.0

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.t_start = time.perf_counter()
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=self.repo, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 240.0) -> float:
        """Seconds from process start until the page answers HTTP 200."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.t_start
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _generate(client: Any, prompts: list[str], seed: int, num_images: int, checkpoint: str) -> Any:
    return client.predict("\n".join(prompts), seed, 0.7, num_images, checkpoint, 0, api_name="/generate")


def cold_start(app: App, checkpoint: str, download_dir: Path, load: LoadMeter | None = None,
               ) -> tuple[dict[str, float], Any]:
    """Start the app and time it to the first image served; returns the phases and the client."""
    from gradio_client import Client

    if app.proc is None:  # (smoke mode may have started it already)
        app.start()
    if load is not None and app.proc is not None:
        load.track(app.proc.pid)
    ready = app.wait_ready()
    client = Client(app.url, verbose=False, download_files=str(download_dir), ssl_verify=False)
    connected = time.perf_counter() - app.t_start
    out = _generate(client, [EMOJI_PROMPTS[0]], 0, 4, checkpoint)
    first = time.perf_counter() - app.t_start
    if not out or len(out[1]["data"]) != 4:
        raise RuntimeError(f"unexpected first /generate result: {out!r:.300}")
    return {"http_ready_s": ready, "client_connected_s": connected, "first_image_s": first}, client


def warm_scenarios(app: App, client: Any, checkpoint: str, warmup: int, repeats: int,
                   download_dir: Path) -> dict[str, Any]:
    """Warm /generate latency: {1x4, 4x4} x {hit, miss} with `client` (ssl_verify=False) and again
    with the default client, and 1x4 hit without the file download."""
    from gradio_client import Client

    token = secrets.token_hex(3)
    counter = iter(range(10 ** 9))
    seeds = iter(range(1, 10 ** 9))
    out: dict[str, Any] = {}

    def unique(k: int) -> list[str]:  # prompts never seen before by this server
        return [f"{EMOJI_PROMPTS[j % 4]} {token} {next(counter)}" for j in range(k)]

    # The URL is plain http, so certificate verification does nothing; but with ssl_verify=True
    # gradio_client builds a new httpx client, loading the CA bundle (~25 ms of CPU), for the
    # request and again for every file it downloads. The headline client turns that off; the
    # default client is measured too, so its share is visible.
    default = Client(app.url, verbose=False, download_files=str(download_dir))
    plain = Client(app.url, verbose=False, download_files=False, ssl_verify=False)
    for name, c, prompts_fn in (
            ("1x4_hit", client, lambda: list(EMOJI_PROMPTS[:1])),
            ("1x4_miss", client, lambda: unique(1)),
            ("4x4_hit", client, lambda: list(EMOJI_PROMPTS)),
            ("4x4_miss", client, lambda: unique(4)),
            ("1x4_hit_default_client", default, lambda: list(EMOJI_PROMPTS[:1])),
            ("1x4_miss_default_client", default, lambda: unique(1)),
            ("4x4_hit_default_client", default, lambda: list(EMOJI_PROMPTS)),
            ("4x4_miss_default_client", default, lambda: unique(4)),
            ("1x4_hit_no_download", plain, lambda: list(EMOJI_PROMPTS[:1]))):
        secs = time_calls(lambda: _generate(c, prompts_fn(), next(seeds), 4, checkpoint), warmup, repeats)
        out[name] = {"s": stats(secs), "ms": {k: (v * 1000 if k != "n" else v) for k, v in stats(secs).items()}}
    return out


STARTUP_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = time.perf_counter() - t0
import torch; mark("import torch")
import gradio; mark("import gradio")
sys.path.insert(0, sys.argv[2])
import demo; mark("import demo (app modules)")
from demo.handlers import Handlers
from demo.layout import build_blocks
from demo.render import OutputFolder
from demo.service import ModelService
from dalle.text_encoder import TextEncoder
enc = TextEncoder(); mark("text encoder loaded")
service = ModelService(sys.argv[1])
mark("checkpoints loaded (ModelService)")
build_blocks(Handlers(service, OutputFolder())); mark("Blocks built")
print("STARTUP " + json.dumps(marks))
"""


def startup_phases(checkpoints: Path, repo: Path = REPO, env: dict[str, str] | None = None) -> dict[str, float]:
    """Cumulative seconds at each phase of what `python app.py` does before it serves, in a fresh
    process: imports, text encoder, checkpoints, Blocks. (The service loads its own encoder, so the
    text-encoder phase here is the import and first load, and the service phase the checkpoints.)"""
    proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, str(checkpoints), str(repo)], cwd=repo,
                          env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                               **(env or {})}, capture_output=True, text=True, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("STARTUP "):
            import json

            return json.loads(line[len("STARTUP "):])
    raise RuntimeError(f"startup script failed ({proc.returncode}): {proc.stderr[-2000:]}")


def run(checkpoints: Path, checkpoint: str = CHECKPOINT_NAMES[0], other: str = CHECKPOINT_NAMES[1], launches: int = 3,
        warmup: int = 2, repeats: int = 15, repo: Path = REPO, env: dict[str, str] | None = None,
        phases: bool = True, prestarted: App | None = None) -> dict[str, Any]:
    """The whole section: `launches` cold starts; warm scenarios and peak RSS on the first;
    then (phases=True) one startup-phase breakdown in a fresh process.

    `prestarted`: an App already started (smoke mode starts it while other sections run, so its
    "cold start" figure is then meaningless; only the code path is exercised)."""
    work = Path(tempfile.mkdtemp(prefix="dalle-bench-app-"))
    cold: list[dict[str, float]] = []
    rss: list[dict[str, Any]] = []
    warm: dict[str, Any] = {}
    with LoadMeter() as load:
        for i in range(launches):
            app = prestarted if (i == 0 and prestarted is not None) else App(checkpoints, work, repo=repo, env=env)
            try:
                first, client = cold_start(app, checkpoint, work / "downloads", load)
                assert app.proc is not None
                cold.append(first)
                mem_first = proc_memory(app.proc.pid)
                if i == 0:
                    _generate(client, [EMOJI_PROMPTS[1]], 0, 4, other)  # both pipelines used at least once
                    warm = warm_scenarios(app, client, checkpoint, warmup, repeats, work / "downloads")
                rss.append({"after_first_image": mem_first, "at_end": proc_memory(app.proc.pid)})
            finally:
                if app.proc is not None:
                    load.untrack(app.proc.pid)
                app.stop()
        startup = startup_phases(checkpoints, repo, env) if phases else {}
    return {
        "checkpoint": checkpoint, "other_checkpoint": other, "launches": launches,
        "cold_start": {k: stats([c[k] for c in cold]) for k in ("http_ready_s", "client_connected_s",
                                                                  "first_image_s")},
        "warm": warm, "startup_phases_s": startup,
        "peak_rss_mib": stats([r["at_end"]["vm_hwm_mib"] or 0.0 for r in rss]),
        "rss_detail": rss, "load": load.result,
    }
