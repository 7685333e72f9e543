"""Loyalty measures: how closely a student *behaves like* its teacher, not only how well it scores.

Three measures (Xu et al., 2021, for the first two; Avram et al., 2022, for the third), pure functions
of aligned prediction arrays:

- **label loyalty** (L-L): the share of rows (examples, or words for the tagging tasks) on which the
  student predicts the same label as the teacher;
- **probability loyalty** (P-L): the mean over rows of ``1 - JSD(p_teacher, p_student)``, where ``JSD``
  is the Jensen-Shannon *distance* (square root of the divergence) with log base 2, so it lies in [0, 1];
- **regression loyalty** (R-L): Pearson's correlation between teacher and student outputs (STS).

Beside L-L, two references that need no distillation at all: the **chance agreement** of two models
that label independently with their own label frequencies, and the **accuracy floor**
``max(0, acc_s + acc_t - 1)``: two models that are both right on a row agree on it, so they agree on at
least that share of rows whatever they learned from each other.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rokd.tasks.metrics import CLASSIFICATION_TASKS, REGRESSION_TASKS, TAGGING_TASKS  # noqa: F401 (REGRESSION_TASKS: re-exported)
from rokd.tasks.predictions import Predictions

ENSEMBLE = "ensemble"  # the teacher name of a multi-teacher student's averaged teachers
# Tasks with labels, whose L-L and P-L the paper averages into one number (tagging + classification).
LABEL_TASKS = TAGGING_TASKS + CLASSIFICATION_TASKS
METRICS = ("label_loyalty", "prob_loyalty", "regression_loyalty")
METRIC_TITLES = {"label_loyalty": "L-L", "prob_loyalty": "P-L", "regression_loyalty": "R-L"}
# References beside L-L (same rows of loyalty.csv): no distillation needed to reach them.
REFERENCES = ("label_chance", "label_floor")
REFERENCE_TITLES = {"label_chance": "chance", "label_floor": "floor"}


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


def chance_agreement(teacher_pred: Sequence[int], student_pred: Sequence[int]) -> float:
    """Agreement of two independent labellers with these label frequencies: ``sum_c f_t(c) * f_s(c)``."""
    t = np.asarray(teacher_pred, dtype=np.int64)
    s = np.asarray(student_pred, dtype=np.int64)
    if t.shape != s.shape or t.ndim != 1 or t.size == 0:
        raise ValueError(
            f"chance_agreement takes two non-empty 1-D label arrays of equal length, got {t.shape}, {s.shape}"
        )
    n = int(max(t.max(), s.max())) + 1
    return float(np.dot(np.bincount(t, minlength=n), np.bincount(s, minlength=n)) / t.size**2)


def agreement_floor(gold: Sequence[int], teacher_pred: Sequence[int], student_pred: Sequence[int]) -> float:
    """``max(0, acc_s + acc_t - 1)``: the share of rows on which both are right, at least, hence agree."""
    g = np.asarray(gold)
    t = np.asarray(teacher_pred)
    s = np.asarray(student_pred)
    if not (g.shape == t.shape == s.shape) or g.size == 0:
        raise ValueError(
            f"agreement_floor takes three non-empty label arrays of equal length, got {g.shape}, {t.shape}, {s.shape}"
        )
    return max(0.0, float(np.mean(t == g) + np.mean(s == g) - 1.0))


# --- aligning two prediction files -----------------------------------------------------------------


def check_aligned(
    teacher: Predictions, student: Predictions, teacher_src: str = "teacher", student_src: str = "student"
) -> None:
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


def pair_loyalty(
    teacher: Predictions, student: Predictions, teacher_src: str = "teacher", student_src: str = "student"
) -> dict[str, float]:
    """The loyalty measures of one aligned pair: L-L and P-L with their references (classification) or R-L."""
    check_aligned(teacher, student, teacher_src, student_src)
    if teacher.is_regression:
        return {"regression_loyalty": regression_loyalty(teacher.pred, student.pred)}
    return {
        "label_loyalty": label_loyalty(teacher.pred, student.pred),
        "prob_loyalty": probability_loyalty(teacher.probs, student.probs),
        "label_chance": chance_agreement(teacher.pred, student.pred),
        "label_floor": agreement_floor(teacher.gold, teacher.pred, student.pred),
    }


def agreement_matrix(
    teacher: Predictions, student: Predictions, top_k: int | None = None, normalize: bool = True
) -> pd.DataFrame:
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
