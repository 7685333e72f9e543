"""Build the Jupyter Book from a profile's executed notebooks.

``rokd book --profile P`` copies ``results/<P>/notebooks/*.ipynb`` (written by ``rokd pipeline``)
into ``book/chapters/``, adds an "Open in Colab" link to each chapter, and runs Jupyter Book 1
with warnings as errors. The book is written to ``ROKD_BUILD_DIR`` (default ``_build``; the HTML in
``<it>/html``), a folder rokd marks as its own: a folder of someone else's is refused, never emptied. A
chapter whose pipeline step did not finish (its stamp is missing: the step failed or was interrupted) or
whose notebook is unreadable stops the build with a message naming it. While the chapters are copied,
the profile's pipeline lock is held, so a running ``rokd pipeline`` is never published half-way.
``rokd notebooks sync`` regenerates the runnable Colab notebooks
``notebooks/colab/*.ipynb``, the jupytext pairs of the text notebooks (their first cell installs rokd).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from rokd import io
from rokd.errors import CorruptFileError, RokdError
from rokd.paths import REPO_ROOT, build_dir, results_dir

CHAPTER_DIR = REPO_ROOT / "book" / "chapters"
# What marks a build folder written before folders carried io.OUTPUT_MARKER: rokd's PROFILE file, or
# Sphinx's doctree cache (a folder holding it is a Jupyter Book / Sphinx build output).
_LEGACY_BUILD_FILES = ("PROFILE", ".doctrees")
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
COLAB_DIR = NOTEBOOK_DIR / "colab"


def repository_url() -> str:
    cfg = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    return cfg["repository"]["url"].rstrip("/")


def colab_url(notebook_stem: str) -> str:
    repo = repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/colab/{notebook_stem}.ipynb"


INSTALL_CELL_TAG = "install-rokd"  # first cell of every notebook: installs rokd on Colab, hidden in the book


def sync_colab_notebooks(check: bool = False) -> list[Path]:
    """Write the jupytext pair ``notebooks/colab/<stem>.ipynb`` of every ``notebooks/<stem>.md``.

    The ``.md`` is the source of truth; the ``.ipynb`` is what Colab opens. With ``check=True``
    nothing is written and the out-of-date pairs are returned.
    """
    import jupytext

    COLAB_DIR.mkdir(parents=True, exist_ok=True)
    stale = []
    for md in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.md")):
        nb = jupytext.read(md)
        if not nb.cells or INSTALL_CELL_TAG not in nb.cells[0].metadata.get("tags", []):
            raise ValueError(f"{md}: the first cell must be the rokd install cell tagged {INSTALL_CELL_TAG!r}")
        for i, cell in enumerate(nb.cells):  # stable ids: the pair only changes when the notebook does
            cell["id"] = f"cell-{i:02d}"
        target = COLAB_DIR / f"{md.stem}.ipynb"
        text = jupytext.writes(nb, fmt="ipynb")
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(target)
            if not check:
                target.write_text(text, encoding="utf-8")
    return stale


def _with_colab_link(nb_json: dict, notebook_stem: str) -> dict:
    link = {
        "cell_type": "markdown",
        "id": "colab-link",
        "metadata": {"tags": ["colab-link"]},
        "source": f"[▶ Open this chapter as a runnable notebook in Colab]({colab_url(notebook_stem)})",
    }
    cells = nb_json["cells"]
    if any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells):
        for c in cells:  # show the parameters the run used (papermill's cell), not the defaults
            tags = c.setdefault("metadata", {}).setdefault("tags", [])
            if "parameters" in tags and "remove-cell" not in tags:
                tags.append("remove-cell")
    title = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"), -1)
    cells.insert(title + 1, link)  # right under the chapter title
    return nb_json


def _chapter_json(path: Path, step: str, stamp_dir: Path, profile: str) -> dict:
    """An executed notebook, checked: readable JSON, no error output, not left by a step that began and did not
    finish, and -- where the pipeline kept a stamp -- the very notebook its step finished with. Published results
    come without stamps: their notebooks are judged by their content."""
    from rokd.pipeline import running_marker

    rerun = f"rerun `rokd pipeline --profile {profile} --only {step}`"
    if running_marker(stamp_dir, step).exists():
        raise RokdError(f"step {step!r} did not finish ({path} may hold an error or a partial run): {rerun}")
    stamp = io.read_json(stamp_dir / f"{step}.json")
    if isinstance(stamp, dict) and "notebook_sha256" in stamp and stamp["notebook_sha256"] != io.file_sha256(path):
        raise CorruptFileError(path, "executed notebook", f"it is not the one its step finished with; {rerun}")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(path, "executed notebook", f"delete it and {rerun}", e) from None
    errors = [o for c in nb.get("cells", []) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise RokdError(f"step {step!r} failed: {path} shows {errors[0].get('ename', 'an error')}; {rerun}")
    return nb


def prepare_chapters(profile: str, wait: bool = False) -> list[Path]:
    """Copy the executed notebooks of ``profile`` into book/chapters (only files whose content changed)."""
    from rokd.pipeline import STATE_DIR, pipeline_lock, plan
    from rokd.profiles import load_profile

    prof = load_profile(profile)
    res = results_dir(prof.name)
    src_dir = res / "notebooks"
    steps = plan(profile, prof)
    missing = [s.name for s in steps if not (src_dir / f"{s.name}.ipynb").exists()]
    if missing:
        raise RokdError(
            f"executed notebooks missing in {src_dir}: {missing}; run `rokd pipeline --profile {profile}` first"
        )
    CHAPTER_DIR.mkdir(parents=True, exist_ok=True)
    wanted = set()
    with pipeline_lock(res, prof.name, wait=wait, log=print):
        chapters = {s.name: _chapter_json(src_dir / f"{s.name}.ipynb", s.name, res / STATE_DIR, profile) for s in steps}
    for step in steps:
        text = json.dumps(_with_colab_link(chapters[step.name], step.notebook), indent=1, ensure_ascii=False) + "\n"
        target = CHAPTER_DIR / f"{step.name}.ipynb"
        wanted.add(target.name)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            io.atomic_write_text(target, text)  # unchanged files keep their mtime: fast rebuilds
    for stale in CHAPTER_DIR.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    io.atomic_write_text(CHAPTER_DIR / "PROFILE", prof.name + "\n")
    return sorted(CHAPTER_DIR.glob("*.ipynb"))


def profile_toc(step_names: list[str], toc: dict | None = None) -> dict:
    """``_toc.yml`` for one profile's plan: its chapter entries (``book/chapters/<step>``) kept when the plan has
    the step, each followed by the plan's distillation replicas of it (``<step>@d<k>``, ``distill.replicas``)."""
    import copy

    import yaml

    if toc is None:
        toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    toc = copy.deepcopy(toc)
    prefix = "book/chapters/"

    def entries(items: list) -> list:
        kept = []
        for item in items:
            if isinstance(item, dict) and "file" in item and item["file"].startswith(prefix):
                name = item["file"][len(prefix) :]
                if name not in step_names:
                    continue
                kept.append(item)
                kept += [{"file": prefix + s} for s in step_names if s.startswith(name + "@d")]
                continue
            if isinstance(item, dict):
                for key in ("chapters", "sections", "parts"):
                    if key in item:
                        item[key] = entries(item[key])
            kept.append(item)
        return kept

    for key in ("parts", "chapters"):
        if key in toc:
            toc[key] = entries(toc[key])
    return toc


def _jupyter_book_command(out: Path, toc: Path | None = None) -> tuple[list[str], Path | None]:
    """The jupyter-book command that writes to ``out`` (it always writes to ``<path-output>/_build``)."""
    jb = Path(sys.executable).with_name("jupyter-book")  # `python -m jupyter_book` has no entry point
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(REPO_ROOT),
        "--builder",
        "html",
        "--warningiserror",
        "--nitpick",
        "--keep-going",
    ]
    if toc is not None:
        cmd += ["--toc", str(toc)]
    if out == REPO_ROOT / "_build":
        return cmd, None
    if out.name == "_build":
        return cmd + ["--path-output", str(out.parent)], None
    link_home = Path(tempfile.mkdtemp(prefix=".rokd-book-"))  # <tmp>/_build -> out
    (link_home / "_build").symlink_to(out, target_is_directory=True)
    return cmd + ["--path-output", str(link_home)], link_home


def build(profile: str, fresh: bool = False, wait: bool = False) -> Path:
    """Render the book into :func:`rokd.paths.build_dir`; returns its ``html/index.html``.

    Raises on any Sphinx warning. One build at a time per build folder (a lock beside it).
    """
    import yaml

    from rokd.pipeline import plan
    from rokd.profiles import load_profile

    name = load_profile(profile).name
    out = build_dir()
    io.check_replaceable(out, "the rendered book (ROKD_BUILD_DIR)", _LEGACY_BUILD_FILES)
    with io.lock(
        out.parent / f".{out.name}.lock", f"the book build folder {out}", wait=wait, hint=", or rerun with --wait"
    ):
        prepare_chapters(profile, wait=wait)
        previous = (out / "PROFILE").read_text().strip() if (out / "PROFILE").exists() else None
        if fresh or (previous and previous != name):
            io.remove_dir(out, "the rendered book (ROKD_BUILD_DIR)", _LEGACY_BUILD_FILES)
        io.mark_output(out, "rokd book")
        toc = out / "_toc.yml"  # this profile's chapters (replicas included), derived from the plan
        io.atomic_write_text(toc, yaml.safe_dump(profile_toc([s.name for s in plan(profile)]), sort_keys=False))
        cmd, link_home = _jupyter_book_command(out, toc)
        where = f" (into {out})" if out != REPO_ROOT / "_build" else ""
        print(f"$ jupyter-book build . --builder html -W -n --keep-going{where}", flush=True)
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT)
        finally:
            if link_home is not None:
                shutil.rmtree(link_home, ignore_errors=True)  # the link only, not what it points to
        if proc.returncode != 0:
            raise RokdError(f"jupyter-book build failed (exit {proc.returncode}); see the warnings above")
        io.atomic_write_text(out / "PROFILE", name + "\n")
    index = out / "html" / "index.html"
    print(f"book built: {index}", flush=True)
    return index
