"""The app in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Generate (typed seed, ψ moved by keyboard), labelled grid rows, gallery and score table; Compare
with each picked dataset's curated prompts and a common judge; refusals that keep the last
results; out-of-range slider values that are said; the model card's order; and, at a desktop
and a phone width, that no image is covered or cropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.screenshot import CHROMIUM
from scripts.screenshot import browser_page as shared_browser_page

TIMEOUT_MS = 90_000
OWN_D = "own D, not comparable across checkpoints"

pytestmark = pytest.mark.browser

# For every image matching a selector: scrolled into view, is it shown whole? Returns one record per
# image with its problems: an object-fit that crops or stretches, an ancestor with hidden overflow
# that cuts it, or another element on top of it at any of 9 x 9 points spread over it.
COVERAGE_JS = """(selector) => {
  const out = [];
  for (const img of document.querySelectorAll(selector)) {
    img.scrollIntoView({block: "center", inline: "center"});
    const r = img.getBoundingClientRect();
    const fit = getComputedStyle(img).objectFit;
    const rec = {where: img.closest("[id]")?.id, width: r.width, height: r.height, problems: []};
    if (r.width < 8 || r.height < 8 || !img.complete || img.naturalWidth === 0) rec.problems.push("not shown");
    const aspect = Math.abs(img.naturalWidth / img.naturalHeight - r.width / r.height);
    if (["cover", "fill", "none"].includes(fit) && aspect > 0.02) rec.problems.push("object-fit " + fit + " crops it");
    for (let a = img.parentElement; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if ([s.overflowX, s.overflowY].some((o) => o === "hidden" || o === "clip")) {
        const b = a.getBoundingClientRect();
        if (r.left < b.left - 1 || r.top < b.top - 1 || r.right > b.right + 1 || r.bottom > b.bottom + 1)
          rec.problems.push(`cut by ${a.tagName}.${a.className}`);
      }
    }
    for (let i = 0; i < 9; i++) for (let j = 0; j < 9; j++) {
      const x = r.left + 2 + (r.width - 4) * i / 8, y = r.top + 2 + (r.height - 4) * j / 8;
      if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
      const top = document.elementFromPoint(x, y);
      if (top !== img) rec.problems.push(`covered at (${i}/8, ${j}/8) by ${top?.tagName}.${top?.className}`);
    }
    out.push(rec);
  }
  return out;
}"""


def test_chromium_is_installed() -> None:
    """./test.sh installs Debian's chromium, so a missing one is a failure here, not a silent skip."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run ./test.sh or apt-get install chromium"


def browser_page(url: str, width: int = 1400, height: int = 1000):
    """A chromium page at `url` with the app loaded, `width` px wide (the screenshot script's)."""
    return shared_browser_page(url, width, height, timeout_ms=TIMEOUT_MS)


def open_tab(page: Any, name: str) -> None:
    """Click a tab, through the "More tabs" menu where a narrow screen folds it away."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count() and tab.is_visible():
        tab.click()
    else:
        page.click("#tabs .overflow-menu > button")
        page.locator("#tabs .overflow-dropdown button", has_text=name).click()


def type_number(page: Any, selector: str, value: str) -> None:
    box = page.locator(selector)
    box.fill(value)
    box.press("Enter")


def type_psi_out_of_range(page: Any, typed: str, kept: str) -> tuple[Any, Any]:
    """Type ψ = `typed` (outside 0-1.5) and leave the box: it is set to `kept`, and the note beside the
    sliders says so. Returns (the ψ box, the note)."""
    from playwright.sync_api import expect

    psi = page.locator("#gen-psi input[type=number]")
    psi.fill(typed)
    psi.press("Tab")  # leaving the box sets it to the nearest end
    note = page.locator("#gen-adjusted")
    expect(note).to_contain_text(f"Truncation ψ {typed} is outside 0–1.5; it was set to {kept}", timeout=TIMEOUT_MS)
    expect(psi).to_have_value(kept)
    return psi, note


def images_loaded(page: Any, selector: str) -> None:
    """Wait until every image matching `selector` has loaded (scrolling lazy ones into view)."""
    page.wait_for_function("(s) => { const im = [...document.querySelectorAll(s)]; "
                           "const waiting = im.find((i) => !(i.complete && i.naturalWidth > 0)); "
                           "if (waiting) waiting.scrollIntoView({block: 'center'}); "
                           "return im.length > 0 && !waiting; }", arg=selector, timeout=TIMEOUT_MS)


def assert_labelled_grid(page: Any, selector: str, rows: int, cols: int) -> None:
    """The grid image is a labelled grid: per row a label band, then `cols` square tiles (2 px gutters)."""
    w, h = page.locator(selector).evaluate("(i) => [i.naturalWidth, i.naturalHeight]")
    side = (w - 2) // cols - 2
    band = (h - 2) // rows - side - 2
    assert w == cols * (side + 2) + 2 and h == rows * (band + side + 2) + 2 and band > 10, (w, h)


def test_generate_then_compare(app_url: str) -> None:
    from playwright.sync_api import expect

    with browser_page(app_url) as page:
        page.fill("#gen-prompts textarea", "a large red circle at the top left\ntwo green triangles")
        type_number(page, "#gen-seed input", "42")
        psi = page.locator("#gen-psi input[type=range]")  # keyboard on the slider: 0.70 -> 0.60
        psi.focus()
        psi.press("ArrowLeft")
        psi.press("ArrowLeft")
        type_number(page, "#gen-n input[type=number]", "2")
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
        expect(page.locator("#gen-gallery .caption-label").first).to_contain_text("seed 42")
        images_loaded(page, "#gen-grid img")
        assert_labelled_grid(page, "#gen-grid img", rows=2, cols=2)

        open_tab(page, "Compare")
        boxes = page.locator("#cmp-checkpoints")
        for name in ("shapes-32", "emoji-32"):  # pick the two, whatever the default was
            box = boxes.get_by_label(name, exact=True)
            box.uncheck()
            box.check()
            expect(box).to_be_checked()
        sets = page.locator("#cmp-prompt-sets")  # both datasets' curated prompts are offered
        expect(sets).to_contain_text("Shapes: position, size, count", timeout=TIMEOUT_MS)
        expect(sets).to_contain_text("Emoji: styles")
        sets.get_by_label("Emoji: styles", exact=True).check()
        expect(page.locator("#cmp-prompts textarea")).to_have_value(
            "red heart\ngrinning face, google style\nthumbs up, twitter style\nred apple, fluent style", timeout=TIMEOUT_MS)
        page.click("#cmp-run")
        for i in range(2):
            expect(page.locator(f"#cmp-grid-{i} img")).to_have_count(1, timeout=TIMEOUT_MS)
            expect(page.locator(f"#cmp-head-{i}")).to_contain_text("images seen")
            expect(page.locator(f"#cmp-foot-{i}")).to_contain_text("own D: mean realism")
            images_loaded(page, f"#cmp-grid-{i} img")
            assert_labelled_grid(page, f"#cmp-grid-{i} img", rows=3, cols=4)
        heads = {page.locator(f"#cmp-head-{i} h3").inner_text().strip() for i in range(2)}
        assert heads == {"shapes-32", "emoji-32"}
        expect(page.locator("#cmp-grid-2 img")).to_have_count(0)
        summary = page.locator("#cmp-summary")
        expect(summary).to_contain_text(f"mean realism ({OWN_D})")
        expect(summary).to_contain_text(f"mean match ({OWN_D})")
        expect(summary).to_contain_text("common judge")


def test_a_refusal_keeps_the_last_results_and_shows_once(app_url: str) -> None:
    from playwright.sync_api import expect

    with browser_page(app_url) as page:
        page.fill("#gen-prompts textarea", "a small blue square in the center")
        type_number(page, "#gen-n input[type=number]", "3")
        page.click("#gen-run")
        expect(page.locator("#gen-gallery img")).to_have_count(3, timeout=TIMEOUT_MS)
        images_loaded(page, "#gen-grid img")
        grid_src = page.locator("#gen-grid img").get_attribute("src")

        for prompt, seed, message in (("", "0", "Enter a prompt"),
                                      ("a small blue square in the center", "99999999999",
                                       "Seed must be between 0 and 2,147,483,647")):
            page.fill("#gen-prompts textarea", prompt)
            type_number(page, "#gen-seed input", seed)
            page.click("#gen-run")
            toast = page.locator(".toast-body", has_text=message)
            expect(toast).to_have_count(1, timeout=TIMEOUT_MS)  # said once, not once per output
            page.wait_for_timeout(1000)  # any (wrong) error panels would have appeared by now
            outputs = "#gen-grid, #gen-gallery, #gen-scores, #gen-notes, #gen-download"
            expect(page.locator(f":is({outputs}) .error")).to_have_count(0)
            expect(page.locator("#gen-gallery img")).to_have_count(3)  # the last results stay
            assert page.locator("#gen-grid img").get_attribute("src") == grid_src
            expect(page.locator("#gen-notes")).to_contain_text("seeds 0–2")
            for close in page.locator(".toast-close").all():
                close.click()


def test_out_of_range_slider_values_are_said(app_url: str) -> None:
    """A slider's number box sets a typed value outside its range to the nearest end when it
    loses focus; the page says so next to the sliders and in the notes of the next result."""
    from playwright.sync_api import expect

    with browser_page(app_url) as page:
        page.fill("#gen-prompts textarea", "a small blue square in the center")
        type_number(page, "#gen-n input[type=number]", "1")
        psi, note = type_psi_out_of_range(page, "-1", "0")
        images = page.locator("#gen-n input[type=number]")
        images.fill("50")
        images.press("Tab")
        expect(note).to_contain_text("Images per prompt 50 is outside 1–8; it was set to 8")
        expect(note).to_contain_text("Truncation ψ -1")  # one line per slider
        page.click("#gen-run")
        notes = page.locator("#gen-notes")
        expect(notes).to_contain_text("ψ 0.00", timeout=TIMEOUT_MS)
        expect(notes).to_contain_text("Truncation ψ -1 is outside 0–1.5; it was set to 0")
        expect(page.locator("#gen-gallery img")).to_have_count(8, timeout=TIMEOUT_MS)
        psi.fill("0.5")  # an allowed value clears its line
        expect(note).not_to_contain_text("Truncation ψ", timeout=TIMEOUT_MS)
        expect(note).to_contain_text("Images per prompt 50")


def test_model_card_headline_then_curves_then_captioned_samples_then_folded_metrics(app_url: str) -> None:
    from playwright.sync_api import expect

    with browser_page(app_url) as page:
        open_tab(page, "Model card")
        page.locator("#card-checkpoint input").fill("shapes-32")
        page.locator("#card-checkpoint input").press("Enter")
        expect(page.locator("#card-headline")).to_contain_text("shapes-32", timeout=TIMEOUT_MS)
        expect(page.locator("#card-samples img")).to_have_count(1, timeout=TIMEOUT_MS)
        images_loaded(page, "#card-samples img")
        expect(page.locator("#card-losses canvas, #card-losses svg").first).to_be_visible(timeout=TIMEOUT_MS)
        tops = {eid: page.locator(f"#{eid}").bounding_box()["y"]
                for eid in ("card-headline", "card-losses", "card-samples", "card-metrics-fold")}
        assert tops["card-headline"] < tops["card-losses"] < tops["card-samples"] < tops["card-metrics-fold"], tops
        expect(page.locator("#card-headline table")).to_have_count(1)  # the README results table's columns
        expect(page.locator("#card-headline th").first).to_have_text("checkpoint")
        expect(page.locator("#card-metrics")).to_be_hidden()  # the full metrics are folded away
        assert_labelled_grid(page, "#card-samples img", rows=8, cols=8)  # samples with their captions
        height = page.evaluate("document.querySelector('#tab-card').getBoundingClientRect().height")
        assert height < 3000, f"the model card tab is {height:.0f} px tall"
        page.locator("#card-metrics-fold").get_by_text("All metrics").click()
        expect(page.locator("#card-metrics")).to_be_visible(timeout=TIMEOUT_MS)


@pytest.mark.parametrize("width", [1400, 390])
def test_no_image_is_covered_or_cropped(app_url: str, width: int, tmp_path: Path) -> None:
    """Every image on every tab, after a run, at a desktop and a phone width (screenshots in tmp_path)."""
    from playwright.sync_api import expect

    with browser_page(app_url, width=width, height=900) as page:
        problems: dict[str, list] = {}

        def check(tab: str, selector: str) -> None:
            images_loaded(page, selector)
            page.wait_for_timeout(300)
            page.screenshot(path=str(tmp_path / f"{tab}-{width}.png"), full_page=True)
            for rec in page.evaluate(COVERAGE_JS, selector):
                if rec["problems"]:
                    problems.setdefault(f"{tab}: {rec['where']}", []).extend(rec["problems"][:4])

        page.fill("#gen-prompts textarea", "a large red circle at the top left\ntwo green triangles")
        page.click("#gen-run")
        expect(page.locator("#gen-gallery img")).to_have_count(8, timeout=TIMEOUT_MS)
        check("generate", "#gen-grid img, #gen-gallery img")

        open_tab(page, "Compare")
        page.click("#cmp-run")
        expect(page.locator("#cmp-grid-1 img")).to_have_count(1, timeout=TIMEOUT_MS)
        check("compare", "#cmp-grid-0 img, #cmp-grid-1 img")

        open_tab(page, "Interpolate")
        page.click("#interp-run")
        expect(page.locator("#interp-strip img")).to_have_count(1, timeout=TIMEOUT_MS)
        check("interpolate", "#interp-anim img, #interp-strip img")

        open_tab(page, "Model card")
        expect(page.locator("#card-samples img")).to_have_count(1, timeout=TIMEOUT_MS)
        check("model card", "#card-samples img")
        assert not problems, problems
