"""Loyalty: how closely a student *behaves like* its teacher, not only how well it scores.

Three measures (Xu et al., 2021, for the first two; Avram et al., 2022, for the third), computed on the
per-example test predictions written by :mod:`rokd.tasks` (see :mod:`rokd.tasks.predictions`):

- **label loyalty** (L-L): the share of rows (examples, or words for the tagging tasks) on which the
  student predicts the same label as the teacher;
- **probability loyalty** (P-L): the mean over rows of ``1 - JSD(p_teacher, p_student)``, where ``JSD``
  is the Jensen-Shannon *distance* (square root of the divergence) with log base 2, so it lies in [0, 1];
- **regression loyalty** (R-L): Pearson's correlation between teacher and student outputs (STS).

Pairs are taken from :data:`rokd.models.registry.STUDENT_TEACHERS`: each student against each of its
teachers, and a multi-teacher student also against the *ensemble* of its teachers (the average of their
distributions, or of their outputs for STS). Teacher and student are compared on the same task and seed.
Values are fractions (reports multiply by 100). ``results/<profile>/loyalty.csv`` holds one row per
number: ``student,teacher,task,seed,metric,value``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rokd.models.registry import DISPLAY_NAMES, STUDENT_TEACHERS
from rokd.paths import results_dir
from rokd.tasks.predictions import Predictions, load_predictions, predictions_path

LOYALTY_COLUMNS = ("student", "teacher", "task", "seed", "metric", "value")
ENSEMBLE = "ensemble"  # the teacher name of a multi-teacher student's averaged teachers
REGRESSION_TASKS = ("sts",)
# Tasks whose L-L and P-L the paper averages into one number (every classification/tagging task).
CLASSIFICATION_TASKS = ("upos", "xpos", "ner", "sapn", "sar", "di")
METRICS = ("label_loyalty", "prob_loyalty", "regression_loyalty")
METRIC_TITLES = {"label_loyalty": "L-L", "prob_loyalty": "P-L", "regression_loyalty": "R-L"}


class LoyaltyAlignmentError(ValueError):
    """Teacher and student predictions do not describe the same rows (or the same label set)."""


# --- the three measures: pure functions of arrays ------------------------------------------------


def label_loyalty(teacher_pred: Sequence[int], student_pred: Sequence[int]) -> float:
    """Share of rows where the student predicts the teacher's label (a fraction in [0, 1])."""
    t = np.asarray(teacher_pred)
    s = np.asarray(student_pred)
    if t.ndim != 1 or s.ndim != 1:
        raise ValueError(f"label_loyalty takes 1-D label arrays, got shapes {t.shape} and {s.shape}")
    if t.shape != s.shape:
        raise ValueError(f"label_loyalty: teacher has {t.size} labels, student {s.size}")
    if t.size == 0:
        raise ValueError("label_loyalty: no rows to compare")
    return float(np.mean(t == s))


def js_distance_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2) between matching rows of two (N, C) probability arrays.

    SciPy's ``jensenshannon`` already returns the distance, sqrt(divergence): no second root here.
    Rows are renormalised by SciPy. A divergence that rounding makes a hair below zero (identical rows
    in float arithmetic) would give NaN under the root; such rows are exactly 0 and are set so.
    """
    from scipy.spatial.distance import jensenshannon

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.ndim != 2 or p.shape != q.shape:
        raise ValueError(f"probability arrays must both be (N, C) with the same shape, got {p.shape} and {q.shape}")
    if p.shape[0] == 0:
        raise ValueError("probability loyalty: no rows to compare")
    for name, x in (("teacher", p), ("student", q)):
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise ValueError(f"{name} probabilities must be finite and non-negative")
        if np.any(x.sum(axis=1) <= 0):
            raise ValueError(f"{name} probabilities have a row that sums to 0")
    with np.errstate(invalid="ignore"):
        d = jensenshannon(p, q, base=2, axis=1)
    return np.where(np.isnan(d), 0.0, np.clip(d, 0.0, 1.0))


def probability_loyalty(p_teacher: np.ndarray, p_student: np.ndarray) -> float:
    """Mean over rows of ``1 - JS distance`` (base 2) between teacher and student distributions."""
    return float(np.mean(1.0 - js_distance_rows(p_teacher, p_student)))


def regression_loyalty(teacher_out: Sequence[float], student_out: Sequence[float]) -> float:
    """Pearson correlation between teacher and student outputs (NaN, with a warning, if one is constant)."""
    from scipy.stats import pearsonr

    t = np.asarray(teacher_out, dtype=np.float64)
    s = np.asarray(student_out, dtype=np.float64)
    if t.ndim != 1 or t.shape != s.shape:
        raise ValueError(f"regression_loyalty takes two 1-D arrays of equal length, got {t.shape} and {s.shape}")
    if t.size < 2:
        raise ValueError("regression_loyalty needs at least 2 rows")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(s))):
        raise ValueError("regression_loyalty: outputs must be finite")
    if np.ptp(t) == 0 or np.ptp(s) == 0:
        who = "teacher" if np.ptp(t) == 0 else "student"
        warnings.warn(f"regression_loyalty: the {who}'s outputs are constant; Pearson is undefined (NaN)", stacklevel=2)
        return math.nan
    return float(pearsonr(t, s)[0])


# --- aligning two prediction files -----------------------------------------------------------------


def check_aligned(teacher: Predictions, student: Predictions, teacher_src: str = "teacher", student_src: str = "student") -> None:
    """Raise :class:`LoyaltyAlignmentError` unless both predict the same rows, in the same order, with the same labels.

    ``teacher_src`` / ``student_src`` name the files in the message (the paths, normally).
    """
    where = f"teacher {teacher_src} vs student {student_src}"
    if teacher.is_regression != student.is_regression:
        kinds = ["regression" if x.is_regression else "classification" for x in (teacher, student)]
        raise LoyaltyAlignmentError(f"{where}: one holds {kinds[0]} outputs, the other {kinds[1]}")
    if len(teacher.ids) != len(student.ids):
        raise LoyaltyAlignmentError(
            f"{where}: {len(teacher.ids)} rows vs {len(student.ids)} rows; both must score the same test "
            "examples (re-run the evaluation of both models with the same profile)"
        )
    t_ids = np.asarray(teacher.ids, dtype=str)
    s_ids = np.asarray(student.ids, dtype=str)
    differ = np.flatnonzero(t_ids != s_ids)
    if differ.size:
        i = int(differ[0])
        same_set = set(t_ids.tolist()) == set(s_ids.tolist())
        raise LoyaltyAlignmentError(
            f"{where}: example ids differ at {differ.size} rows, first at row {i} "
            f"({t_ids[i]!r} vs {s_ids[i]!r}); "
            + ("same ids in another order" if same_set else "different ids")
            + "; rows must be in the same order (re-run the evaluation of both models with the same profile)"
        )
    if not teacher.is_regression:
        t_names, s_names = list(teacher.label_names or []), list(student.label_names or [])
        if t_names != s_names:
            raise LoyaltyAlignmentError(f"{where}: label names differ ({t_names[:8]}... vs {s_names[:8]}...)")


def ensemble_predictions(members: Sequence[Predictions], sources: Sequence[str] | None = None) -> Predictions:
    """The ensemble of aligned models: averaged distributions (label = argmax), or averaged outputs for STS."""
    if not members:
        raise ValueError("ensemble_predictions needs at least one member")
    sources = list(sources) if sources is not None else [f"member {i}" for i in range(len(members))]
    first = members[0]
    for other, src in zip(members[1:], sources[1:]):
        check_aligned(first, other, sources[0], src)
    meta = {"model": ENSEMBLE, "members": [m.meta.get("model", s) for m, s in zip(members, sources)]}
    if first.is_regression:
        out = np.mean([np.asarray(m.pred, dtype=np.float64) for m in members], axis=0)
        return Predictions(ids=first.ids, gold=first.gold, pred=out, meta=meta)
    probs = np.mean([np.asarray(m.probs, dtype=np.float64) for m in members], axis=0)
    return Predictions(
        ids=first.ids, gold=first.gold, pred=probs.argmax(axis=1), probs=probs, label_names=first.label_names, meta=meta
    )


def pair_loyalty(teacher: Predictions, student: Predictions, teacher_src: str = "teacher", student_src: str = "student") -> dict[str, float]:
    """The loyalty measures of one aligned pair: L-L and P-L (classification) or R-L (regression)."""
    check_aligned(teacher, student, teacher_src, student_src)
    if teacher.is_regression:
        return {"regression_loyalty": regression_loyalty(teacher.pred, student.pred)}
    return {
        "label_loyalty": label_loyalty(teacher.pred, student.pred),
        "prob_loyalty": probability_loyalty(teacher.probs, student.probs),
    }


# --- pairs, loading, the CSV ----------------------------------------------------------------------


def loyalty_pairs() -> list[tuple[str, str]]:
    """(student, teacher) pairs: each student vs each of its teachers, plus vs ``ensemble`` for several teachers."""
    pairs = []
    for student, teachers in STUDENT_TEACHERS.items():
        pairs += [(student, t) for t in teachers]
        if len(teachers) > 1:
            pairs.append((student, ENSEMBLE))
    return pairs


def pair_label(student: str, teacher: str) -> str:
    """``Student → Teacher`` with the paper's display names."""
    t = "ensemble of teachers" if teacher == ENSEMBLE else DISPLAY_NAMES.get(teacher, teacher)
    return f"{DISPLAY_NAMES.get(student, student)} → {t}"


def load_pair(profile: str, student: str, teacher: str, task: str, seed: int, results: str | Path | None = None) -> tuple[Predictions, Predictions]:
    """Teacher (or ensemble) and student predictions of one task and seed, checked to be aligned."""
    res = Path(results) if results is not None else results_dir(profile)
    s_path = predictions_path(res, student, task, seed)
    student_preds = load_predictions(s_path)
    if teacher == ENSEMBLE:
        members = STUDENT_TEACHERS[student]
        paths = [predictions_path(res, t, task, seed) for t in members]
        teacher_preds = ensemble_predictions([load_predictions(p) for p in paths], [str(p) for p in paths])
        t_src = " + ".join(str(p) for p in paths)
    else:
        t_path = predictions_path(res, teacher, task, seed)
        teacher_preds = load_predictions(t_path)
        t_src = str(t_path)
    check_aligned(teacher_preds, student_preds, t_src, str(s_path))
    return teacher_preds, student_preds


def _missing_files(res: Path, tasks: Iterable[str], seeds: Iterable[int]) -> list[Path]:
    models = sorted({m for pair in loyalty_pairs() for m in (pair[0], *STUDENT_TEACHERS[pair[0]])})
    return [predictions_path(res, m, t, s) for m in models for t in tasks for s in seeds if not predictions_path(res, m, t, s).exists()]


@dataclass
class LoyaltyConfig:
    """What one loyalty computation covered (written beside ``loyalty.csv``)."""

    profile: str
    tasks: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    pairs: list[list[str]] = field(default_factory=list)


def loyalty_csv_path(profile: str) -> Path:
    return results_dir(profile) / "loyalty.csv"


def compute_loyalty(
    profile: str,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    write: bool = True,
    results: str | Path | None = None,
) -> pd.DataFrame:
    """Loyalty of every (student, teacher) pair on every task and seed of ``profile``.

    ``tasks`` / ``seeds`` default to the profile's ``evaluate`` section. All prediction files must exist:
    a missing one is an error listing every missing file (run the evaluation step), never a skipped row.
    With ``write`` the table is written atomically to ``results/<profile>/loyalty.csv`` and the resolved
    config to ``loyalty_config.json``. Returns the rows (``student,teacher,task,seed,metric,value``).
    """
    from rokd.config import save_config
    from rokd.profiles import load_profile

    prof = load_profile(profile)
    tasks = list(tasks) if tasks is not None else list(prof.evaluate.tasks)
    seeds = [int(s) for s in seeds] if seeds is not None else [int(s) for s in prof.evaluate.seeds]
    res = Path(results) if results is not None else results_dir(prof.name)
    missing = _missing_files(res, tasks, seeds)
    if missing:
        shown = "\n  ".join(str(p) for p in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise FileNotFoundError(
            f"{len(missing)} prediction file(s) missing for loyalty of profile {prof.name!r}:\n  {shown}{more}\n"
            f"run the evaluation step first: `rokd pipeline --profile {prof.name}`"
        )
    rows = []
    for student, teacher in loyalty_pairs():
        for task in tasks:
            for seed in seeds:
                t_preds, s_preds = load_pair(prof.name, student, teacher, task, seed, res)
                for metric, value in pair_loyalty(t_preds, s_preds).items():
                    rows.append({"student": student, "teacher": teacher, "task": task, "seed": seed, "metric": metric, "value": value})
    df = pd.DataFrame(rows, columns=list(LOYALTY_COLUMNS))
    if write:
        out = res / "loyalty.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        df.to_csv(tmp, index=False, float_format="%.10g")
        tmp.replace(out)  # never leave a half-written table
        cfg = LoyaltyConfig(prof.name, tasks, seeds, [list(p) for p in loyalty_pairs()])
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
        raise CorruptFileError(path, "loyalty table", f"expected columns {','.join(LOYALTY_COLUMNS)}, got "
                               f"{','.join(lines[0]) if lines else 'nothing'}; {fix}")
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(LOYALTY_COLUMNS) or not all(fields[:5]):
            raise CorruptFileError(path, "loyalty table", f"line {number} is incomplete ({','.join(fields)}); {fix}")
    df = pd.read_csv(path)
    if not pd.api.types.is_integer_dtype(df["seed"]) or not pd.api.types.is_numeric_dtype(df["value"]):
        raise CorruptFileError(path, "loyalty table", f"seed must be whole numbers and value numbers; {fix}")
    return df


# --- summaries for the chapter ----------------------------------------------------------------------


def paper_style_table(loyalty: pd.DataFrame) -> pd.DataFrame:
    """The paper's loyalty table: per pair, L-L and P-L averaged over the classification tasks, R-L on STS.

    Per seed the task average is taken first, then mean and standard deviation over seeds (percent).
    Columns: ``L-L``, ``L-L std``, ``P-L``, ``P-L std``, ``R-L``, ``R-L std``, ``seeds``, and the paper's
    values ``paper L-L`` / ``paper P-L`` / ``paper R-L`` where the paper reports that pair (else NaN).
    Indexed by (student, teacher) in :func:`loyalty_pairs` order.
    """
    from rokd.paper import PAPER_LOYALTY

    df = loyalty.copy()
    cls = df[df.task.isin(CLASSIFICATION_TASKS) & df.metric.isin(["label_loyalty", "prob_loyalty"])]
    reg = df[df.task.isin(REGRESSION_TASKS) & (df.metric == "regression_loyalty")]
    per_seed = pd.concat([
        cls.groupby(["student", "teacher", "seed", "metric"]).value.mean().reset_index(),
        reg.groupby(["student", "teacher", "seed", "metric"]).value.mean().reset_index(),
    ])
    per_seed["value"] *= 100
    rows = []
    paper = {(r["student"], r["teacher"]): r for r in PAPER_LOYALTY}
    for student, teacher in loyalty_pairs():
        sub = per_seed[(per_seed.student == student) & (per_seed.teacher == teacher)]
        if sub.empty:
            continue
        row = {"student": student, "teacher": teacher, "seeds": int(sub.seed.nunique())}
        for metric in METRICS:
            vals = sub[sub.metric == metric].value
            title = METRIC_TITLES[metric]
            row[title] = float(vals.mean()) if len(vals) else math.nan
            row[f"{title} std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            row[f"paper {title}"] = float(paper[(student, teacher)][metric]) if (student, teacher) in paper else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index(["student", "teacher"])


def format_paper_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`paper_style_table` as display strings: ``mean ± std`` (std only with several seeds), ``—`` for none."""
    def cell(mean: float, std: float) -> str:
        if math.isnan(mean):
            return "—"
        return f"{mean:.2f} ± {std:.2f}" if not math.isnan(std) else f"{mean:.2f}"

    out = pd.DataFrame(index=[pair_label(s, t) for s, t in table.index])
    out.index.name = "student → teacher"
    for title in METRIC_TITLES.values():
        out[f"{title} (ours)"] = [cell(m, s) for m, s in zip(table[title], table[f"{title} std"])]
        out[f"{title} (paper)"] = [cell(p, math.nan) for p in table[f"paper {title}"]]
    out["seeds"] = table["seeds"].to_numpy()
    return out


def loyalty_matrix(loyalty: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Pairs x tasks table of one metric in percent, averaged over seeds (for heatmaps)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    sub = loyalty[loyalty.metric == metric]
    m = sub.groupby(["student", "teacher", "task"]).value.mean().mul(100).unstack("task")
    order = [p for p in loyalty_pairs() if p in m.index]
    tasks = [t for t in (*CLASSIFICATION_TASKS, *REGRESSION_TASKS) if t in m.columns]
    m = m.loc[order, tasks]
    m.index = [pair_label(s, t) for s, t in m.index]
    return m


def agreement_matrix(teacher: Predictions, student: Predictions, top_k: int | None = None, normalize: bool = True) -> pd.DataFrame:
    """Teacher labels (rows) x student labels (columns) on the same rows: where do they agree and differ?

    With ``top_k``, only the ``top_k`` labels the teacher predicts most often are kept; the rest are
    pooled into ``(other)`` so no row is dropped. With ``normalize`` each row sums to 1 (share of the
    teacher's label that the student predicts as each label).
    """
    from sklearn.metrics import confusion_matrix

    check_aligned(teacher, student)
    if teacher.is_regression:
        raise ValueError("agreement_matrix is for classification tasks; use the STS scatter for regression")
    names = list(teacher.label_names or range(teacher.probs.shape[1]))
    t, s = np.asarray(teacher.pred), np.asarray(student.pred)
    if top_k is not None and top_k < len(names):
        counts = np.bincount(t, minlength=len(names))
        keep = [int(i) for i in np.argsort(-counts, kind="stable")[:top_k]]
        other = len(keep)
        remap = np.full(len(names), other)
        remap[keep] = np.arange(len(keep))
        t, s = remap[t], remap[s]
        names = [names[i] for i in keep] + ["(other)"]
    labels = list(range(len(names)))
    cm = confusion_matrix(t, s, labels=labels).astype(np.float64)
    if normalize:
        sums = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)
    used = (cm.sum(axis=1) > 0) | (cm.sum(axis=0) > 0)  # drop labels neither model ever predicts
    names = [str(n) for n in names]
    frame = pd.DataFrame(cm, index=names, columns=names).loc[used, used]
    frame.index.name, frame.columns.name = "teacher label", "student label"
    return frame


def loyalty_vs_score(loyalty: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Each pair's loyalty (L-L, or R-L on STS) beside the student's and teacher's headline task score.

    ``scores`` has the columns of ``scores.csv`` (``model,task,metric,seed,value``). Ensemble rows get
    the mean score of the ensemble's members as teacher score. Values in percent; one row per
    (student, teacher, task, seed).
    """
    from rokd.paper import HEADLINE_METRIC

    missing = {"model", "task", "metric", "seed", "value"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores table lacks the columns {sorted(missing)} (expected those of scores.csv: "
                         "model,task,metric,seed,value); run the evaluation step first")
    head = scores[scores.apply(lambda r: HEADLINE_METRIC.get(r["task"]) == r["metric"], axis=1)]
    score = head.set_index(["model", "task", "seed"]).value.mul(100)
    rows = []
    for r in loyalty.itertuples(index=False):
        wanted = "regression_loyalty" if r.task in REGRESSION_TASKS else "label_loyalty"
        if r.metric != wanted:
            continue
        members = STUDENT_TEACHERS.get(r.student, ()) if r.teacher == ENSEMBLE else (r.teacher,)
        t_scores = [score.get((m, r.task, r.seed), math.nan) for m in members]
        rows.append({
            "student": r.student, "teacher": r.teacher, "pair": pair_label(r.student, r.teacher), "task": r.task,
            "seed": r.seed, "loyalty_metric": METRIC_TITLES[wanted], "loyalty": 100 * r.value,
            "student_score": score.get((r.student, r.task, r.seed), math.nan),
            "teacher_score": float(np.mean(t_scores)) if t_scores else math.nan,
        })
    out = pd.DataFrame(rows)
    if not out.empty:
        out["score_gap"] = out.student_score - out.teacher_score
    return out


def loyalty_score_correlation(vs: pd.DataFrame) -> pd.DataFrame:
    """Per task, Spearman's rho between loyalty and the student's score over the rows of :func:`loyalty_vs_score`.

    Positive rho: the more loyal pairs also have the better-scoring students. NaN where fewer than three
    points, or where either column is constant (no ranking to correlate).
    """
    from scipy.stats import spearmanr

    rows = []
    for task, g in vs.groupby("task", sort=False):
        g = g.dropna(subset=["loyalty", "student_score"])
        ok = len(g) >= 3 and g.loyalty.nunique() > 1 and g.student_score.nunique() > 1
        rho = float(spearmanr(g.loyalty, g.student_score)[0]) if ok else math.nan
        rows.append({"task": task, "loyalty_metric": g.loyalty_metric.iloc[0] if len(g) else "", "points": len(g), "spearman_rho": rho})
    return pd.DataFrame(rows, columns=["task", "loyalty_metric", "points", "spearman_rho"])


def loyalty_findings(table: pd.DataFrame) -> pd.DataFrame:
    """The orderings the paper's loyalty table shows, checked on ours (``table``: :func:`paper_style_table`).

    Columns ``claim, paper, ours, verdict``. A claim compares two pairs' means; it "holds" when ours are
    in the same order, and the ``ours`` column gives the seeds' standard deviations so that an order
    inside the noise can be seen as such.
    """
    multi, single = "distilmulti-bert-base-ro", "distil-bert-base-ro"
    cased, uncased = "bert-base-ro", "robert-base"
    checks = [
        (f"{DISPLAY_NAMES[multi]} is more loyal to {DISPLAY_NAMES[cased]} than to {DISPLAY_NAMES[uncased]}",
         (multi, cased), (multi, uncased), ("L-L", "P-L", "R-L")),
        (f"{DISPLAY_NAMES[single]} is more loyal to {DISPLAY_NAMES[cased]} than {DISPLAY_NAMES[multi]} is",
         (single, cased), (multi, cased), ("L-L",)),
    ]
    rows = []
    for claim, a, b, measures in checks:
        if a not in table.index or b not in table.index:
            continue
        for m in measures:
            pa, pb = table.loc[a, f"paper {m}"], table.loc[b, f"paper {m}"]
            oa, ob = table.loc[a, m], table.loc[b, m]
            sa, sb = table.loc[a, f"{m} std"], table.loc[b, f"{m} std"]
            std = "" if math.isnan(sa) or math.isnan(sb) else f" (std {sa:.2f} / {sb:.2f})"
            rows.append({"claim": f"{claim} ({m})", "paper": f"{pa:.2f} vs {pb:.2f}", "ours": f"{oa:.2f} vs {ob:.2f}{std}",
                         "verdict": "n/a" if math.isnan(oa) or math.isnan(ob) else ("holds" if oa > ob else "does not hold")})
    return pd.DataFrame(rows)
