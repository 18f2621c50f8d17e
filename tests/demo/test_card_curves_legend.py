"""The model card's training curves show every series' name whole in their legends: Vega draws a plot's legend as
one line under it and cuts it where the plot is too narrow (the losses' legend read "loss_d loss_g loss_jo…", its
last name "rec…" gone), so the five-series losses plot has a row of its own."""

from __future__ import annotations

import pytest
from test_browser import TIMEOUT_MS, browser_page, open_tab

from demo.card_tab import ACCURACIES, LOSSES, REGULARISERS

pytestmark = pytest.mark.browser

# For each plot: its legend's labels, each with whether it lies whole inside the plot's drawing and its box.
LEGEND_JS = """(id) => {
  const root = document.getElementById(id);
  const svg = root.querySelector("svg.marks") || root.querySelector("svg");
  const box = svg.getBoundingClientRect(), outer = root.getBoundingClientRect();
  return [...root.querySelectorAll(".role-legend-label text")].map((t) => {
    const r = t.getBoundingClientRect();
    const inside = r.width > 0 && r.left >= Math.max(box.left, outer.left) - 1
      && r.right <= Math.min(box.right, outer.right) + 1 && r.bottom <= Math.min(box.bottom, outer.bottom) + 1;
    return {text: t.textContent, inside};
  });
}"""


@pytest.mark.parametrize("width", [1400, 1000])
def test_every_curve_legend_label_is_shown_whole(app_url: str, width: int) -> None:
    from playwright.sync_api import expect

    with browser_page(app_url, width=width) as page:
        open_tab(page, "Model card")
        page.locator("#card-checkpoint input").fill("shapes-32")
        page.locator("#card-checkpoint input").press("Enter")
        expect(page.locator("#card-headline")).to_contain_text("shapes-32", timeout=TIMEOUT_MS)
        for eid, series in (("card-losses", LOSSES), ("card-reg", REGULARISERS), ("card-acc", ACCURACIES)):
            expect(page.locator(f"#{eid} .role-legend-label text").first).to_be_attached(timeout=TIMEOUT_MS)
            page.locator(f"#{eid}").scroll_into_view_if_needed()
            page.wait_for_timeout(300)  # let Vega lay the resized plot out
            labels = page.evaluate(LEGEND_JS, eid)
            texts = [label["text"] for label in labels]
            assert set(texts) <= set(series) and texts, (eid, texts)  # whole names, no "rec…"
            cut = [label["text"] for label in labels if not label["inside"]]
            assert not cut, f"{eid} at {width} px: legend labels cut off: {cut}"
