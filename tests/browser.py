"""Headless Chromium for tests: the system browser driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from conftest import REPO, skip_or_fail

ARTIFACTS = REPO / "test-artifacts"
# Flags a closed network needs: no background connections, no component updates.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def find_chromium() -> str | None:
    explicit = os.environ.get("SWEAT_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@contextmanager
def browser_page(offline: bool = True):
    """A fresh page, plus a list collecting console errors, page errors and failed requests."""
    executable = find_chromium()
    if executable is None:
        skip_or_fail("no Chromium found (install Debian's 'chromium' package, or set SWEAT_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 720}, offline=offline)
            page = context.new_page()
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            yield page, errors
        finally:
            browser.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
