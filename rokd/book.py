"""Build the Jupyter Book from a profile's executed notebooks.

``rokd book --profile P`` copies ``results/<P>/notebooks/*.ipynb`` (written by ``rokd pipeline``)
into ``book/chapters/``, adds an "Open in Colab" link to each chapter, and runs Jupyter Book 1
with warnings as errors. ``rokd notebooks sync`` regenerates the runnable Colab notebooks
``notebooks/colab/*.ipynb`` from the text notebooks (their first cell installs rokd).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from rokd.paths import REPO_ROOT, results_dir

CHAPTER_DIR = REPO_ROOT / "book" / "chapters"
BUILD_DIR = REPO_ROOT / "_build"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
COLAB_DIR = NOTEBOOK_DIR / "colab"


def repository_url() -> str:
    cfg = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    return cfg["repository"]["url"].rstrip("/")


def colab_url(notebook_stem: str) -> str:
    repo = repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/colab/{notebook_stem}.ipynb"


# First cell of every runnable notebook: on Colab (or any fresh kernel) install rokd, then run as usual.
INSTALL_CELL = """\
# Install rokd when it is not importable yet (Colab, a fresh kernel). A no-op inside the project's venv.
import importlib.util, subprocess, sys
if importlib.util.find_spec("rokd") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "rokd @ git+{repo}"], check=True)"""


def runnable_notebook(stem: str):
    """The text notebook as an ipynb whose first cell installs rokd (what Colab opens)."""
    import jupytext
    import nbformat

    nb = jupytext.read(NOTEBOOK_DIR / f"{stem}.md")
    cell = nbformat.v4.new_code_cell(INSTALL_CELL.format(repo=repository_url()))
    cell.metadata["tags"] = ["install"]
    cell.pop("id", None)
    nb.cells.insert(0, cell)
    for c in nb.cells:
        c.pop("id", None)
    nb.metadata.pop("jupytext", None)
    return nb


def sync_colab_notebooks() -> list[Path]:
    import nbformat

    COLAB_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for md in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.md")):
        nb = runnable_notebook(md.stem)
        target = COLAB_DIR / f"{md.stem}.ipynb"
        text = nbformat.writes(nb)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def _with_colab_link(nb_json: dict, notebook_stem: str) -> dict:
    link = {
        "cell_type": "markdown",
        "metadata": {"tags": ["colab-link"]},
        "source": f"[▶ Open this chapter as a runnable notebook in Colab]({colab_url(notebook_stem)})",
    }
    nb_json["cells"].insert(1 if nb_json["cells"] and nb_json["cells"][0]["cell_type"] == "markdown" else 0, link)
    return nb_json


def prepare_chapters(profile: str) -> list[Path]:
    """Copy the executed notebooks of ``profile`` into book/chapters (only files whose content changed)."""
    from rokd.pipeline import plan

    src_dir = results_dir(profile) / "notebooks"
    missing = [s.name for s in plan(profile) if not (src_dir / f"{s.name}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(
            f"executed notebooks missing in {src_dir}: {missing}; run `rokd pipeline --profile {profile}` first"
        )
    CHAPTER_DIR.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for step in plan(profile):
        nb_json = json.loads((src_dir / f"{step.name}.ipynb").read_text(encoding="utf-8"))
        text = json.dumps(_with_colab_link(nb_json, step.notebook), indent=1, ensure_ascii=False) + "\n"
        target = CHAPTER_DIR / f"{step.name}.ipynb"
        wanted.add(target.name)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")  # unchanged files keep their mtime: fast rebuilds
    for stale in CHAPTER_DIR.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    (CHAPTER_DIR / "PROFILE").write_text(profile + "\n", encoding="utf-8")
    return sorted(CHAPTER_DIR.glob("*.ipynb"))


def build(profile: str, fresh: bool = False) -> Path:
    """Render the book; returns ``_build/html/index.html``. Raises on any Sphinx warning."""
    prepare_chapters(profile)
    previous = (BUILD_DIR / "PROFILE").read_text().strip() if (BUILD_DIR / "PROFILE").exists() else None
    if fresh or (previous and previous != profile):
        shutil.rmtree(BUILD_DIR, ignore_errors=True)
    cmd = [sys.executable, "-m", "jupyter_book.cli.main", "build", str(REPO_ROOT), "--builder", "html",
           "--warningiserror", "--nitpick", "--keep-going"]
    print("$ jupyter-book build . --builder html -W -n --keep-going", flush=True)
    proc = subprocess.run(cmd, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); see the warnings above")
    BUILD_DIR.mkdir(exist_ok=True)
    (BUILD_DIR / "PROFILE").write_text(profile + "\n")
    index = BUILD_DIR / "html" / "index.html"
    print(f"book built: {index}", flush=True)
    return index


def _cmd_book(args: argparse.Namespace) -> int:
    try:
        build(args.profile, fresh=args.fresh)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    written = sync_colab_notebooks()
    print(f"{len(written)} runnable notebook(s) updated in {COLAB_DIR}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("book", help="build the Jupyter Book from a profile's executed notebooks")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--fresh", action="store_true", help="delete _build first")
    p.set_defaults(func=_cmd_book)
    p = sub.add_parser("notebooks", help="notebook utilities")
    nsub = p.add_subparsers(dest="notebooks_command", required=True)
    s = nsub.add_parser("sync", help="regenerate notebooks/colab/*.ipynb from notebooks/*.md")
    s.set_defaults(func=_cmd_sync)
