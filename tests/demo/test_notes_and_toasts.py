"""In the browser: a range note goes when the value it describes changes (a curated example sets ψ
back), and a new run clears the error messages of earlier ones."""

from __future__ import annotations

import pytest
from test_browser import type_number, type_psi_out_of_range

from scripts.screenshot import browser_page

TIMEOUT_MS = 90_000
pytestmark = pytest.mark.browser


def test_a_range_note_goes_when_an_example_changes_the_value(app_url: str) -> None:
    from playwright.sync_api import expect

    with browser_page(app_url, 1400, 1000, timeout_ms=TIMEOUT_MS) as page:
        psi, note = type_psi_out_of_range(page, "3", "1.5")
        page.wait_for_timeout(500)  # the clamp's own change event keeps the note
        expect(note).to_contain_text("Truncation ψ 3 is outside")

        page.locator("#gen-examples button").first.click()  # Shapes: position, size, count at ψ 0.7
        expect(psi).to_have_value("0.7", timeout=TIMEOUT_MS)
        expect(note).not_to_contain_text("Truncation ψ", timeout=TIMEOUT_MS)

        page.fill("#gen-prompts textarea", "a small blue square in the center")
        type_number(page, "#gen-n input[type=number]", "1")
        type_number(page, "#gen-bestof input[type=number]", "0")
        page.click("#gen-run")
        notes = page.locator("#gen-notes")
        expect(notes).to_contain_text("ψ 0.70", timeout=TIMEOUT_MS)
        expect(page.locator("#gen-gallery img")).to_have_count(1, timeout=TIMEOUT_MS)
        expect(notes).not_to_contain_text("Truncation ψ 3")


def test_a_new_run_clears_the_errors_of_earlier_runs(app_url: str) -> None:
    from playwright.sync_api import expect

    with browser_page(app_url, 1400, 1000, timeout_ms=TIMEOUT_MS) as page:
        type_number(page, "#gen-n input[type=number]", "1")
        page.fill("#gen-prompts textarea", "")
        page.click("#gen-run")
        expect(page.locator(".toast-body", has_text="Enter a prompt")).to_have_count(1, timeout=TIMEOUT_MS)

        page.fill("#gen-prompts textarea", "a small blue square in the center")  # fixed; now a bad seed
        type_number(page, "#gen-seed input", "99999999999")
        page.click("#gen-run")
        expect(page.locator(".toast-body", has_text="Seed must be between")).to_have_count(1, timeout=TIMEOUT_MS)
        expect(page.locator(".toast-body", has_text="Enter a prompt")).to_have_count(0)
        expect(page.locator(".toast-body")).to_have_count(1)  # one message, not "Error (2)"

        type_number(page, "#gen-seed input", "0")  # fixed too: a good run leaves no error on screen
        page.click("#gen-run")
        expect(page.locator("#gen-gallery img")).to_have_count(1, timeout=TIMEOUT_MS)
        expect(page.locator(".toast-body", has_text="Seed must be between")).to_have_count(0)
