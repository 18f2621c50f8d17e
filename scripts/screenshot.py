"""Take the README's screenshot from the app serving the shipped checkpoints.

    .venv/bin/python scripts/screenshot.py [--checkpoints checkpoints] [--out docs/screenshot.png] [--width 1400]

Starts `python app.py` on a free port, waits until it answers, opens it in Debian's chromium
(through Playwright), clicks the first curated example and Generate, waits for the images,
and saves a screenshot of the page. Prints the app's checkpoint status line, so a folder
that failed to load is seen before the picture is committed. Run it whenever the shipped
checkpoints change.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 180_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppDidNotStart(RuntimeError):
    """`python app.py` exited or never answered; the message ends with the tail of its log."""


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 300.0) -> None:
    """Poll `url` until it answers HTTP 200; AppDidNotStart with the app's log if it dies or never answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise AppDidNotStart(f"app.py exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AppDidNotStart(f"app.py did not answer within {timeout_s:.0f} s:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Terminate the app, and kill it if it has not exited after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def browser_page(url: str, width: int = 1400, height: int = 1000, timeout_ms: int = TIMEOUT_MS) -> Iterator[Any]:
    """A headless chromium page at `url`, `width` x `height` px, once the app's Generate button is there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#gen-run", timeout=timeout_ms)
            yield page
        finally:
            browser.close()


def capture(url: str, out: Path, width: int, height: int = 1100) -> str:
    """Generate the first curated example in the page at `url`, save a screenshot of the
    viewport at `out`; returns the checkpoint status line the page shows."""
    from playwright.sync_api import expect

    with browser_page(url, width, height) as page:
        examples = page.locator("#gen-examples button")
        if examples.count():
            examples.first.click()
        page.click("#gen-run")
        expect(page.locator("#gen-gallery img").first).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#gen-grid img")).to_have_count(1, timeout=TIMEOUT_MS)
        page.wait_for_function("() => [...document.querySelectorAll('#gen-grid img, #gen-gallery img')]"
                               ".every((i) => i.complete && i.naturalWidth > 0)", timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)  # let the last paint land
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        return page.locator("#ckpt-status").inner_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=str(REPO / "checkpoints"), help="checkpoints folder to serve")
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"), help="PNG to write")
    parser.add_argument("--width", type=int, default=1400, help="browser viewport width in px")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="dalle-screenshot-"))
    log = work / "app.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(work / "gradio")}
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--checkpoints", args.checkpoints],
                                cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_until_up(url, proc, log)
        status = capture(url, Path(args.out), args.width)
    except AppDidNotStart as e:
        sys.exit(str(e))
    finally:
        stop(proc)
    print(status)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
