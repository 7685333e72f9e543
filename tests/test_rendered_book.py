"""Stage 4 of `make test`: the built HTML book, checked for broken links and in a real browser.

Runs after `rokd book` (marked slow). Screenshots go to `<build dir>/screenshots/` (``ROKD_BUILD_DIR``,
default `_build`) for a human look.
"""

from __future__ import annotations

import os
import re

import pytest

from rokd.checks import check_internal_links, chromium
from rokd.models.registry import DISPLAY_NAMES
from rokd.paths import build_dir

pytestmark = [pytest.mark.slow, pytest.mark.book]

HTML = build_dir() / "html"
SHOTS = build_dir() / "screenshots"


@pytest.fixture(scope="module")
def built():
    index = HTML / "index.html"
    assert index.exists(), (
        f"{index} missing: run `rokd book --profile {os.environ.get('ROKD_CHECK_PROFILE', 'smoke')}` first"
    )
    return HTML


def test_book_was_built_from_the_checked_profile(built):
    profile = os.environ.get("ROKD_CHECK_PROFILE", "smoke")
    assert (build_dir() / "PROFILE").read_text().strip() == profile


def test_internal_links_resolve(built):
    problems = check_internal_links(built)
    assert not problems, "broken internal links:\n" + "\n".join(problems[:50])


def test_index_renders_with_navigation(built):
    dom = chromium(built / "index.html", dump_dom=True, screenshot=SHOTS / "index.png")
    assert "distil" in dom.lower()
    assert "Traceback" not in dom
    for chapter in (
        "Background",
        "Data",
        "Teachers",
        "Distillation",
        "Evaluation",
        "Results",
        "Loyalty",
        "Reproduce",
        "References",
    ):
        assert chapter.lower() in dom.lower(), f"chapter {chapter!r} not in the index navigation"
    assert (SHOTS / "index.png").stat().st_size > 20_000  # a real, non-blank page


def test_results_page_shows_table_and_figures(built):
    page = built / "book" / "chapters" / "04_results.html"
    dom = chromium(page, dump_dom=True, screenshot=SHOTS / "results.png")
    assert "<table" in dom
    for name in DISPLAY_NAMES.values():
        assert name in dom, f"model {name!r} missing from the results table"
    images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    figures = [src for src in images if src.startswith("data:image/png") or src.endswith((".png", ".svg"))]
    assert len(figures) >= 1, "results page has no figure"
    assert "Traceback" not in dom, "an error output was rendered into the results chapter"
    assert "Produced by" in dom, "the chapter does not state profile, hardware and wall time"
    assert (SHOTS / "results.png").stat().st_size > 20_000


def test_math_renders_offline(built):
    dom = chromium(built / "book" / "background.html", dump_dom=True, screenshot=SHOTS / "background.png")
    assert "mjx-container" in dom, "MathJax did not typeset the background chapter (offline static files?)"
    assert "cdn.jsdelivr" not in dom and "mathjax@" not in dom
