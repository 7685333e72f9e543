"""The published chapters' tables re-render identically: 04_results and 05_loyalty, executed against a copy of
the committed ``results/mini``, show the same tables and sentences as ``tests/golden/mini_tables.json``.

The snapshot was taken from the code before the restructuring of issue 13 and is what a refactoring must
keep. When ``results/mini`` is re-published (a new mini run), regenerate it with
``ROKD_UPDATE_GOLDEN=1 pytest -m published tests/test_published_tables.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from rokd.paths import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.published]
GOLDEN = REPO_ROOT / "tests" / "golden" / "mini_tables.json"


def table_outputs(executed) -> list[str]:
    """HTML tables and Markdown of an executed notebook (Styler ids and the run's own footer left out)."""
    outs = []
    for cell in json.loads(executed.read_text(encoding="utf-8"))["cells"]:
        for out in cell.get("outputs", []):
            for mime in ("text/html", "text/markdown"):
                text = out.get("data", {}).get(mime, "")
                text = "".join(text) if isinstance(text, list) else text
                if not text or (mime == "text/html" and "<table" not in text) or text.startswith("**Produced by**"):
                    continue
                outs.append(re.sub(r"T_[0-9a-f]{5}", "T_", text))
    return outs


def test_published_chapters_render_the_same_tables(tmp_path, monkeypatch):
    from rokd.pipeline import execute_notebook

    shutil.copytree(REPO_ROOT / "results" / "mini", tmp_path / "results" / "mini")
    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path / "results"))
    # From the committed files only: this machine's artifacts (a teacher's train_log.jsonl) would change the
    # compute record, and a clean clone (CI, a reader) has none.
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    rendered = {}
    for stem in ("04_results", "05_loyalty"):
        executed = tmp_path / f"{stem}.ipynb"
        execute_notebook(REPO_ROOT / "notebooks" / f"{stem}.md", executed, {"profile": "mini"})
        rendered[stem] = table_outputs(executed)
    if os.environ.get("ROKD_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(rendered, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for stem, outputs in rendered.items():
        assert len(outputs) == len(golden[stem]), stem
        for i, (now, then) in enumerate(zip(outputs, golden[stem])):
            assert now == then, f"{stem}: output {i} differs"
