"""Build the Jupyter Book from a profile's executed notebooks.

``rokd book --profile P`` copies ``results/<P>/notebooks/*.ipynb`` (written by ``rokd pipeline``)
into ``book/chapters/``, adds an "Open in Colab" link to each chapter, and runs Jupyter Book 1
with warnings as errors. ``rokd notebooks sync`` regenerates the runnable Colab notebooks
``notebooks/colab/*.ipynb``, the jupytext pairs of the text notebooks (their first cell installs rokd).
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
    # the console script next to this interpreter (`python -m jupyter_book` has no entry point)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(REPO_ROOT), "--builder", "html",
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
    stale = sync_colab_notebooks(check=args.check)
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run `rokd notebooks sync`)")
        return 1 if stale else 0
    print(f"{len(stale)} runnable notebook(s) updated in {COLAB_DIR}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("book", help="build the Jupyter Book from a profile's executed notebooks")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--fresh", action="store_true", help="delete _build first")
    p.set_defaults(func=_cmd_book)
    p = sub.add_parser("notebooks", help="notebook utilities")
    nsub = p.add_subparsers(dest="notebooks_command", required=True)
    s = nsub.add_parser("sync", help="regenerate notebooks/colab/*.ipynb from notebooks/*.md")
    s.add_argument("--check", action="store_true", help="only report out-of-date pairs (exit 1 if any)")
    s.set_defaults(func=_cmd_sync)
