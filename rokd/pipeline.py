"""The pipeline runner: every chapter notebook executed in dependency order with papermill.

    data -> teachers -> distil x3 -> evaluate x5 -> results -> loyalty

Each evaluate step also scores the baselines (seconds, cached) and fine-tunes the control read against its
model (``rokd.models.registry.CONTROL_OF``): ``control-random-init`` in the cased teacher's chapter,
``control-init-only`` in Distil-BERT-base-ro's.

Each step converts a text notebook (``notebooks/*.md``, jupytext MyST) to ``.ipynb`` and executes it
with papermill, injecting the profile's parameters. Executed notebooks go to
``results/<profile>/notebooks/<step>.ipynb``. A finished step leaves a stamp keyed by the hash of
its notebook, its parameters, the profile file, the ``rokd`` sources and its upstream stamps, so a
re-run only executes what changed (the heavy work inside a step, training, is cached separately by
the idempotent builders it calls). A failing step stops the run and names the executed notebook that
holds the error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rokd.models.registry import CONTROL_OF, MODEL_KEYS, STUDENTS
from rokd.paths import REPO_ROOT, results_dir
from rokd.profiles import PROFILE_DIR, load_profile

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class StepFailed(RuntimeError):
    """A notebook raised; ``executed`` is the output notebook holding the traceback."""

    def __init__(self, step: str, executed: Path, cause: BaseException):
        self.step, self.executed = step, executed
        super().__init__(
            f"step {step!r} failed: {type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}\n"
            f"  the executed notebook with the error: {executed}"
        )


@dataclass
class Step:
    name: str  # unique, also the executed notebook's file name
    notebook: str  # stem of notebooks/<notebook>.md
    parameters: dict = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)


def plan(profile: str) -> list[Step]:
    """The steps of a profile, in an order that respects their dependencies."""
    base = {"profile": profile}
    steps = [
        Step("00_data", "00_data", dict(base)),
        Step("01_teachers", "01_teachers", dict(base), ["00_data"]),
    ]
    distil_names = []
    for student in STUDENTS:  # the multi student last: its chapter compares with the cased-only one
        name = f"02_distill-{student}"
        steps.append(Step(name, "02_distill", {**base, "student": student}, ["01_teachers"]))
        distil_names.append(name)
    eval_names = []
    for model in MODEL_KEYS:
        name = f"03_evaluate-{model}"
        upstream = ["01_teachers"] if model not in STUDENTS else [f"02_distill-{model}"]
        controls = [c for c, of in CONTROL_OF.items() if of == model]
        steps.append(Step(name, "03_evaluate", {**base, "model": model, **({"controls": controls} if controls else {})},
                          upstream))
        eval_names.append(name)
    steps.append(Step("04_results", "04_results", dict(base), eval_names + distil_names))
    steps.append(Step("05_loyalty", "05_loyalty", dict(base), eval_names))
    return steps


def _sources_digest() -> str:
    """Hash of the package sources: a code change re-executes the chapters that show its effects."""
    h = hashlib.sha256()
    for path in sorted((REPO_ROOT / "rokd").rglob("*")):
        if path.suffix in {".py", ".yaml", ".json"} and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(REPO_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def step_key(step: Step, profile: str, upstream_keys: list[str], sources: str, notebook_dir: Path = NOTEBOOK_DIR) -> str:
    h = hashlib.sha256()
    h.update((notebook_dir / f"{step.notebook}.md").read_bytes())
    h.update(json.dumps(step.parameters, sort_keys=True).encode())
    profile_file = PROFILE_DIR / f"{profile}.yaml"
    if profile_file.exists():
        h.update(profile_file.read_bytes())
    h.update(sources.encode())
    for key in upstream_keys:
        h.update(key.encode())
    return h.hexdigest()[:20]


# The kernel's environment during a pipeline run: progress bars are noise in a rendered chapter
# (the JSONL training logs keep the numbers), and the offline profiles never touch the hub.
KERNEL_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # the two warnings the disabled bars themselves cause (tqdm without ipywidgets; hub bars forced off)
    "PYTHONWARNINGS": "ignore:IProgress not found,ignore:Cannot enable progress bars",
}


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_notebook(notebook: Path, output: Path, parameters: dict, cwd: Path = REPO_ROOT) -> None:
    """jupytext text notebook -> ipynb -> papermill execution into ``output`` (written even on error)."""
    import jupytext
    import papermill as pm

    nb = jupytext.read(notebook)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source_ipynb = Path(tmp) / f"{notebook.stem}.ipynb"
        jupytext.write(nb, source_ipynb)
        with _environment(KERNEL_ENV):
            pm.execute_notebook(
                str(source_ipynb),
                str(output),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(cwd),
                progress_bar=False,
                request_save_on_cell_execute=False,
            )


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def run(
    profile: str,
    only: list[str] | None = None,
    force: bool = False,
    out=sys.stdout,
    steps: list[Step] | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    output_dir: Path | None = None,
) -> list[dict]:
    """Run (or skip, when cached) every step of ``profile``; returns one record per step.

    ``steps``, ``notebook_dir`` and ``output_dir`` default to the project's plan, ``notebooks/`` and
    ``results/<profile>/`` (tests pass their own).
    """
    if steps is None:
        load_profile(profile)  # fail early on a bad profile
        steps = plan(profile)
    if only:
        unknown = sorted(set(only) - {s.name for s in steps} - {s.notebook for s in steps})
        if unknown:
            raise SystemExit(f"unknown step(s) {unknown}; steps: {[s.name for s in steps]}")
    out_dir = output_dir or results_dir(profile)
    nb_dir, stamp_dir = out_dir / "notebooks", out_dir / ".pipeline"
    sources = _sources_digest()
    keys: dict[str, str] = {}
    records = []
    t_start = time.perf_counter()
    for i, step in enumerate(steps, 1):
        key = step_key(step, profile, [keys[d] for d in step.depends], sources, notebook_dir)
        keys[step.name] = key
        executed = nb_dir / f"{step.name}.ipynb"
        stamp = stamp_dir / f"{step.name}.json"
        selected = not only or step.name in only or step.notebook in only
        cached = (
            not force
            and executed.exists()
            and stamp.exists()
            and json.loads(stamp.read_text()).get("key") == key
        )
        prefix = f"[{i}/{len(steps)}] {step.name}"
        if cached or not selected:
            print(f"{prefix}: {'cached' if cached else 'not selected'}", file=out, flush=True)
            records.append({"step": step.name, "status": "cached" if cached else "skipped", "seconds": 0.0})
            continue
        print(f"{prefix}: running ({len(steps) - i} left after this, elapsed {_fmt(time.perf_counter() - t_start)})", file=out, flush=True)
        t0 = time.perf_counter()
        try:
            execute_notebook(notebook_dir / f"{step.notebook}.md", executed, step.parameters)
        except Exception as e:  # papermill's PapermillExecutionError and kernel failures alike
            stamp.unlink(missing_ok=True)
            raise StepFailed(step.name, executed, e) from e
        seconds = time.perf_counter() - t0
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"key": key, "seconds": round(seconds, 1), "parameters": step.parameters}, indent=2))
        print(f"{prefix}: done in {_fmt(seconds)}", file=out, flush=True)
        records.append({"step": step.name, "status": "ran", "seconds": round(seconds, 1)})
    total = time.perf_counter() - t_start
    print(f"pipeline {profile}: {sum(r['status'] == 'ran' for r in records)} ran, "
          f"{sum(r['status'] == 'cached' for r in records)} cached, total {_fmt(total)}", file=out, flush=True)
    return records


def _cmd_pipeline(args: argparse.Namespace) -> int:
    try:
        run(args.profile, only=args.only, force=args.force)
    except StepFailed as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("pipeline", help="run every chapter notebook of a profile (cached)")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--only", nargs="*", help="run only these steps (names or notebook stems)")
    p.add_argument("--force", action="store_true", help="ignore the cache")
    p.set_defaults(func=_cmd_pipeline)
