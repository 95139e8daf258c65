"""Slide decks: ``slides/NN_topic.md`` -> one self-contained HTML file that works offline.

Source format (Markdown, CommonMark plus tables)::

    # Measure first                 <- the first slide is the title slide
    How fast is this machine, honestly?

    ---                             <- a line with only '---' starts the next slide

    ## The question
    - ...
    ![The ladder](img/ladder.png)   <- images are embedded as data URIs

    Notes:                          <- from here to the end of the slide: speaker notes ('n' shows them)
    Ask the room first.

The HTML has its CSS and JavaScript inline and embeds every image, so it opens from disk,
from a USB stick or from JupyterLab's file server with no network. Keys: arrows / space /
PageUp / PageDown / Home / End to move, 'n' notes, 'f' full screen; the URL hash is the slide
number; printing gives one slide per page.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path
from typing import Iterable

from markdown_it import MarkdownIt

from sweatlab.course.figures import strip_quote_markers
from sweatlab.course.layout import LabNameError, resolve_lab

SEPARATOR = re.compile(r"^---\s*$")
NOTES = re.compile(r"^(Notes?|Speaker notes):\s*$", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~)")
_DECK_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")


class SlideError(ValueError):
    """A deck that cannot be built, with the file and what to do."""


def deck_sources(slides_dir: Path, only: Iterable[str] = ()) -> list[Path]:
    """The deck sources ``NN_topic.md`` in ``slides_dir`` (all, or those named in ``only``)."""
    decks = sorted(p for p in Path(slides_dir).glob("*.md") if _DECK_NAME.match(p.stem))
    only = list(only)
    if not only:
        return decks
    by_name = {d.stem: d for d in decks}
    try:
        names = {resolve_lab(o, by_name) for o in only}
    except LabNameError as exc:
        raise SlideError(f"no deck in {slides_dir}: {exc}") from None
    return [by_name[n] for n in sorted(names)]


def split_slides(text: str) -> list[tuple[str, str]]:
    """(body, notes) per slide; '---' inside a fenced code block does not split."""
    slides, body, notes, in_fence, in_notes = [], [], [], False, False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
        if not in_fence and SEPARATOR.match(line):
            slides.append(("\n".join(body).strip(), "\n".join(notes).strip()))
            body, notes, in_notes = [], [], False
            continue
        if not in_fence and NOTES.match(line.strip()):
            in_notes = True
            continue
        (notes if in_notes else body).append(line)
    slides.append(("\n".join(body).strip(), "\n".join(notes).strip()))
    return [s for s in slides if s[0] or s[1]]


def _embed_images(html_text: str, base: Path, src_name: str) -> str:
    def replace(match: re.Match) -> str:
        target = html.unescape(match.group(2))
        if re.match(r"^(data:|https?:|//)", target):
            if target.startswith("data:"):
                return match.group(0)
            raise SlideError(f"{src_name}: image {target!r} is on the network, and decks must work "
                             "offline: save it next to the deck and link the file")
        path = (base / target).resolve()
        if not path.is_file():
            raise SlideError(f"{src_name}: image {target!r} not found (looked for {path}); "
                             "fix the path, relative to the .md file")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'{match.group(1)}"data:{mime};base64,{data}"'

    return re.sub(r'(<img[^>]*?\bsrc=)"([^"]+)"', replace, html_text)


def render_deck(text: str, base: Path, src_name: str = "deck") -> str:
    """The complete HTML page for a deck's Markdown ``text`` (images relative to ``base``)."""
    md = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable("table")
    slides = split_slides(text)
    if not slides:
        raise SlideError(f"{src_name}: the deck is empty; write a title slide starting with '# Title'")
    title_match = re.search(r"^#\s+(.+)$", slides[0][0], re.MULTILINE)
    title = title_match.group(1).strip() if title_match else src_name
    sections = []
    for i, (body, notes) in enumerate(slides):
        cls = "slide title" if i == 0 else "slide"
        inner = md.render(body)
        if notes:
            inner += f'<aside class="notes">{md.render(notes)}</aside>'
        sections.append(f'<section class="{cls}" id="s{i + 1}" aria-label="slide {i + 1}">{inner}</section>')
    page = _TEMPLATE.format(title=html.escape(title), css=_CSS, js=_JS, slides="\n".join(sections),
                            count=len(slides))
    return _embed_images(page, base, src_name)


def build_deck(src: Path, out: Path) -> Path:
    """Build one deck; returns the HTML path."""
    src = Path(src)
    page = render_deck(strip_quote_markers(src.read_text(encoding="utf-8")), src.parent, src.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sweatlab slides">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main id="deck" data-count="{count}">
{slides}
</main>
<div id="progress"></div>
<div id="counter" aria-live="polite"></div>
<script>{js}</script>
</body>
</html>
"""

_CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --accent: #c2410c; --bg: #fbfaf7; --code: #f0ede6; }
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: #222; overflow: hidden;
  font-family: "Segoe UI", "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
#deck { position: absolute; width: 1280px; height: 720px; left: 50%; top: 50%;
  transform-origin: center center; }
.slide { position: absolute; inset: 0; padding: 56px 72px; background: var(--bg); color: var(--fg);
  display: none; flex-direction: column; justify-content: flex-start; font-size: 30px; line-height: 1.4;
  overflow: hidden; }
.slide.active { display: flex; }
.slide.title { justify-content: center; background: linear-gradient(135deg, #fbfaf7 60%, #fde7d9); }
.slide.title h1 { font-size: 72px; margin: 0 0 16px; color: var(--accent); }
.slide.title p { font-size: 34px; color: var(--muted); margin: 8px 0; }
h1 { font-size: 52px; margin: 0 0 24px; } h2 { font-size: 44px; margin: 0 0 24px; color: var(--accent); }
h3 { font-size: 34px; margin: 0 0 16px; }
ul, ol { margin: 8px 0; padding-left: 1.2em; } li { margin: 6px 0; }
code { background: var(--code); padding: 1px 6px; border-radius: 4px; font-size: 0.9em;
  font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre { background: var(--code); padding: 16px 20px; border-radius: 8px; font-size: 22px; overflow: auto; }
pre code { background: none; padding: 0; }
img { display: block; margin: 8px auto; max-width: 100%; max-height: min(460px, 52vh); min-height: 200px;
  object-fit: contain; }  /* at most about half the height: a two-line title and a caption still fit */
table { border-collapse: collapse; font-size: 24px; margin: 8px 0; }
th, td { border-bottom: 1px solid #d6d1c4; padding: 6px 14px; text-align: left; }
th { color: var(--muted); }
blockquote { border-left: 6px solid var(--accent); margin: 12px 0; padding: 4px 20px; color: var(--muted); }
a { color: var(--accent); }
.notes { display: none; }
body.show-notes .slide.active .notes { display: block; position: absolute; left: 0; right: 0; bottom: 0;
  max-height: 40%; overflow: auto; background: #fff8c5; border-top: 2px solid #e3c200; padding: 12px 72px;
  font-size: 22px; }
#progress { position: fixed; left: 0; bottom: 0; height: 5px; background: #c2410c; width: 0; }
#counter { position: fixed; right: 14px; bottom: 10px; color: #aaa; font-size: 14px;
  font-family: sans-serif; }
@media print {
  html, body { overflow: visible; height: auto; background: white; }
  #deck { position: static; transform: none !important; width: auto; height: auto; }
  .slide { display: flex !important; position: relative; width: 1280px; height: 720px;
    page-break-after: always; break-after: page; }
  #progress, #counter { display: none; }
  @page { size: 1280px 720px; margin: 0; }
}
"""

_JS = """
(function () {
  "use strict";
  var deck = document.getElementById("deck");
  var slides = Array.prototype.slice.call(deck.querySelectorAll(".slide"));
  var counter = document.getElementById("counter");
  var progress = document.getElementById("progress");
  var current = 0;

  function fit() {
    var scale = Math.min(window.innerWidth / 1280, window.innerHeight / 720);
    deck.style.transform = "translate(-50%, -50%) scale(" + scale + ")";
  }
  function show(n) {
    current = Math.max(0, Math.min(slides.length - 1, n));
    slides.forEach(function (s, i) { s.classList.toggle("active", i === current); });
    counter.textContent = (current + 1) + " / " + slides.length;
    progress.style.width = (100 * (current + 1) / slides.length) + "%";
    if (location.hash !== "#" + (current + 1)) {
      try { history.replaceState(null, "", "#" + (current + 1)); } catch (e) { /* sandboxed viewer */ }
    }
  }
  function fromHash() {
    var n = parseInt((location.hash || "#1").slice(1), 10);
    show(isNaN(n) ? 0 : n - 1);
  }
  function fullscreen() {
    var el = document.documentElement;
    if (document.fullscreenElement) { document.exitFullscreen(); }
    else if (el.requestFullscreen) { el.requestFullscreen().catch(function () {}); }
  }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var k = e.key;
    if (k === "ArrowRight" || k === "ArrowDown" || k === " " || k === "PageDown") { show(current + 1); }
    else if (k === "ArrowLeft" || k === "ArrowUp" || k === "PageUp" || k === "Backspace") { show(current - 1); }
    else if (k === "Home") { show(0); }
    else if (k === "End") { show(slides.length - 1); }
    else if (k === "n" || k === "N") { document.body.classList.toggle("show-notes"); }
    else if (k === "f" || k === "F") { fullscreen(); }
    else { return; }
    e.preventDefault();
  });
  document.addEventListener("click", function (e) {
    if (e.target.closest("a, pre, table, .notes")) { return; }
    show(e.clientX > window.innerWidth / 3 ? current + 1 : current - 1);
  });
  var touchX = null;
  document.addEventListener("touchstart", function (e) { touchX = e.touches[0].clientX; }, {passive: true});
  document.addEventListener("touchend", function (e) {
    if (touchX === null) { return; }
    var dx = e.changedTouches[0].clientX - touchX;
    if (Math.abs(dx) > 40) { show(dx < 0 ? current + 1 : current - 1); }
    touchX = null;
  });
  window.addEventListener("resize", fit);
  window.addEventListener("hashchange", fromHash);
  fit();
  fromHash();
})();
"""
