"""The whole test suite behind ``make test``, stage by stage, with the time of each stage.

1. lint: ``ruff check`` (pyflakes, line length 120, import order; ``[tool.ruff]`` in pyproject.toml);
2. unit tests (pytest ``-m "not slow"``: fast; the ``mirror`` ones need ``ROKD_DATA_DIR``), then the
   end-to-end tests (``-m "slow and not book"``: DDP, the real shapes), each once;
3. the pipeline on the ``smoke`` profile: a papermill run of every notebook (fails if a cell raises);
4. a fresh book build (Jupyter Book, warnings are errors);
5. rendered-book checks: internal links of the HTML, and headless Chromium rendering the index and
   the results page with their tables, figures and math (pytest ``-m book``), for smoke and for the
   published mini results.

Also hosts the HTML link checker and the Chromium helpers used by the stage-4 tests.
"""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rokd.paths import REPO_ROOT


# --- internal link check -------------------------------------------------------------------------
class _LinkParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a and a["id"]:
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for attr in ("href", "src"):
            if a.get(attr) and not (tag == "link" and a.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(a[attr])


def check_internal_links(html_dir: Path) -> list[str]:
    """Every relative href/src in the built HTML must name an existing file (and anchor, if any)."""
    html_dir = Path(html_dir)
    parsed: dict[Path, _LinkParser] = {}

    def parse(page: Path) -> _LinkParser:
        if page not in parsed:
            p = _LinkParser()
            p.feed(page.read_text(encoding="utf-8", errors="replace"))
            parsed[page] = p
        return parsed[page]

    problems = []
    # _static/ holds theme templates (Jinja macros), not pages
    pages = sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.relative_to(html_dir).parts)
    for page in pages:
        for link in parse(page).links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//") or link.startswith("mailto:") or link.startswith("data:"):
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page.relative_to(html_dir)}: broken link {link!r}")
                continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html" and frag not in parse(target).ids:
                problems.append(f"{page.relative_to(html_dir)}: missing anchor {link!r}")
    return problems


# --- headless Chromium ---------------------------------------------------------------------------
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=8000",
]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Chromium not found: install it (Debian: apt-get install chromium); `make test` does this")


def chromium(
    page: Path, *, dump_dom: bool = False, screenshot: Path | None = None, width: int = 1280, height: int = 2400
) -> str:
    """Render a local page in headless Chromium; returns the DOM after scripts ran (or "")."""
    with tempfile.TemporaryDirectory() as profile_dir:
        cmd = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            cmd.append(f"--screenshot={screenshot}")
        if dump_dom:
            cmd.append("--dump-dom")
        cmd.append(Path(page).resolve().as_uri())
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"chromium failed on {page} (exit {proc.returncode}): {proc.stderr[-2000:]}")
        return proc.stdout


# --- the stages ----------------------------------------------------------------------------------
# The profile whose results are committed and published; the check rebuilds its book from them.
PUBLISHED_PROFILE = "mini"


def stages(profile: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, command, extra environment) of each stage, in order."""
    py = sys.executable
    rokd = [py, "-m", "rokd.cli"]
    out = [
        (
            "lint: ruff check (pyflakes, line length 120, import order)",
            [py, "-m", "ruff", "check", "rokd", "tests", "benchmarks"],
            {},
        ),
        ("unit tests (and the data mirror's)", [py, "-m", "pytest", "-q", "-m", "not slow"], {}),
        ("end-to-end tests (DDP, real shapes, ...)", [py, "-m", "pytest", "-q", "-m", "slow and not book"], {}),
        (f"pipeline: papermill run of every notebook ({profile})", [*rokd, "pipeline", "--profile", profile], {}),
        ("fresh book build", [*rokd, "book", "--profile", profile, "--fresh"], {}),
        (
            "rendered book: links + headless Chromium",
            [py, "-m", "pytest", "-q", "-m", "book"],
            {"ROKD_CHECK_PROFILE": profile},
        ),
    ]
    if profile != PUBLISHED_PROFILE:  # the published results must still render with the current code
        published = {"ROKD_CHECK_PROFILE": PUBLISHED_PROFILE}
        out += [
            (
                f"published book ({PUBLISHED_PROFILE}): fresh build from the committed results",
                [*rokd, "book", "--profile", PUBLISHED_PROFILE, "--fresh"],
                published,
            ),
            (
                f"published book ({PUBLISHED_PROFILE}): links + headless Chromium",
                [py, "-m", "pytest", "-q", "-m", "book"],
                published,
            ),
        ]
    return out


def run_all(profile: str) -> int:
    results = []
    failed = None
    for name, cmd, env in stages(profile):
        print(f"\n=== stage: {name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=REPO_ROOT, env={**os.environ, "ROKD_CHECK_PROFILE": profile, **env}).returncode
        results.append((name, time.perf_counter() - t0, rc))
        if rc != 0:
            failed = name
            break
    print("\n=== stage times ===")
    for name, seconds, rc in results:
        print(f"{seconds:8.1f} s  {'ok  ' if rc == 0 else 'FAIL'}  {name}")
    print(f"{sum(s for _, s, _ in results):8.1f} s  total")
    if failed:
        print(f"FAILED at stage: {failed}", file=sys.stderr)
        return 1
    return 0
