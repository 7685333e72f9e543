"""Which pairs are compared, and ``results/<profile>/loyalty.csv``.

Pairs (student, teacher), each compared on the same task and fine-tuning seed:

- :func:`loyalty_pairs`, the paper's: each student against each of its teachers, and a multi-teacher
  student also against the *ensemble* of its teachers (averaged distributions, or outputs for STS);
- :func:`control_pairs`, the references an ordering is read against: the two teachers against each
  other; each single-teacher student against the *other* teacher; ``control-init-only`` (initialised
  from the cased teacher's layers, not distilled) against each teacher; ``control-random-init`` against
  the cased teacher (agreement from learning the same task alone).

A student distilled several times (``distill.replicas``) has the pairs of each distillation
(``<student>@d<k>``) in ``loyalty.csv``; the chapter reads them pooled as runs of the student
(:func:`pool_replicas`), so its orderings carry the variance of distillation like the scores do.

Loyalty is computed from the **compact predictions** (:mod:`rokd.tasks.compact`): where the full
per-example files exist they are compacted first (and the compact copy written), so the committed
``loyalty.csv`` can be recomputed exactly from the committed compact files.
``loyalty.csv`` holds one row per number: ``student,teacher,task,seed,metric,value``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rokd import io
from rokd.loyalty.measures import (
    ENSEMBLE,
    LoyaltyAlignmentError,
    check_aligned,
    ensemble_predictions,
    pair_loyalty,
    probability_loyalty,
)
from rokd.models.registry import (
    CONTROL_TEACHER,
    CONTROLS,
    DISPLAY_NAMES,
    STUDENT_TEACHERS,
    TEACHERS,
    pooled_runs,
    replica_key,
)
from rokd.paths import results_dir
from rokd.spec import INIT_ONLY_CONTROL, RANDOM_INIT_CONTROL
from rokd.tasks import compact as C
from rokd.tasks.predictions import Predictions, load_predictions, predictions_path

LOYALTY_COLUMNS = ("student", "teacher", "task", "seed", "metric", "value")
# 2: computed from predictions-compact/ (the committed form); 1 (no field): from the full files.
FORMAT_VERSION = 2


def _distillations(student: str, replicas: Mapping[str, int] | None) -> list[str]:
    """The model keys of ``student``'s distillations: itself, then ``<student>@d2`` ... (``distill.replicas``)."""
    return [replica_key(student, k) for k in range(1, (replicas or {}).get(student, 1) + 1)]


def loyalty_pairs(replicas: Mapping[str, int] | None = None) -> list[tuple[str, str]]:
    """(student, teacher) pairs: each student vs each of its teachers, plus vs ``ensemble`` for several teachers.

    ``replicas`` (a profile's ``distill.replicas``): a student distilled several times has these pairs for each
    of its distillations (``<student>@d<k>``); :func:`pool_replicas` reads them as runs of the student.
    """
    pairs = []
    for student, teachers in STUDENT_TEACHERS.items():
        for key in _distillations(student, replicas):
            pairs += [(key, t) for t in teachers]
            if len(teachers) > 1:
                pairs.append((key, ENSEMBLE))
    return pairs


def control_pairs(replicas: Mapping[str, int] | None = None) -> list[tuple[str, str]]:
    """The reference pairs every ordering is read against (see the module docstring); ``replicas`` as in
    :func:`loyalty_pairs`."""
    cased, uncased = TEACHERS
    pairs = [(uncased, cased)]  # the two teachers: symmetric measures, one row
    pairs += [
        (key, t)
        for s, ts in STUDENT_TEACHERS.items()
        if len(ts) == 1
        for key in _distillations(s, replicas)
        for t in TEACHERS
        if t not in ts
    ]
    pairs += [(INIT_ONLY_CONTROL, t) for t in TEACHERS]
    pairs.append((RANDOM_INIT_CONTROL, CONTROL_TEACHER))
    return pairs


def pool_replicas(loyalty: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``<student>@d<k>`` as rows of ``<student>``, their seed numbered :func:`rokd.stats.run_number`
    (``1000 * (k - 1) + seed``), as :func:`rokd.report.load_scores` pools scores: the orderings then carry the
    variance of distillation (clustered by distillation, :mod:`rokd.stats`)."""
    out = loyalty.copy()
    out["student"], out["seed"] = pooled_runs(loyalty["student"], loyalty["seed"])
    return out


def pair_label(student: str, teacher: str) -> str:
    """``Student → Teacher`` with the paper's display names."""
    t = "ensemble of teachers" if teacher == ENSEMBLE else DISPLAY_NAMES.get(teacher, teacher)
    return f"{DISPLAY_NAMES.get(student, student)} → {t}"


def _members(student: str, teacher: str) -> tuple[str, ...]:
    return STUDENT_TEACHERS[student] if teacher == ENSEMBLE else (teacher,)


def _models(pairs) -> list[str]:
    out: list[str] = []
    for s, t in pairs:
        for m in (s, *_members(s, t)):
            if m not in out:
                out.append(m)
    return out


# --- where predictions come from ---------------------------------------------------------------------


def available(res: Path, model: str, task: str, seed: int, compact_only: bool = False) -> bool:
    """Full (unless ``compact_only``) or compact predictions of one model x task x seed exist under ``res``."""
    full = not compact_only and predictions_path(res, model, task, seed).exists()
    return full or C.compact_path(res, model, task, seed).exists()


class _Source:
    """Loads predictions for loyalty: always the compact form (from the full file when there is one)."""

    def __init__(self, res: Path, top_k: int, compact_only: bool = False):
        self.res, self.top_k, self.compact_only = res, top_k, compact_only
        self.compact: dict[tuple, Predictions] = {}
        self.full: dict[tuple, Predictions | None] = {}
        self.rows: dict[str, C.CompactRows] = {}  # rows digest -> rows
        self.from_full: list[tuple[str, str, int]] = []  # (model, task, seed) compacted from a full file

    def src(self, model: str, task: str, seed: int) -> str:
        full = predictions_path(self.res, model, task, seed)
        return str(full if full.exists() and not self.compact_only else C.compact_path(self.res, model, task, seed))

    def get(self, model: str, task: str, seed: int) -> Predictions:
        key = (model, task, seed)
        if key not in self.compact:
            full_path = predictions_path(self.res, model, task, seed)
            if full_path.exists() and not self.compact_only:
                full = load_predictions(full_path)
                rows, comp = C.compact(full, self.top_k)
                if key not in self.from_full:
                    self.from_full.append(key)
                self.full[key] = full
                self.compact[key] = C.expand(rows, comp)
            else:
                self.full[key] = None
                self.compact[key] = C.load_compact(self.res, model, task, seed, self.rows)
        return self.compact[key]

    def get_full(self, model: str, task: str, seed: int) -> Predictions | None:
        self.get(model, task, seed)
        return self.full[(model, task, seed)]

    def forget(self) -> None:
        self.compact.clear()
        self.full.clear()
        self.rows.clear()

    def write_compact(self) -> None:
        """Write the compact copy of every full file used (after every pair succeeded: nothing half-done)."""
        for model, task, seed in self.from_full:
            C.save_compact(
                self.res, model, task, seed, load_predictions(predictions_path(self.res, model, task, seed)), self.top_k
            )
        C.prune_rows(self.res)


def _pair(source: _Source, student: str, teacher: str, task: str, seed: int, full: bool = False):
    get = source.get_full if full else source.get
    members = _members(student, teacher)
    preds = [get(m, task, seed) for m in members]
    s = get(student, task, seed)
    if any(p is None for p in preds) or s is None:
        return None
    srcs = [source.src(m, task, seed) for m in members]
    t = preds[0] if teacher != ENSEMBLE else ensemble_predictions(preds, srcs)
    check_aligned(t, s, " + ".join(srcs), source.src(student, task, seed))
    return t, s


def load_pair(
    profile: str,
    student: str,
    teacher: str,
    task: str,
    seed: int,
    results: str | Path | None = None,
    top_k: int = C.TOP_K,
) -> tuple[Predictions, Predictions]:
    """Teacher (or ensemble) and student predictions of one task and seed, as loyalty sees them (compact form).

    Nothing is written. Raises :class:`FileNotFoundError` naming the file when neither form exists.
    """
    res = Path(results) if results is not None else results_dir(profile)
    for m in (student, *_members(student, teacher)):
        if not available(res, m, task, seed):
            raise FileNotFoundError(
                f"predictions not found: {predictions_path(res, m, task, seed)} "
                f"(nor {C.compact_path(res, m, task, seed)}); run the evaluation step"
            )
    return _pair(_Source(res, top_k=top_k), student, teacher, task, seed)


@dataclass
class LoyaltyConfig:
    """What one loyalty computation covered (written beside ``loyalty.csv``)."""

    profile: str
    tasks: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    pairs: list[list[str]] = field(default_factory=list)
    control_pairs: list[list[str]] = field(default_factory=list)
    missing_controls: list[str] = field(default_factory=list)  # control models with no predictions at all
    format_version: int = FORMAT_VERSION
    predictions: str = C.COMPACT_DIR
    top_k: int = C.TOP_K
    compact_bytes: int = 0
    # max |P-L(full) - P-L(compact)| over the pairs whose full files were present (None: none were)
    prob_loyalty_compaction_error: float | None = None


def loyalty_csv_path(profile: str) -> Path:
    return results_dir(profile) / "loyalty.csv"


def _missing(res: Path, models, tasks, seeds, compact_only: bool = False) -> list[Path]:
    where = C.compact_path if compact_only else predictions_path
    return [
        where(res, m, t, s) for m in models for t in tasks for s in seeds if not available(res, m, t, s, compact_only)
    ]


def compute_loyalty(
    profile: str,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    write: bool = True,
    results: str | Path | None = None,
    top_k: int = C.TOP_K,
    compact_only: bool = False,
) -> pd.DataFrame:
    """Loyalty of every paper pair and every control pair on every task and seed of ``profile``.

    ``tasks`` / ``seeds`` default to the profile's ``evaluate`` section. The paper pairs' predictions must
    all exist (full or compact): a missing one is an error listing every missing file, never a skipped
    row. A control model with no predictions at all (a run made before controls existed) leaves its
    pairs out, named in ``loyalty_config.json`` (``missing_controls``); one with only some is an error.
    With ``write`` the compact predictions, ``loyalty.csv`` and ``loyalty_config.json`` are written
    (atomically). ``compact_only``: ignore the full files (recompute what the repository holds).
    Returns the rows (``student,teacher,task,seed,metric,value``).
    """
    from rokd.config import save_config
    from rokd.profiles import load_profile

    prof = load_profile(profile)
    tasks = list(tasks) if tasks is not None else list(prof.evaluate.tasks)
    seeds = [int(s) for s in seeds] if seeds is not None else [int(s) for s in prof.evaluate.seeds]
    res = Path(results) if results is not None else results_dir(prof.name)
    paper_pairs = loyalty_pairs(prof.distill.replicas)
    missing = _missing(res, _models(paper_pairs), tasks, seeds, compact_only)
    if missing:
        shown = "\n  ".join(str(p) for p in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise FileNotFoundError(
            f"{len(missing)} prediction file(s) missing for loyalty of profile {prof.name!r}:\n  {shown}{more}\n"
            f"run the evaluation step first: `rokd pipeline --profile {prof.name}`"
        )
    absent = [m for m in CONTROLS if all(not available(res, m, t, s, compact_only) for t in tasks for s in seeds)]
    controls = [p for p in control_pairs(prof.distill.replicas) if p[0] not in absent]
    partial = _missing(res, _models(controls), tasks, seeds, compact_only)
    if partial:
        raise FileNotFoundError(
            f"{len(partial)} control prediction file(s) missing, e.g. {partial[0]}; "
            f"finish the evaluation of the controls (`rokd pipeline --profile {prof.name}`)"
        )
    pairs = paper_pairs + controls
    source = _Source(res, top_k, compact_only)
    rows, errors = [], []
    for task in tasks:
        for seed in seeds:
            for student, teacher in pairs:
                t_preds, s_preds = _pair(source, student, teacher, task, seed)
                for metric, value in pair_loyalty(t_preds, s_preds).items():
                    rows.append(
                        {
                            "student": student,
                            "teacher": teacher,
                            "task": task,
                            "seed": seed,
                            "metric": metric,
                            "value": value,
                        }
                    )
                full = None if t_preds.is_regression else _pair(source, student, teacher, task, seed, full=True)
                if full is not None:  # what compaction costs P-L, measured where the full files exist
                    errors.append(
                        abs(
                            probability_loyalty(full[0].probs, full[1].probs)
                            - probability_loyalty(t_preds.probs, s_preds.probs)
                        )
                    )
            source.forget()  # one task x seed in memory at a time (XPOS distributions are large)
    order = {p: i for i, p in enumerate(pairs)}
    df = pd.DataFrame(rows, columns=list(LOYALTY_COLUMNS))
    df["_o"] = [order[(s, t)] for s, t in zip(df.student, df.teacher)]
    df = (
        df.sort_values(
            ["_o", "task", "seed"], key=lambda c: c.map(tasks.index) if c.name == "task" else c, kind="stable"
        )
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    if write:
        source.write_compact()
        out = res / "loyalty.csv"
        with io.atomic_path(out) as tmp:  # never leave a half-written table
            df.to_csv(tmp, index=False, float_format="%.10g")
        cfg = LoyaltyConfig(
            prof.name,
            tasks,
            seeds,
            [list(p) for p in paper_pairs],
            [list(p) for p in controls],
            absent,
            top_k=top_k,
            compact_bytes=C.compact_size(res),
            prob_loyalty_compaction_error=float(max(errors)) if errors else None,
        )
        save_config(cfg, res / "loyalty_config.json")
    return df


def read_loyalty(profile: str, results: str | Path | None = None) -> pd.DataFrame:
    """``results/<profile>/loyalty.csv`` as a DataFrame (clear error if missing or malformed).

    Checked whole: the columns, six fields per row, names and an integer seed in every row, numeric
    values, and a final newline (a file cut mid-row is an error naming it, not a short last value).
    """
    import csv

    from rokd.errors import CorruptFileError

    path = (Path(results) if results is not None else results_dir(profile)) / "loyalty.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; compute it with `rokd loyalty --profile {profile}`")
    fix = f"delete it and re-run `rokd loyalty --profile {profile}`"
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise CorruptFileError(path, "loyalty table", f"its last row is cut short (no final newline); {fix}")
    try:
        lines = list(csv.reader(raw.decode("utf-8").splitlines()))
    except UnicodeDecodeError as e:
        raise CorruptFileError(path, "loyalty table", fix, e) from None
    if not lines or tuple(lines[0]) != LOYALTY_COLUMNS:
        raise CorruptFileError(
            path,
            "loyalty table",
            f"expected columns {','.join(LOYALTY_COLUMNS)}, got {','.join(lines[0]) if lines else 'nothing'}; {fix}",
        )
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(LOYALTY_COLUMNS) or not all(fields[:5]):
            raise CorruptFileError(path, "loyalty table", f"line {number} is incomplete ({','.join(fields)}); {fix}")
    df = pd.read_csv(path)
    if not pd.api.types.is_integer_dtype(df["seed"]) or not pd.api.types.is_numeric_dtype(df["value"]):
        raise CorruptFileError(path, "loyalty table", f"seed must be whole numbers and value numbers; {fix}")
    return df


def read_loyalty_config(profile: str, results: str | Path | None = None) -> dict:
    """``loyalty_config.json`` as a dict ({} when absent); ``format_version`` 1 when it predates the field."""
    import json

    path = (Path(results) if results is not None else results_dir(profile)) / "loyalty_config.json"
    if not path.exists():
        return {}
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg.setdefault("format_version", 1)
    return cfg


def loyalty_or_committed(profile: str, results: str | Path | None = None) -> tuple[pd.DataFrame, str]:
    """Loyalty recomputed when this machine has the predictions (full or compact), else the committed CSV.

    Returns the table, with a student's distillations pooled (:func:`pool_replicas`), and one sentence saying
    which (for the chapter).
    """
    from rokd.profiles import load_profile

    prof = load_profile(profile)
    res = Path(results) if results is not None else results_dir(prof.name)
    models = _models(loyalty_pairs(prof.distill.replicas))
    need = [(m, t, s) for m in models for t in prof.evaluate.tasks for s in prof.evaluate.seeds]
    if all(available(res, *k) for k in need):
        df = pool_replicas(compute_loyalty(profile, results=results))
        cfg = read_loyalty_config(profile, results)
        err = cfg.get("prob_loyalty_compaction_error")
        size = cfg.get("compact_bytes", 0) / 1e6
        return df, (
            f"Computed now from the compact predictions in `{C.COMPACT_DIR}/` ({size:.1f} MB, top "
            f"{cfg.get('top_k')} labels per row)"
            + (
                f"; P-L differs from the full-precision value by at most {100 * err:.3f} points"
                if err is not None
                else ""
            )
            + "."
        )
    cfg = read_loyalty_config(profile, results)
    df = pool_replicas(read_loyalty(profile, results))
    if cfg.get("format_version", 1) >= FORMAT_VERSION:
        return df, "Read from the committed `loyalty.csv` (its compact predictions are incomplete on this machine)."
    return df, (
        "Read from the committed `loyalty.csv`, computed by the run from its full predictions, which are not "
        "committed: this run predates the compact predictions, so its loyalty cannot be recomputed from the "
        "repository, and it has no control pairs."
    )


__all__ = [
    "FORMAT_VERSION",
    "LOYALTY_COLUMNS",
    "LoyaltyAlignmentError",
    "LoyaltyConfig",
    "available",
    "compute_loyalty",
    "control_pairs",
    "load_pair",
    "loyalty_csv_path",
    "loyalty_or_committed",
    "loyalty_pairs",
    "pool_replicas",
    "pair_label",
    "read_loyalty",
    "read_loyalty_config",
]
