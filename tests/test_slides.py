"""Slides: Markdown decks build into self-contained HTML that renders offline in Chromium."""

from __future__ import annotations

import re
import shutil

import pytest

from sweatlab.course import slides

from browser import artifact, browser_page
from conftest import FIXTURES, REPO

DECK = FIXTURES / "slides" / "00_fixture.md"


@pytest.fixture
def built_deck(tmp_path):
    return slides.build_deck(DECK, tmp_path / "build" / "00_fixture.html")


def test_slides_split_on_separator_lines_but_not_inside_code():
    parts = slides.split_slides(DECK.read_text())
    assert len(parts) == 4
    assert parts[0][1].startswith("Speaker notes stay hidden")
    assert "---  # a separator inside a code fence" in parts[3][0]


def test_deck_is_self_contained(built_deck):
    page = built_deck.read_text()
    assert page.count('<section class="slide') == 4
    assert 'src="data:image/png;base64,' in page
    # nothing is fetched at viewing time: no external scripts, styles, fonts or images
    assert not re.search(r'<script[^>]+src=|<link[^>]+href=|@import|url\(\s*["\']?https?:', page)
    assert not re.search(r'src="(https?:)?//', page)


def test_missing_image_is_a_clear_error(tmp_path):
    src = tmp_path / "01_x.md"
    src.write_text("# Title\n\n---\n\n![plot](missing.png)\n")
    with pytest.raises(slides.SlideError, match=r"01_x.md: image 'missing.png' not found .* fix the path"):
        slides.build_deck(src, tmp_path / "out.html")


def test_network_image_is_refused(tmp_path):
    src = tmp_path / "01_x.md"
    src.write_text("# Title\n\n![plot](https://example.org/a.png)\n")
    with pytest.raises(slides.SlideError, match="must work offline"):
        slides.build_deck(src, tmp_path / "out.html")


def test_deck_renders_its_title_slide_in_headless_chromium_offline(built_deck):
    with browser_page(offline=True) as (page, errors):
        page.goto(built_deck.as_uri())
        title = page.locator("section.slide.active h1")
        title.wait_for(state="visible", timeout=10_000)
        assert title.inner_text() == "Fixture deck"
        assert page.locator("#counter").inner_text() == "1 / 4"
        page.screenshot(path=str(artifact("slides_00_fixture_title.png")))
        page.keyboard.press("ArrowRight")
        assert page.locator("section.slide.active h2").inner_text() == "A bullet slide"
        assert page.evaluate("location.hash") == "#2"
        page.keyboard.press("End")
        assert page.locator("#counter").inner_text() == "4 / 4"
        assert page.locator("section.slide.active .notes").count() == 0
        page.keyboard.press("Home")
        page.keyboard.press("n")
        assert page.locator("section.slide.active .notes").is_visible()
    assert errors == []


def test_make_slides_builds_every_deck_of_a_course(tmp_path):
    from sweatlab.tools.cli import main

    root = tmp_path / "course"
    (root / "solutions").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    shutil.copytree(FIXTURES / "slides", root / "slides")
    assert main(["--root", str(root), "slides"]) == 0
    assert (root / "slides" / "build" / "00_fixture.html").stat().st_size > 5000


def test_every_slide_of_the_course_fits_a_720p_projector(tmp_path):
    """No slide's content runs past the bottom of a 1280 x 720 screen (a legend cut off is a plot unread)."""
    decks = sorted((REPO / "slides").glob("[0-9][0-9]_*.md"))
    assert decks
    built = [slides.build_deck(d, tmp_path / f"{d.stem}.html") for d in decks]
    overflowing = []
    with browser_page(offline=True) as (page, errors):
        for html in built:
            page.goto(html.as_uri())
            total = int(page.locator("#counter").inner_text().split("/")[1])
            for i in range(1, total + 1):
                page.goto(f"{html.as_uri()}#{i}")
                page.reload()
                page.locator("section.slide.active").wait_for(state="visible", timeout=10_000)
                page.wait_for_function("() => Array.from(document.images).every(im => im.complete)")
                bottom = page.evaluate("""() => {
                    let lowest = 0;
                    for (const e of document.querySelectorAll('section.slide.active *')) {
                        if (e.closest('.notes')) continue;
                        const r = e.getBoundingClientRect();
                        if (r.height > 0) lowest = Math.max(lowest, r.bottom);
                    }
                    return lowest; }""")
                if bottom > 712:  # the band of the progress bar at the foot of the screen
                    overflowing.append(f"{html.stem} slide {i}: content ends at {bottom:.0f} px")
    assert not overflowing, "slides that do not fit 1280 x 720 (shorten the text or the image): " + "; ".join(overflowing)
    assert errors == []
