"""The app in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Generate with two prompts after moving the seed and ψ sliders, check the images and the
score table, save docs/screenshot.png, then compare two checkpoints side by side.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
TIMEOUT_MS = 90_000

pytestmark = pytest.mark.browser


def test_chromium_is_installed() -> None:
    """./test.sh installs Debian's chromium, so a missing one is a failure here, not a silent skip."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run ./test.sh or apt-get install chromium"


def test_generate_then_compare(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url)
            page.wait_for_selector("#gen-run", timeout=TIMEOUT_MS)

            page.fill("#gen-prompts textarea", "a large red circle at the top left\ntwo green triangles")
            seed = page.locator("#gen-seed input[type=number]")  # the number box next to the slider
            seed.fill("42")
            seed.press("Enter")
            psi = page.locator("#gen-psi input[type=range]")  # keyboard on the slider: 0.70 -> 0.60
            psi.focus()
            psi.press("ArrowLeft")
            psi.press("ArrowLeft")
            images = page.locator("#gen-n input[type=number]")
            images.fill("2")
            images.press("Enter")
            page.click("#gen-run")

            expect(page.locator("#gen-gallery img")).to_have_count(4, timeout=TIMEOUT_MS)
            expect(page.locator("#gen-grid img")).to_have_count(1, timeout=TIMEOUT_MS)
            rows = page.locator("#gen-scores [role=row][data-index]")  # body rows of the (virtual) table
            expect(rows).to_have_count(4, timeout=TIMEOUT_MS)
            expect(page.locator("#gen-scores [role=grid]")).to_have_attribute("aria-rowcount", "5")
            notes = page.locator("#gen-notes")
            expect(notes).to_contain_text("seeds 42–43", timeout=TIMEOUT_MS)
            expect(notes).to_contain_text("ψ 0.60")
            expect(page.locator("#gen-scores")).to_contain_text("two green triangles")
            expect(page.locator("#gen-download")).to_contain_text(".png")
            page.wait_for_timeout(500)  # let images finish painting
            page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / "generate.png", SCREENSHOT)

            page.get_by_role("tab", name="Compare").click()
            boxes = page.locator("#cmp-checkpoints")
            for name in ("shapes-32", "emoji-32"):  # pick the two, whatever the default was
                box = boxes.get_by_label(name, exact=True)
                box.uncheck()
                box.check()
                expect(box).to_be_checked()
            page.click("#cmp-run")
            for i in range(2):
                expect(page.locator(f"#cmp-grid-{i} img")).to_have_count(1, timeout=TIMEOUT_MS)
                expect(page.locator(f"#cmp-head-{i}")).to_contain_text("images seen")
                expect(page.locator(f"#cmp-foot-{i}")).to_contain_text("mean realism")
            heads = {page.locator(f"#cmp-head-{i} h3").inner_text().strip() for i in range(2)}
            assert heads == {"shapes-32", "emoji-32"}
            expect(page.locator("#cmp-grid-2 img")).to_have_count(0)
            page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        finally:
            browser.close()
