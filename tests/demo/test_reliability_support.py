"""Helpers shared by the reliability, load and determinism tests (this module holds no tests).

`AppProcess` runs `python app.py` as a child process on a free loopback port, so a test can
read the server's RSS from /proc, start several independent servers, or point one at a
checkpoints folder of its own. `raw_call` drives Gradio's plain HTTP API
(POST /gradio_api/call/<api_name>, then read the event stream) without gradio_client.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class AppProcess:
    """`python app.py` serving `checkpoints` on a free port; output goes to `workdir/app.log`.

    Only this object's own child is ever signalled (by its pid), never anything found by name.
    """

    def __init__(self, checkpoints: Path, workdir: Path, extra_env: dict[str, str] | None = None,
                 argv: list[str] | None = None):
        self.ready = False
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "app.log"
        (workdir / "gradio-cache").mkdir(exist_ok=True)
        env = {**os.environ, "DALLE_CHECKPOINTS": str(checkpoints), "GRADIO_SERVER_NAME": HOST,
               "GRADIO_SERVER_PORT": str(self.port), "GRADIO_ANALYTICS_ENABLED": "False",
               "GRADIO_TEMP_DIR": str(workdir / "gradio-cache"), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", **(extra_env or {})}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv or [sys.executable, "app.py"], cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 240.0) -> "AppProcess":
        if self.ready:
            return self
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url, timeout=5).status_code == 200:
                    self.ready = True
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def rss_kib(self) -> int:
        """Resident set size of the server process (VmRSS in /proc/<pid>/status), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class RawResult:
    """What one raw HTTP call came back with: the POST status and body, then (if the POST was
    accepted) the last event of the stream and its data (decoded JSON where possible)."""

    status: int
    body: str
    event: str | None = None
    data: object = None
    stream: str = ""

    @property
    def error_message(self) -> str | None:
        """The message of an `error` event (Gradio sends {"error": msg, "title": ...})."""
        if self.event != "error":
            return None
        if isinstance(self.data, dict):
            return self.data.get("error")
        return self.data if isinstance(self.data, str) else None


def raw_call(base_url: str, api_name: str, body: bytes | str | dict, timeout: float = 120.0,
             http: httpx.Client | None = None) -> RawResult:
    """POST `body` to /gradio_api/call/<api_name>; when accepted, read the event stream to its end."""
    own = http is None
    http = http or httpx.Client(timeout=timeout)
    try:
        content = json.dumps(body) if isinstance(body, dict) else body
        r = http.post(f"{base_url}/gradio_api/call/{api_name}", content=content,
                      headers={"content-type": "application/json"}, timeout=timeout)
        if r.status_code != 200:
            return RawResult(r.status_code, r.text)
        event_id = r.json()["event_id"]
        stream = http.get(f"{base_url}/gradio_api/call/{api_name}/{event_id}", timeout=timeout).text
        event, data = _last_event(stream)
        return RawResult(r.status_code, r.text, event, data, stream)
    finally:
        if own:
            http.close()


def _last_event(stream: str) -> tuple[str | None, object]:
    event, data = None, None
    for block in stream.split("\n\n"):
        lines = block.strip().splitlines()
        name = next((ln[len("event:"):].strip() for ln in lines if ln.startswith("event:")), None)
        if name in (None, "heartbeat"):
            continue
        payload = "\n".join(ln[len("data:"):].strip() for ln in lines if ln.startswith("data:"))
        try:
            data = json.loads(payload)
        except ValueError:
            data = payload
        event = name
    return event, data
