"""The pipeline runner: every chapter notebook executed in dependency order with papermill.

    data -> teachers -> distil x3 -> evaluate x5 -> results -> loyalty

Each evaluate step also scores the baselines (seconds, cached) and fine-tunes the control read against its
model (``rokd.models.registry.CONTROL_OF``): ``control-random-init`` in the cased teacher's chapter,
``control-init-only`` in Distil-BERT-base-ro's.

Each step converts a text notebook (``notebooks/*.md``, jupytext MyST) to ``.ipynb`` and executes it
with papermill, injecting the profile's parameters. Executed notebooks go to
``results/<profile name>/notebooks/<step>.ipynb`` (the ``name:`` of the profile, also when it is given as
a YAML path). A finished step leaves a stamp keyed by the hash of its notebook, its parameters, the
profile's content, the ``rokd`` code its notebook runs (:func:`step_modules`: the modules it imports,
transitively, without docstrings) and its upstream stamps, so a re-run only executes what changed
(the heavy work inside a step, training, is cached separately by the idempotent builders it calls). A
failing step stops the run and names the executed notebook that holds the error.

State is never half-written: a step's stamp is removed before the step runs, the executed notebook and
the stamp are written to temp files and renamed into place, and a step counts as done only when its
stamp is readable, matches the key and the notebook's checksum, and every output it declares
(``Step.outputs``: e.g. ``scores.csv``, a student's weights) exists and is not empty. Deleting an output
therefore re-runs the step that makes it. One pipeline per profile runs at a time (a lock file in
``results/<profile>/.pipeline/``); a second one waits (``--wait``) or stops naming the holder.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rokd import io
from rokd.config import ConfigError, to_dict
from rokd.errors import RokdError, UsageError
from rokd.models.registry import CONTROL_OF, TEACHERS, student_models
from rokd.paths import REPO_ROOT, artifacts_dir, check_name, results_dir
from rokd.profiles import Profile, load_profile

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
STATE_DIR = ".pipeline"  # stamps and the lock, inside results/<profile>/
LOCK_FILE = "lock"


class StepFailed(RokdError):
    """A notebook raised; ``executed`` is the output notebook holding the traceback."""

    def __init__(self, step: str, executed: Path, cause: BaseException):
        self.step, self.executed = step, executed
        last = str(cause).strip().splitlines()[-1] if str(cause).strip() else ""
        super().__init__(
            f"step {step!r} failed: {type(cause).__name__}: {last}; the executed notebook with the error: {executed}"
        )


@dataclass
class Step:
    name: str  # unique, also the executed notebook's file name
    notebook: str  # stem of notebooks/<notebook>.md
    parameters: dict = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)
    # Files (or folders) the step writes: missing or empty ones mean the step is not done.
    outputs: list[Path] = field(default_factory=list)
    # (scores.csv, model): a file several steps add rows to; this step is done only while its model's rows are there.
    score_rows: tuple[Path, str] | None = None


def _profile_arg(profile: str | Path) -> str:
    """What the notebooks receive as ``profile``: a name, or the absolute path of a YAML file."""
    path = Path(profile)
    return str(path.resolve()) if path.suffix else str(profile)


def plan(profile: str | Path, prof: Profile | None = None) -> list[Step]:
    """The steps of a profile, in an order that respects their dependencies."""
    from rokd.strategy_study import CSV_NAME
    from rokd.tasks.predictions import predictions_path

    prof = prof or load_profile(profile)
    res, art = results_dir(prof.name), artifacts_dir(prof.name)
    base = {"profile": _profile_arg(profile)}
    built_teachers = prof.teachers.source == "build"
    built_students = prof.distill.source == "build"
    steps = [
        Step("00_data", "00_data", dict(base), outputs=[res / "data_summary.json"]),
        Step(
            "01_teachers",
            "01_teachers",
            dict(base),
            ["00_data"],
            outputs=[art / "teachers" / k / "model.safetensors" for k in TEACHERS] if built_teachers else [],
        ),
    ]
    distil_names = []
    students = student_models(prof)  # with distillation replicas <student>@d<k>
    for student in students:  # the multi student last: its chapter compares with the cased-only one
        name = f"02_distill-{student}"
        folder = art / "students" / student
        steps.append(
            Step(
                name,
                "02_distill",
                {**base, "student": student},
                ["01_teachers"],
                outputs=[folder / "model.safetensors", folder / "summary.json"] if built_students else [],
            )
        )
        distil_names.append(name)
    eval_names = []
    for model in [*TEACHERS, *students]:
        name = f"03_evaluate-{model}"
        upstream = ["01_teachers"] if model in TEACHERS else [f"02_distill-{model}"]
        controls = [c for c, of in CONTROL_OF.items() if of == model]  # fine-tuned in their model's chapter
        runs = [
            predictions_path(res, m, t, s)
            for m in (model, *controls)
            for t in prof.evaluate.tasks
            for s in prof.evaluate.seeds
        ]
        outputs = [res / "scores.csv", *runs, *(p.with_suffix(".run.json") for p in runs)]
        steps.append(
            Step(
                name,
                "03_evaluate",
                {**base, "model": model, **({"controls": controls} if controls else {})},
                upstream,
                outputs=outputs,
                score_rows=(res / "scores.csv", model),
            )
        )
        eval_names.append(name)
    steps.append(
        Step("04_results", "04_results", dict(base), eval_names + distil_names, outputs=[res / "model_stats.json"])
    )
    steps.append(Step("05_loyalty", "05_loyalty", dict(base), eval_names, outputs=[res / "loyalty.csv"]))
    if "06_strategies" in prof.chapters:
        # Every cross-tokenizer strategy x two distillation seeds (rokd.strategy_study, into strategies.csv), each
        # distilled for a third of the profile's steps so that the fourteen distillations fit the profile's budget;
        # its loyalty reads the teachers' own test predictions, so it follows their evaluation chapters.
        study = {**base, "steps": max(1, prof.distill.steps // 3)}
        teacher_evals = [f"03_evaluate-{t}" for t in TEACHERS]
        steps.append(
            Step("06_strategies", "06_strategies", study, ["01_teachers", *teacher_evals], outputs=[res / CSV_NAME])
        )
    if "07_distil_your_own" in prof.chapters:
        # The worked example of the API distils from the profile's cased teacher and a stand-in of another
        # tokenizer family: a demonstration, not a result, so a third of the profile's distillation steps.
        demo = {**base, "steps": max(1, prof.distill.steps // 3)}
        steps.append(Step("07_distil_your_own", "07_distil_your_own", demo, ["01_teachers"]))
    return steps


# What a step depends on in rokd's code: the modules its notebook imports, followed through every import
# statement of those modules (also imports inside functions: a superset, never fewer), hashed as their
# syntax trees without docstrings -- so a docstring or comment edit re-runs nothing, a code change re-runs
# the chapters that import it (directly or not), and the other chapters stay cached. rokd's data files
# (package YAML / JSON) count for every step.


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "rokd":
        return None
    base = REPO_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """The rokd modules an import statement in ``tree`` may load (``from rokd.x import y``: ``rokd.x`` and,
    when ``y`` is a submodule, ``rokd.x.y``), with their parent packages."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = module.split(".") if is_package else module.split(".")[:-1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {n for n in out if _module_file(n) is not None}


def _code_digest(path: Path) -> str:
    """The module's syntax tree without docstrings (comments are not in it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def step_modules(notebook: Path) -> list[str]:
    """Every rokd module a notebook's code may import, directly or through other rokd modules, sorted."""
    import jupytext

    cells = [c.source for c in jupytext.read(notebook).cells if c.cell_type == "code"]
    code = "\n".join(line for cell in cells for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))
    todo = sorted(_imported_modules(ast.parse(code), "__main__", False))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        todo.extend(_imported_modules(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py"))
    return sorted(seen)


def _sources_digest(notebook: Path) -> str:
    """Hash of the rokd code a notebook runs (:func:`step_modules`) and of rokd's data files."""
    h = hashlib.sha256()
    for name in step_modules(notebook):
        h.update(name.encode() + _code_digest(_module_file(name)).encode())
    for path in sorted((REPO_ROOT / "rokd").rglob("*")):
        if path.suffix in {".yaml", ".json"} and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(REPO_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def profile_digest(prof: Profile | None) -> str:
    """Hash of a profile's content (every resolved field), wherever it was read from."""
    if prof is None:
        return ""
    return hashlib.sha256(json.dumps(to_dict(prof), sort_keys=True).encode()).hexdigest()


def step_key(
    step: Step,
    profile_hash: str,
    upstream_keys: list[str],
    sources: str | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
) -> str:
    h = hashlib.sha256()
    h.update((notebook_dir / f"{step.notebook}.md").read_bytes())
    h.update(json.dumps(step.parameters, sort_keys=True).encode())
    h.update(profile_hash.encode())
    h.update((sources if sources is not None else _sources_digest(notebook_dir / f"{step.notebook}.md")).encode())
    for key in upstream_keys:
        h.update(key.encode())
    return h.hexdigest()[:20]


def _nonempty(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.is_file() and path.stat().st_size > 0


def running_marker(stamp_dir: Path, step: str) -> Path:
    """The file that says a step began and has not finished (a failure or a kill leaves it behind)."""
    return stamp_dir / f"{step}.running"


def not_done_reason(step: Step, key: str, executed: Path, stamp: Path) -> str | None:
    """None when ``step`` finished with ``key`` and its outputs are intact; otherwise why it must run.

    Anything unreadable (a truncated stamp, a 0-byte notebook left by a kill) means "not done", never a crash.
    """
    record = io.read_json(stamp)
    if not isinstance(record, dict):
        return "no stamp" if not stamp.exists() else "unreadable stamp"
    if record.get("key") != key:
        return "inputs changed"
    if not _nonempty(executed):
        return "executed notebook missing or empty"
    if record.get("notebook_sha256") != io.file_sha256(executed):
        return "executed notebook changed or incomplete"
    missing = [p for p in step.outputs if not _nonempty(Path(p))]
    if missing:
        return f"output {missing[0]} missing or empty" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    if step.score_rows is not None:
        from rokd.tasks.scores import read_scores

        path, model = step.score_rows
        try:
            if not any(r["model"] == model for r in read_scores(path)):
                return f"no rows of {model} in {path}"
        except (OSError, ValueError):  # a damaged file: the step rewrites its rows
            return f"{path} unreadable"
    return None


def step_is_done(step: Step, key: str, output_dir: Path) -> bool:
    return (
        not_done_reason(
            step, key, output_dir / "notebooks" / f"{step.name}.ipynb", output_dir / STATE_DIR / f"{step.name}.json"
        )
        is None
    )


def pipeline_lock(output_dir: Path, name: str, *, wait: bool = False, log=None):
    """The lock of a profile's pipeline (also taken by ``rokd book`` while it reads the notebooks)."""
    return io.lock(
        Path(output_dir) / STATE_DIR / LOCK_FILE,
        f"the pipeline of profile {name!r}",
        wait=wait,
        hint=", or rerun with --wait",
        log=log,
    )


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
    profile: str | Path,
    only: list[str] | None = None,
    force: bool = False,
    out=sys.stdout,
    steps: list[Step] | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    output_dir: Path | None = None,
    wait: bool = False,
) -> list[dict]:
    """Run (or skip, when done) every step of ``profile``; returns one record per step.

    ``steps``, ``notebook_dir`` and ``output_dir`` default to the project's plan, ``notebooks/`` and
    ``results/<profile name>/`` (tests pass their own). ``wait``: when another run of this profile holds
    its lock, wait for it instead of stopping with :class:`~rokd.errors.LockedError`.
    """
    prof = None
    if steps is None:
        prof = load_profile(profile)  # fail early on a bad profile
        steps = plan(profile, prof)
    else:
        with contextlib.suppress(ConfigError):  # a test's own plan may name no real profile
            prof = load_profile(profile)
    name = prof.name if prof is not None else check_name(str(profile), "profile")
    if only:
        unknown = sorted(set(only) - {s.name for s in steps} - {s.notebook for s in steps})
        if unknown:
            raise UsageError(f"unknown step(s) {unknown} in --only; steps: {[s.name for s in steps]}")
    out_dir = Path(output_dir) if output_dir is not None else results_dir(name)
    nb_dir, stamp_dir = out_dir / "notebooks", out_dir / STATE_DIR
    with pipeline_lock(out_dir, name, wait=wait, log=lambda m: print(m, file=out, flush=True)):
        for stale in nb_dir.glob(".*.tmp.ipynb"):  # left by a run that was killed mid-step
            stale.unlink(missing_ok=True)
        return _run_locked(name, prof, steps, only, force, out, notebook_dir, nb_dir, stamp_dir)


def _run_locked(name, prof, steps, only, force, out, notebook_dir, nb_dir, stamp_dir) -> list[dict]:
    sources: dict[str, str] = {}  # per notebook: the digest of the rokd code it runs
    profile_hash = profile_digest(prof)
    keys: dict[str, str] = {}
    records = []
    t_start = time.perf_counter()
    for i, step in enumerate(steps, 1):
        if step.notebook not in sources:
            sources[step.notebook] = _sources_digest(notebook_dir / f"{step.notebook}.md")
        key = step_key(step, profile_hash, [keys[d] for d in step.depends], sources[step.notebook], notebook_dir)
        keys[step.name] = key
        executed = nb_dir / f"{step.name}.ipynb"
        stamp = stamp_dir / f"{step.name}.json"
        selected = not only or step.name in only or step.notebook in only
        reason = "forced" if force else not_done_reason(step, key, executed, stamp)
        cached = reason is None
        prefix = f"[{i}/{len(steps)}] {step.name}"
        if cached or not selected:
            print(f"{prefix}: {'cached' if cached else 'not selected'}", file=out, flush=True)
            records.append({"step": step.name, "status": "cached" if cached else "skipped", "seconds": 0.0})
            continue
        print(
            f"{prefix}: running ({reason}; {len(steps) - i} left after this, elapsed "
            f"{_fmt(time.perf_counter() - t_start)})",
            file=out,
            flush=True,
        )
        stamp.unlink(missing_ok=True)  # from here on the step is not done, whatever happens
        running = running_marker(stamp_dir, step.name)  # removed only once the stamp is written (rokd book checks it)
        io.atomic_write_text(running, f"{os.getpid()}\n")
        tmp = executed.with_name(f".{executed.stem}.{os.getpid()}.tmp.ipynb")
        t0 = time.perf_counter()
        try:
            execute_notebook(notebook_dir / f"{step.notebook}.md", tmp, step.parameters)
        except Exception as e:  # papermill's PapermillExecutionError and kernel failures alike
            if tmp.exists():  # keep the notebook that shows the error where the user looks for it
                os.replace(tmp, executed)
            raise StepFailed(step.name, executed, e) from e
        except BaseException:  # Ctrl-C: no half-run notebook survives
            tmp.unlink(missing_ok=True)
            raise
        seconds = time.perf_counter() - t0
        os.replace(tmp, executed)
        io.atomic_write_json(
            stamp,
            {
                "key": key,
                "seconds": round(seconds, 1),
                "parameters": step.parameters,
                "notebook_sha256": io.file_sha256(executed),
            },
        )
        running.unlink(missing_ok=True)
        print(f"{prefix}: done in {_fmt(seconds)}", file=out, flush=True)
        records.append({"step": step.name, "status": "ran", "seconds": round(seconds, 1)})
    total = time.perf_counter() - t_start
    print(
        f"pipeline {name}: {sum(r['status'] == 'ran' for r in records)} ran, "
        f"{sum(r['status'] == 'cached' for r in records)} cached, total {_fmt(total)}",
        file=out,
        flush=True,
    )
    return records
