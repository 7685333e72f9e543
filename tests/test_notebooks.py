"""The chapter notebooks: jupytext text files with a papermill `parameters` cell, and Colab pairs in sync."""

from __future__ import annotations

import jupytext
import pytest

from rokd.book import INSTALL_CELL_TAG, sync_colab_notebooks
from rokd.paths import REPO_ROOT

NOTEBOOKS = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("*.md"))  # every chapter notebook


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_has_install_and_parameters_cells(stem):
    nb = jupytext.read(REPO_ROOT / "notebooks" / f"{stem}.md")
    assert INSTALL_CELL_TAG in nb.cells[0].metadata.get("tags", []), "first cell must install rokd (Colab)"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged `parameters` (papermill)"
    assert "profile" in params[0].source
    assert any(c.cell_type == "markdown" and c.source.lstrip().startswith("# ") for c in nb.cells), "a chapter title"


def test_colab_pairs_are_in_sync():
    stale = sync_colab_notebooks(check=True)
    assert not stale, f"run `rokd notebooks sync`: out of date {stale}"


def _toc_chapters(node):
    if isinstance(node, dict):
        if "file" in node and node["file"].startswith("book/chapters/"):
            yield node["file"].removeprefix("book/chapters/")
        for value in node.values():
            yield from _toc_chapters(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_chapters(item)


@pytest.mark.parametrize("profile", ["smoke", "mini"])
def test_the_table_of_contents_lists_the_pipeline_plan(profile):
    """The chapter list is written once, in ``rokd.pipeline.plan``: the book's table of contents for a profile
    (``_toc.yml`` narrowed to the plan, distillation replicas added; ``rokd.book.profile_toc``) lists exactly
    its steps, in its order, and every notebook the plan runs exists."""
    from rokd.book import profile_toc
    from rokd.pipeline import plan

    steps = plan(profile)
    assert list(_toc_chapters(profile_toc([s.name for s in steps]))) == [s.name for s in steps]
    assert {s.notebook for s in steps} <= set(NOTEBOOKS)


def test_distillation_replicas_follow_their_student_in_the_table_of_contents():
    from rokd.book import profile_toc

    toc = {
        "root": "intro",
        "chapters": [
            {"file": "book/chapters/00_data"},
            {
                "file": "book/distillation",
                "sections": [{"file": "book/chapters/02_distill-a"}, {"file": "book/chapters/02_distill-b"}],
            },
        ],
    }
    steps = ["00_data", "02_distill-a", "02_distill-a@d2", "02_distill-b"]
    assert list(_toc_chapters(profile_toc(steps, toc))) == steps
    assert list(_toc_chapters(profile_toc(["00_data"], toc))) == ["00_data"]  # chapters outside the plan left out
