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


def test_the_table_of_contents_lists_the_pipeline_plan():
    """The chapter list is written once, in ``rokd.pipeline.plan``: ``_toc.yml`` must list exactly its steps
    (``book/chapters/<step>``), in its order, and every notebook the plan runs exists."""
    import yaml

    from rokd.pipeline import plan

    def files(node):
        if isinstance(node, dict):
            yield from ([node["file"]] if "file" in node else [])
            for value in node.values():
                yield from files(value)
        elif isinstance(node, list):
            for item in node:
                yield from files(item)

    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    chapters = [f.removeprefix("book/chapters/") for f in files(toc) if f.startswith("book/chapters/")]
    steps = plan("mini")
    assert chapters == [s.name for s in steps]
    assert {s.notebook for s in steps} <= set(NOTEBOOKS)
