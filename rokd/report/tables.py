"""The results chapter's tables, computed from ``results/<profile>/scores.csv``.

- :func:`results_table`: the paper-style table (rows: baselines, the five models in the paper's order,
  controls; columns UPOS XPOS NER SAPN SAR DI STS), mean ± std over seeds of the headline metric, x100.
- :func:`side_by_side`: ours beside the paper's published numbers (``rokd.paper.PAPER_SCORES``).
- :func:`teacher_gains`: each teacher against ``control-random-init`` per task (what pretraining gave),
  with the verdict of :mod:`rokd.stats`; the gate of every finding about distillation.
- :func:`retention_table`: each student's score as a ratio of its teacher's, and as retained gain
  ``(student - control) / (teacher - control)`` where the teacher's gain is beyond its noise.
- :func:`ablation_table`: DistilMulti minus Distil-BERT-base-ro per task (what the second teacher adds).

Scores are in points (x100) everywhere in this module. The headline metric of each task is
:func:`rokd.tasks.metrics.headline_metric`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rokd import stats
from rokd.models.registry import (
    BASELINES,
    CONTROL_TEACHER,
    CONTROLS,
    DISPLAY_NAMES,
    MODEL_KEYS,
    STUDENT_TEACHERS,
    pooled_runs,
)
from rokd.paper import COLUMN_TITLES, PAPER_SCORES, TASK_COLUMNS, paper_score, paper_text
from rokd.paths import results_dir
from rokd.spec import (
    INIT_ONLY_CONTROL,
    LEXICAL_BASELINE,
    MAJORITY_BASELINE,
    MULTI_STUDENT,
    RANDOM_INIT_CONTROL,
    SINGLE_STUDENT,
)
from rokd.tasks.metrics import headline_metric
from rokd.tasks.scores import read_scores, scores_path

# (student, teacher) pairs whose retention is reported: each student vs each of its teachers.
RETENTION_PAIRS = tuple((s, t) for s, ts in STUDENT_TEACHERS.items() for t in ts)
# Rows of the main table, in order: what a trivial method reaches, the paper's models, the controls.
TABLE_KEYS = BASELINES + MODEL_KEYS + CONTROLS
RANDOM_INIT, INIT_ONLY = RANDOM_INIT_CONTROL, INIT_ONLY_CONTROL
LEXICAL, MAJORITY = LEXICAL_BASELINE, MAJORITY_BASELINE
# Students initialised from the cased teacher's layers: control-init-only is their "no distillation" control.
INIT_FROM_CONTROL_TEACHER = tuple(s for s, ts in STUDENT_TEACHERS.items() if ts[0] == CONTROL_TEACHER)
NO_GAIN = "teacher gained nothing measurable"


def _results(profile: str, results: str | Path | None) -> Path:
    return Path(results) if results is not None else results_dir(profile)


def display(key: str) -> str:
    return DISPLAY_NAMES.get(key, key)


def load_scores(profile: str = "smoke", results: str | Path | None = None, pool_replicas: bool = True) -> pd.DataFrame:
    """``scores.csv`` as a DataFrame (``model, task, metric, seed, value``); a clear error if missing.

    With ``pool_replicas`` the runs of ``<student>@d<k>`` (the k-th distillation seed) count as runs of
    ``<student>``, numbered :func:`rokd.stats.run_number` (``1000 * (k - 1) + seed``): a student's mean and its
    standard error then include the variance of distillation (clustered by distillation, :mod:`rokd.stats`),
    and two students with the same replicas stay paired run by run
    (distillation k, fine-tuning seed s) while a comparison with a teacher (seeds s only) is unpaired.
    """
    path = scores_path(_results(profile, results))
    rows = read_scores(path)
    if not rows:
        raise FileNotFoundError(
            f"no scores in {path}: run the evaluation first (`rokd evaluate --profile {profile} --model KEY --task T` "
            f"or the 03_evaluate notebook for each model)"
        )
    df = pd.DataFrame(rows, columns=["model", "task", "metric", "seed", "value"])
    if pool_replicas:
        df["model"], df["seed"] = pooled_runs(df["model"], df["seed"])
    return df


def headline_note() -> str:
    """Markdown: the headline metric of every task, and why UPOS / XPOS use the one they use."""
    names = ", ".join(f"{COLUMN_TITLES[t]} {headline_metric(t)}" for t in TASK_COLUMNS)
    tagging = {headline_metric("upos"), headline_metric("xpos")}
    why = (
        "The paper does not say which metric its UPOS and XPOS columns report; its 98.00 and 96.46 are "
        "accuracy-level numbers (macro-F1 over hundreds of mostly rare morphological tags cannot reach them)"
    )
    if tagging == {"accuracy"}:
        why += ", so token accuracy is our headline there, and macro-F1 stays beside it in `scores.csv`."
    else:
        why += (
            f"; here they are scored by {', '.join(sorted(tagging))}, with the other metric beside it in `scores.csv`."
        )
    return f"Headline metrics: {names}. {why}"


def _headline(task: str) -> str | None:
    try:
        return headline_metric(task)
    except ValueError:
        return None


def headline_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Only the rows of each task's headline metric (:func:`rokd.tasks.metrics.headline_metric`)."""
    keep = scores["metric"] == scores["task"].map(_headline)
    return scores[keep].copy()


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Headline metric per model x task, in percent: ``mean``, ``std`` (sample std over seeds; NaN for 1 seed),
    ``n``."""
    h = headline_scores(scores)
    g = h.groupby(["model", "task"])["value"]
    return pd.DataFrame({"mean": g.mean() * 100, "std": g.std(ddof=1) * 100, "n": g.count()}).reset_index()


def per_seed(scores: pd.DataFrame, model: str, task: str) -> dict[int, float]:
    """``{seed: headline score in points}`` of one model on one task (empty when it was not run)."""
    h = headline_scores(scores)
    sub = h[(h["model"] == model) & (h["task"] == task)]
    return {int(s): 100 * float(v) for s, v in zip(sub["seed"], sub["value"])}


def missing_references(scores: pd.DataFrame) -> list[str]:
    """Baselines and controls with no score at all in this results folder (e.g. a run made before they existed)."""
    have = set(scores["model"])
    return [k for k in BASELINES + CONTROLS if k not in have]


def _order_models(models) -> list[str]:
    known = [m for m in TABLE_KEYS if m in set(models)]
    return known + sorted(set(models) - set(TABLE_KEYS))


def _fmt(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if n is None or n < 2 or std is None or math.isnan(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"


def results_table(scores: pd.DataFrame, all_models: bool = True) -> pd.DataFrame:
    """The paper-style table: 'mean ± std' strings (x100), rows by display name, columns UPOS..STS.

    Rows: the baselines, the five models, the controls (with ``all_models``, every one of them, 'not run'
    where this results folder has none of its scores), then any other model key found. One seed shows
    the single value without ± . A cell with no score reads 'n/a'.
    """
    s = summary(scores)
    present = set(s["model"])
    models = list(TABLE_KEYS) if all_models else _order_models(present)
    models += [m for m in _order_models(present) if m not in models]
    table = {}
    for m in models:
        row = {}
        for t in TASK_COLUMNS:
            cell = s[(s["model"] == m) & (s["task"] == t)]
            row[COLUMN_TITLES[t]] = (
                _fmt(*cell[["mean", "std", "n"]].iloc[0]) if len(cell) else ("n/a" if m in present else "not run")
            )
        table[display(m)] = row
    return pd.DataFrame.from_dict(table, orient="index")


def paper_table() -> pd.DataFrame:
    """The paper's own table (percent), same layout."""
    return pd.DataFrame.from_dict(
        {
            DISPLAY_NAMES[m]: {COLUMN_TITLES[t]: paper_score(m, t) for t in TASK_COLUMNS}
            for m in MODEL_KEYS
            if m in PAPER_SCORES
        },
        orient="index",
    )


def side_by_side(scores: pd.DataFrame) -> pd.DataFrame:
    """Ours (mean ± std) and the paper's number for every row x task, as two sub-columns per task.

    Baselines and controls have no published number ('—')."""
    ours = results_table(scores)
    paper = paper_table().map(lambda v: f"{v:.2f}")
    cols = {}
    for t in TASK_COLUMNS:
        title = COLUMN_TITLES[t]
        cols[(title, "ours")] = ours[title]
        cols[(title, "paper")] = paper[title].reindex(ours.index).fillna("—")
    return pd.DataFrame(cols)


def _means(scores: pd.DataFrame) -> dict[tuple[str, str], float]:
    s = summary(scores)
    return {(r.model, r.task): r.mean for r in s.itertuples()}


# ------------------------------------------------------------------------- what pretraining gave
def teacher_gains(scores: pd.DataFrame, teachers=None) -> pd.DataFrame:
    """Each teacher against ``control-random-init`` per task: the gate of every finding about distillation.

    Columns: ``teacher, task, teacher_score, control_score, diff, se, test, verdict, reason`` (points). The
    claim is "the teacher beats the randomly initialised control" (kind ``greater``, no minimum effect),
    judged by :mod:`rokd.stats`. Without control scores the verdict is ``inconclusive`` with that reason.
    """
    rows = []
    for teacher in teachers or sorted({ts for pair in STUDENT_TEACHERS.values() for ts in pair}, key=MODEL_KEYS.index):
        for task in TASK_COLUMNS:
            a, b = per_seed(scores, teacher, task), per_seed(scores, RANDOM_INIT, task)
            if not b:
                d = stats.Difference(math.nan, math.nan, len(a), 0, "no control-random-init")
                v, why = stats.INCONCLUSIVE, f"no {RANDOM_INIT} scores in this results folder"
            elif not a:
                d = stats.Difference(math.nan, math.nan, 0, len(b), "no teacher scores")
                v, why = stats.INCONCLUSIVE, f"no {teacher} scores in this results folder"
            else:
                d, v, why = stats.compare(a, b, "greater")
            rows.append(
                {
                    "teacher": teacher,
                    "task": task,
                    "teacher_score": float(np.mean(list(a.values()))) if a else math.nan,
                    "control_score": float(np.mean(list(b.values()))) if b else math.nan,
                    "diff": d.diff,
                    "se": d.se,
                    "test": d.test,
                    "verdict": v,
                    "reason": why,
                }
            )
    return pd.DataFrame(rows)


def gains_view(gains: pd.DataFrame) -> pd.DataFrame:
    """:func:`teacher_gains` as read: display names, column titles, ``± 2 SE`` for ``se`` (points, 2 decimals)."""
    view = gains.assign(
        teacher=gains["teacher"].map(display),
        task=gains["task"].map(COLUMN_TITLES),
        **{"± 2 SE": 2 * gains["se"]},
    )
    return view.drop(columns=["se"]).set_index(["teacher", "task"]).round(2)


def gate(gains: pd.DataFrame, teachers, task: str) -> tuple[bool, str]:
    """Whether distillation can be tested on ``task`` for a student of ``teachers``: each must beat the control."""
    for t in teachers:
        row = gains[(gains["teacher"] == t) & (gains["task"] == task)]
        if row.empty or row["verdict"].iloc[0] != stats.HOLDS:
            why = row["reason"].iloc[0] if len(row) else "not measured"
            if why.startswith(f"no {RANDOM_INIT}"):
                return False, f"{why}: the teachers' gain cannot be measured, so distillation cannot be tested"
            return False, (
                f"{display(t)} does not beat {display(RANDOM_INIT)} on {COLUMN_TITLES.get(task, task)} "
                f"({why}): this scale cannot test distillation there"
            )
    return True, ""


def acceptance(
    scores: pd.DataFrame, gains: pd.DataFrame | None = None, min_tasks: int = 5, tagging=("upos", "xpos")
) -> pd.DataFrame:
    """The bar a run must pass before its distillation findings mean anything (issue "a miniature reproduction
    strong enough to test the paper"): each teacher beats ``control-random-init`` (verdict ``holds`` of
    :func:`teacher_gains`) on at least ``min_tasks`` of the seven metrics, and the best model beats
    ``baseline-lexical`` on the tagging tasks, by the same rule. Columns ``check, measured, required, passed``."""
    gains = teacher_gains(scores) if gains is None else gains
    rows = []
    for teacher, g in gains.groupby("teacher", sort=False):
        won = [COLUMN_TITLES[t] for t, v in zip(g["task"], g["verdict"]) if v == stats.HOLDS]
        rows.append(
            {
                "check": f"{display(teacher)} beats {display(RANDOM_INIT)} by > 2 SE",
                "measured": f"{len(won)} of {len(g)}" + (f" ({', '.join(won)})" if won else ""),
                "required": f"≥ {min_tasks} of {len(TASK_COLUMNS)}",
                "passed": len(won) >= min_tasks,
            }
        )
    models = [m for m in MODEL_KEYS if m in set(scores["model"])]
    means = _means(scores)
    for task in tagging:
        best = max(models, key=lambda m: means.get((m, task), -math.inf), default=None)
        if best is None or (best, task) not in means:
            rows.append(
                {
                    "check": f"best model beats {display(LEXICAL)} on {COLUMN_TITLES[task]}",
                    "measured": "no scores",
                    "required": "holds",
                    "passed": False,
                }
            )
            continue
        d, v, why = stats.compare(per_seed(scores, best, task), per_seed(scores, LEXICAL, task), "greater")
        rows.append(
            {
                "check": f"best model ({display(best)}) beats {display(LEXICAL)} on {COLUMN_TITLES[task]}",
                "measured": f"{v}: {why}",
                "required": "holds",
                "passed": v == stats.HOLDS,
            }
        )
    return pd.DataFrame(rows, columns=["check", "measured", "required", "passed"])


# ------------------------------------------------------------------------------------- retention
def retention_table(scores: pd.DataFrame, gains: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (student, teacher, task): the ratio student/teacher and the retained gain, ours and the paper's ratio.

    - ``ratio``: 100 x student / teacher (NaN where the teacher's score is not positive);
    - ``retained_gain``: 100 x (student − control) / (teacher − control), with ``control`` =
      ``control-random-init``, only where the teacher beats the control by the rule of :mod:`rokd.stats`
      (``gain_note`` says why it is missing elsewhere: no control, or "teacher gained nothing measurable");
    - ``paper``: the paper's ratio. No mean over tasks: a ratio is read task by task.
    """
    gains = teacher_gains(scores) if gains is None else gains
    means = _means(scores)
    rows = []
    for student, teacher in RETENTION_PAIRS:
        for t in TASK_COLUMNS:
            s_, t_, c_ = means.get((student, t)), means.get((teacher, t)), means.get((RANDOM_INIT, t))
            # A ratio to a teacher score <= 0 (e.g. a negative STS correlation) means nothing: left NaN.
            ratio = 100 * s_ / t_ if s_ is not None and t_ is not None and t_ > 0 else math.nan
            g = gains[(gains["teacher"] == teacher) & (gains["task"] == t)]
            if c_ is None:
                gained, note = math.nan, f"no {RANDOM_INIT}"
            elif g.empty or g["verdict"].iloc[0] != stats.HOLDS or s_ is None:
                gained, note = math.nan, NO_GAIN
            else:
                gained, note = 100 * (s_ - c_) / (t_ - c_), ""
            rows.append(
                {
                    "student": student,
                    "teacher": teacher,
                    "task": t,
                    "ratio": ratio,
                    "retained_gain": gained,
                    "gain_note": note,
                    "paper": 100 * paper_score(student, t) / paper_score(teacher, t),
                }
            )
    return pd.DataFrame(rows)


def retention_wide(scores: pd.DataFrame, gains: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`retention_table` as a readable table: one row per pair and measure, one column per task.

    Cells: 'ratio % (paper's ratio %)' on the ratio row; the retained gain % or why it is missing on the
    retained-gain row.
    """
    r = retention_table(scores, gains)
    out = {}
    for (student, teacher), g in r.groupby(["student", "teacher"], sort=False):
        label = f"{display(student)} / {display(teacher)}"
        out[(label, "ratio")] = {
            COLUMN_TITLES[row.task]: ("n/a" if math.isnan(row.ratio) else f"{row.ratio:.1f}")
            + f" ({paper_text(row.paper)})"
            for row in g.itertuples()
        }
        out[(label, "retained gain")] = {
            COLUMN_TITLES[row.task]: (row.gain_note or f"{row.retained_gain:.0f}") for row in g.itertuples()
        }
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["student / teacher", "measure"])
    return frame


def ablation_table(scores: pd.DataFrame) -> pd.DataFrame:
    """DistilMulti-BERT-base-ro minus Distil-BERT-base-ro per task (points): ours with its SE, and the paper's."""
    multi, single = MULTI_STUDENT, SINGLE_STUDENT
    rows = {}
    for t in TASK_COLUMNS:
        d = stats.difference(per_seed(scores, multi, t), per_seed(scores, single, t))
        rows[COLUMN_TITLES[t]] = {"ours": d.diff, "se": d.se, "paper": paper_score(multi, t) - paper_score(single, t)}
    return pd.DataFrame(rows).T


# ------------------------------------------------------------------------------------- baselines
def baseline_comparison(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task: the best model's mean headline score against each baseline, and how many models are below.

    Columns: ``task, best_model, best, <baseline> ..., models_below_<baseline> ...`` (points); a baseline
    absent from this results folder has NaN. "Models" are the five models and the controls.
    """
    means = _means(scores)
    rows = []
    fitted = [m for m in MODEL_KEYS + CONTROLS]
    for t in TASK_COLUMNS:
        have = {m: means[(m, t)] for m in fitted if (m, t) in means and not math.isnan(means[(m, t)])}
        best = max(have, key=have.get) if have else None
        row = {
            "task": COLUMN_TITLES[t],
            "best_model": display(best) if best else "n/a",
            "best": have.get(best, math.nan) if best else math.nan,
            "models": len(have),
        }
        for b in BASELINES:
            v = means.get((b, t), math.nan)
            row[b] = v
            row[f"below_{b}"] = sum(x < v for x in have.values()) if not math.isnan(v) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def baseline_sentence(scores: pd.DataFrame) -> str:
    """Plain words on the models against the baselines (empty when this folder has no baseline scores)."""
    comp = baseline_comparison(scores).to_dict("records")
    parts = []
    for b in BASELINES:
        rows = [r for r in comp if not math.isnan(r[b])]
        if not rows:
            continue
        beat = [r["task"] for r in rows if not math.isnan(r["best"]) and r["best"] > r[b]]
        all_below = [r["task"] for r in rows if r["models"] and r[f"below_{b}"] == r["models"]]
        text = f"the best model beats **{display(b)}** on {len(beat)} of {len(rows)} tasks"
        text += f" ({', '.join(beat)})" if beat else ""
        text += f"; every model scores below it on {', '.join(all_below)}" if all_below else ""
        parts.append(text)
    return ("; ".join(parts) + ".") if parts else ""


# ------------------------------------------------------------------------------------- seed noise
def seed_spread(scores: pd.DataFrame) -> pd.DataFrame:
    """Per model: median and largest standard deviation over seeds across the tasks (points x100)."""
    s = summary(scores).dropna(subset=["std"])
    rows = []
    for model in _order_models(s["model"].unique()):
        g = s[s.model == model]
        worst = g.loc[g["std"].idxmax()]
        rows.append(
            {
                "model": display(model),
                "median std": g["std"].median(),
                "largest std": worst["std"],
                "on task": COLUMN_TITLES.get(worst.task, worst.task),
                "seeds": int(g["n"].min()),
            }
        )
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def low_score_tasks(scores: pd.DataFrame, below: float = 30.0) -> list[str]:
    """Task columns where even the best model's mean headline score is under ``below`` points."""
    s = summary(scores)
    s = s[s["model"].isin(MODEL_KEYS)]
    best = s.groupby("task")["mean"].max()
    return [COLUMN_TITLES[t] for t in TASK_COLUMNS if t in best and best[t] < below]
