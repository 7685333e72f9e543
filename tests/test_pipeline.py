"""The pipeline runner: papermill execution, caching by parameters/code, failure reporting."""

from __future__ import annotations

import io
import json
import textwrap

import pytest

from rokd.pipeline import Step, StepFailed, plan, run

NB_HEADER = textwrap.dedent(
    """\
    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---
    """
)


def write_notebook(path, body_cells):
    cells = "\n".join(body_cells)
    path.write_text(NB_HEADER + "\n# A test notebook\n\n" + cells, encoding="utf-8")


PARAMS = "```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = 'x'\nvalue = 1\n```\n"


def test_plan_has_every_chapter_in_dependency_order():
    steps = plan("smoke")
    names = [s.name for s in steps]
    assert names[0] == "00_data" and names[-3:] == ["05_loyalty", "06_strategies", "07_distil_your_own"]
    assert not {"06_strategies", "07_distil_your_own"} & {s.name for s in plan("mini")}  # not in the published run
    assert sum(n.startswith("02_distill-") for n in names) == 3
    assert sum(n.startswith("03_evaluate-") for n in names) == 5
    seen = set()
    for s in steps:
        assert set(s.depends) <= seen, f"{s.name} runs before its dependencies {s.depends}"
        seen.add(s.name)


def test_runs_caches_and_reruns_on_change(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "a.md", [PARAMS, "```{code-cell} ipython3\nprint('value', value * 2)\n```\n"])
    steps = [Step("a-1", "a", {"profile": "x", "value": 21})]
    out = io.StringIO()
    records = run("x", steps=steps, notebook_dir=nbs, output_dir=tmp_path / "out", out=out)
    assert [r["status"] for r in records] == ["ran"]
    executed = json.loads((tmp_path / "out" / "notebooks" / "a-1.ipynb").read_text())
    outputs = "".join(
        "".join(o.get("text", "")) for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )
    assert "value 42" in outputs  # the injected parameter reached the kernel

    again = run("x", steps=steps, notebook_dir=nbs, output_dir=tmp_path / "out", out=io.StringIO())
    assert [r["status"] for r in again] == ["cached"]

    steps[0].parameters["value"] = 5  # new parameters -> the step runs again
    third = run("x", steps=steps, notebook_dir=nbs, output_dir=tmp_path / "out", out=io.StringIO())
    assert [r["status"] for r in third] == ["ran"]


def test_failing_cell_stops_the_run_and_names_the_executed_notebook(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "bad.md", [PARAMS, "```{code-cell} ipython3\nraise ValueError('boom in a cell')\n```\n"])
    write_notebook(nbs / "after.md", [PARAMS])
    steps = [Step("bad", "bad", {"profile": "x"}), Step("after", "after", {"profile": "x"}, ["bad"])]
    with pytest.raises(StepFailed) as err:
        run("x", steps=steps, notebook_dir=nbs, output_dir=tmp_path / "out", out=io.StringIO())
    executed = tmp_path / "out" / "notebooks" / "bad.ipynb"
    assert str(executed) in str(err.value) and "ValueError" in str(err.value)
    assert "boom in a cell" in executed.read_text()  # the traceback is kept in the executed notebook
    assert not (tmp_path / "out" / ".pipeline" / "bad.json").exists()  # not marked done
    assert not (tmp_path / "out" / "notebooks" / "after.ipynb").exists()  # later steps did not run


def test_a_step_is_keyed_on_the_code_its_notebook_runs(tmp_path):
    """The cache key of a step hashes the rokd modules its notebook imports (transitively), without docstrings:
    the data chapter does not depend on the report, and a docstring edit changes no key."""
    from rokd.pipeline import NOTEBOOK_DIR, _code_digest, step_modules

    data, results = step_modules(NOTEBOOK_DIR / "00_data.md"), step_modules(NOTEBOOK_DIR / "04_results.md")
    assert "rokd.data.loaders" in data and "rokd.report.tables" not in data and "rokd.trainer" not in data
    assert {"rokd.report.tables", "rokd.stats", "rokd.spec"} <= set(results)
    module = tmp_path / "m.py"
    module.write_text('"""Doc."""\n\ndef f(x):\n    """What f does."""\n    return x + 1  # why\n')
    before = _code_digest(module)
    module.write_text('"""Another doc."""\n\ndef f(x):\n    """Said otherwise."""\n    return x + 1  # because\n')
    assert _code_digest(module) == before
    module.write_text('"""Doc."""\n\ndef f(x):\n    return x + 2\n')
    assert _code_digest(module) != before
