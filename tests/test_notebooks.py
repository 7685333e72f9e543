"""The chapter notebooks: jupytext text files with a papermill `parameters` cell, and Colab pairs in sync."""

from __future__ import annotations

import jupytext
import pytest

from rokd.book import INSTALL_CELL_TAG, sync_colab_notebooks
from rokd.paths import REPO_ROOT

NOTEBOOKS = ["00_data", "01_teachers", "02_distill", "03_evaluate", "04_results", "05_loyalty", "06_strategies"]


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
