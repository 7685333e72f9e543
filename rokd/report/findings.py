"""The paper's claims (and the controls' questions), each checked on this run, task by task.

Every claim has a stable id (:class:`Claim`); :func:`findings` gives one row per claim x subject x task
with the difference, its standard error from the seeds and a verdict from the rule of :mod:`rokd.stats`
(``holds`` / ``does not hold`` / ``inconclusive``). A claim about distillation is tested on a task only
where the student's teacher(s) beat ``control-random-init`` on it (:func:`rokd.report.tables.gate`);
elsewhere its verdict is ``inconclusive`` with that reason. :func:`discussion` writes the chapter's
reading of the verdicts, keyed on the claim ids (never on their wording).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from rokd import stats
from rokd.models.registry import CONTROL_TEACHER, CONTROLS, MODEL_KEYS, STUDENT_TEACHERS
from rokd.paper import COLUMN_TITLES, PAPER_PARAMS_M, TASK_COLUMNS, paper_score, paper_text
from rokd.report.tables import (
    INIT_FROM_CONTROL_TEACHER,
    INIT_ONLY,
    LEXICAL,
    RANDOM_INIT,
    RETENTION_PAIRS,
    baseline_comparison,
    display,
    gate,
    low_score_tasks,
    per_seed,
    teacher_gains,
)
from rokd.spec import MULTI_STUDENT, SINGLE_STUDENT
from rokd.stats import Claim

# Reasons of the rows a claim could not be tested on (gated, or a reference missing from the folder).
UNTESTABLE = "cannot test|cannot be tested|scores in this results folder"
MULTI, SINGLE = MULTI_STUDENT, SINGLE_STUDENT
RETENTION_SHARE = 0.97  # the paper's students keep 97-101 % of their teachers' scores on every task
SECOND_TEACHER_MARGIN = 1.0  # points; the paper's DistilMulti - Distil-BERT-base-ro lies in [-0.74, +0.10]


def _paper_retention() -> str:
    r = [100 * paper_score(s, t) / paper_score(te, t) for s, te in RETENTION_PAIRS for t in TASK_COLUMNS]
    return f"{min(r):.1f}–{max(r):.1f} % per task"


def _paper_second_teacher() -> str:
    d = [paper_score(MULTI, t) - paper_score(SINGLE, t) for t in TASK_COLUMNS]
    return f"{min(d):+.2f} to {max(d):+.2f} points per task"


CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "teacher-beats-random-init",
            "the teacher beats control-random-init (pretraining gave it something)",
            paper="not reported (full-size pretrained BERTs)",
            difference=f"teacher − {RANDOM_INIT}",
        ),
        Claim(
            "model-beats-lexical-baseline",
            "the model beats baseline-lexical",
            paper="not reported",
            difference=f"model − {LEXICAL}",
        ),
        Claim(
            "student-keeps-97pc",
            f"the student keeps at least {100 * RETENTION_SHARE:.0f} % of its teacher's score",
            paper=_paper_retention(),
            distillation=True,
            difference=f"student − {RETENTION_SHARE:g} × teacher (positive: the student keeps more than the threshold)",
        ),
        Claim(
            "distillation-beats-init-only",
            "the distilled student beats control-init-only (distillation added something beyond initialisation)",
            paper="not reported",
            distillation=True,
            difference=f"student − {INIT_ONLY}",
        ),
        Claim(
            "second-teacher-changes-little",
            f"DistilMulti-BERT-base-ro is within ±{SECOND_TEACHER_MARGIN:g} point of Distil-BERT-base-ro",
            kind="equivalent",
            margin=SECOND_TEACHER_MARGIN,
            paper=_paper_second_teacher(),
            distillation=True,
            difference=f"{display(MULTI)} − {display(SINGLE)}",
        ),
        Claim("students-smaller", "students are 30–40 % smaller than their teachers", kind="measured"),
        Claim(
            "students-faster",
            "students are at least 1.6x as fast as their teachers",
            kind="measured",
            paper="about 2x (GPU)",
        ),
    )
}

COLUMNS = ["id", "claim", "subject", "task", "ours", "paper", "diff", "se", "test", "verdict", "reason"]


def _mean(values: dict[int, float]) -> float:
    return sum(values.values()) / len(values) if values else math.nan


def _seeded_row(
    claim: Claim,
    subject: str,
    task: str,
    a: dict,
    b: dict,
    ours: str,
    paper: str = "",
    gated: tuple[bool, str] = (True, ""),
    missing: str = "",
) -> dict:
    d = stats.difference(a, b)
    if claim.distillation and not gated[0]:  # the gate first: without a teacher gain nothing else matters
        v, why = stats.INCONCLUSIVE, gated[1]
    elif missing:
        v, why = stats.INCONCLUSIVE, missing
    else:
        v, why = stats.verdict(d, claim.kind, claim.margin)
    return {
        "id": claim.id,
        "claim": claim.text,
        "subject": subject,
        "task": COLUMN_TITLES[task],
        "ours": ours,
        "paper": paper or claim.paper,
        "diff": d.diff,
        "se": d.se,
        "test": d.test,
        "verdict": v,
        "reason": why,
    }


def _vs(a: dict, b: dict) -> str:
    fa, fb = _mean(a), _mean(b)
    return ("n/a" if math.isnan(fa) else f"{fa:.2f}") + " vs " + ("n/a" if math.isnan(fb) else f"{fb:.2f}")


def seeded_findings(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows of every seed-based claim (see :data:`CLAIMS`) on every subject and task."""
    gains = teacher_gains(scores)
    rows = []
    c = CLAIMS["teacher-beats-random-init"]
    for g in gains.itertuples():
        a, b = per_seed(scores, g.teacher, g.task), per_seed(scores, RANDOM_INIT, g.task)
        miss = "" if b else f"no {RANDOM_INIT} scores in this results folder"
        subject = f"{display(g.teacher)} vs {display(RANDOM_INIT)}"
        rows.append(_seeded_row(c, subject, g.task, a, b, _vs(a, b), missing=miss))
    c = CLAIMS["model-beats-lexical-baseline"]
    have = set(scores["model"])
    for model in [m for m in MODEL_KEYS + CONTROLS if m in have]:
        for t in TASK_COLUMNS:
            a, b = per_seed(scores, model, t), per_seed(scores, LEXICAL, t)
            miss = "" if b else f"no {LEXICAL} scores in this results folder"
            rows.append(_seeded_row(c, f"{display(model)} vs {display(LEXICAL)}", t, a, b, _vs(a, b), missing=miss))
    c = CLAIMS["student-keeps-97pc"]
    for student, teacher in RETENTION_PAIRS:
        for t in TASK_COLUMNS:
            a, b = per_seed(scores, student, t), per_seed(scores, teacher, t)
            share = {s: RETENTION_SHARE * v for s, v in b.items()}
            ratio = 100 * _mean(a) / _mean(b) if a and b and _mean(b) > 0 else math.nan
            ours = "n/a" if math.isnan(ratio) else f"{ratio:.1f} %"
            paper = paper_text(100 * paper_score(student, t) / paper_score(teacher, t), suffix=" %")
            rows.append(
                _seeded_row(
                    c, f"{display(student)} / {display(teacher)}", t, a, share, ours, paper, gate(gains, (teacher,), t)
                )
            )
    c = CLAIMS["distillation-beats-init-only"]
    for student in INIT_FROM_CONTROL_TEACHER:
        for t in TASK_COLUMNS:
            a, b = per_seed(scores, student, t), per_seed(scores, INIT_ONLY, t)
            miss = "" if b else f"no {INIT_ONLY} scores in this results folder"
            rows.append(
                _seeded_row(
                    c,
                    f"{display(student)} vs {display(INIT_ONLY)}",
                    t,
                    a,
                    b,
                    _vs(a, b),
                    gated=gate(gains, (CONTROL_TEACHER,), t),
                    missing=miss,
                )
            )
    c = CLAIMS["second-teacher-changes-little"]
    for t in TASK_COLUMNS:
        a, b = per_seed(scores, MULTI, t), per_seed(scores, SINGLE, t)
        d = _mean(a) - _mean(b)
        ours = "n/a" if math.isnan(d) else f"{d:+.2f}"
        paper = paper_text(paper_score(MULTI, t) - paper_score(SINGLE, t), "+.2f")
        rows.append(
            _seeded_row(
                c,
                f"{display(MULTI)} − {display(SINGLE)}",
                t,
                a,
                b,
                ours,
                paper,
                gate(gains, STUDENT_TEACHERS[MULTI], t),
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def measured_findings(model_stats: pd.DataFrame | None) -> pd.DataFrame:
    """Size and speed (one measurement each, against the threshold in the claim's wording)."""
    rows = []
    if model_stats is None or model_stats.empty or "params_M" not in model_stats:
        return pd.DataFrame(rows, columns=COLUMNS)
    by_key = model_stats.set_index("key")
    red = {
        s: 100 * (1 - by_key.loc[s, "params_M"] / by_key.loc[ts[0], "params_M"])
        for s, ts in STUDENT_TEACHERS.items()
        if s in by_key.index and ts[0] in by_key.index
    }
    paper_red = sorted(
        {round(100 * (1 - PAPER_PARAMS_M[s] / PAPER_PARAMS_M[ts[0]]), 1) for s, ts in STUDENT_TEACHERS.items()}
    )
    c = CLAIMS["students-smaller"]
    ok = all(30 <= v <= 40 for v in red.values()) if red else None
    rows.append(
        {
            "id": c.id,
            "claim": c.text,
            "subject": "students",
            "task": "—",
            "ours": ", ".join(f"{v:.1f} %" for v in red.values()) or "n/a",
            "paper": ", ".join(f"{v:.1f} %" for v in paper_red),
            "diff": math.nan,
            "se": math.nan,
            "test": "one measurement",
            "verdict": _measured(ok),
            "reason": "parameter counts of the built models",
        }
    )
    sp = model_stats.dropna(subset=["speedup_vs_teacher"])
    sp = sp[sp["key"].isin(list(STUDENT_TEACHERS))]["speedup_vs_teacher"]
    c = CLAIMS["students-faster"]
    rows.append(
        {
            "id": c.id,
            "claim": c.text,
            "subject": "students",
            "task": "—",
            "ours": f"{sp.min():.2f}–{sp.max():.2f}x" if len(sp) else "n/a",
            "paper": c.paper,
            "diff": math.nan,
            "se": math.nan,
            "test": "one measurement (median of alternating rounds)",
            "verdict": _measured(bool(sp.min() >= 1.6) if len(sp) else None),
            "reason": "throughput timed on this machine",
        }
    )
    return pd.DataFrame(rows, columns=COLUMNS)


def _measured(ok: bool | None) -> str:
    return stats.INCONCLUSIVE if ok is None else (stats.HOLDS if ok else stats.DOES_NOT_HOLD)


def findings(scores: pd.DataFrame, model_stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` checked on this run: one row per claim x subject x task.

    Columns: ``id, claim, subject, task, ours, paper, diff, se, test, verdict, reason`` (``diff`` and ``se``
    in points; ``test`` says paired or Welch). Size and speed come from ``model_stats``
    (:func:`rokd.report.model_stats`) when given.
    """
    return pd.concat([measured_findings(model_stats), seeded_findings(scores)], ignore_index=True)


def verdict_counts(found: pd.DataFrame) -> pd.DataFrame:
    """Per claim id: how many (subject, task) rows hold, do not hold, are inconclusive."""
    counts = found.groupby(["id", "verdict"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(stats.VERDICTS), fill_value=0)
    order = [i for i in CLAIMS if i in counts.index]
    counts = counts.loc[order]
    counts.insert(0, "claim", [CLAIMS[i].text for i in counts.index])
    return counts


def verdict_grid(found: pd.DataFrame, claim_id: str) -> pd.DataFrame:
    """One claim as a subject x task grid of verdicts (with the difference ± 2 SE where there is one)."""
    rows = found[found["id"] == claim_id]

    def cell(r) -> str:
        if math.isnan(r.diff):
            return r.verdict
        band = "" if math.isnan(r.se) else f" ± {stats.Z * r.se:.1f}"
        return f"{r.verdict} ({r.diff:+.1f}{band})"

    grid = {}
    for r in rows.itertuples():
        grid.setdefault(r.subject, {})[r.task] = cell(r)
    cols = [COLUMN_TITLES[t] for t in TASK_COLUMNS if COLUMN_TITLES[t] in set(rows["task"])]
    return pd.DataFrame.from_dict(grid, orient="index").reindex(columns=cols)


# ------------------------------------------------------------------------------------ discussion
def _where(rows: pd.DataFrame, verdict: str) -> list[str]:
    """'Subject on TASK, TASK' per subject, for the rows with this verdict."""
    sub = rows[rows["verdict"] == verdict]
    by_subject: dict[str, list[str]] = {}
    for r in sub.itertuples():
        by_subject.setdefault(r.subject, []).append(r.task)
    return [f"{subject} on {', '.join(tasks)}" for subject, tasks in by_subject.items()]


def _count(rows: pd.DataFrame, verdict: str) -> int:
    return int((rows["verdict"] == verdict).sum())


def _list(items: list[str]) -> str:
    return "; ".join(items) if items else "none"


def _gate_reasons(rows: pd.DataFrame) -> str:
    """The distinct reasons of the gated (untestable) rows, shortest first."""
    gated = rows[(rows["verdict"] == stats.INCONCLUSIVE) & rows["reason"].str.contains(UNTESTABLE)]
    return "; ".join(sorted(set(gated["reason"]), key=len)[:2])


def _pretraining(rows: pd.DataFrame, ctx: dict) -> str:
    if rows["reason"].str.startswith(f"no {RANDOM_INIT}").all():
        return (
            "- **What pretraining gave cannot be read from this run**: it has no `control-random-init` scores, so "
            "the teachers cannot be compared with an unpretrained model of the same shape. The chapter therefore "
            "states **no finding about distillation**: every distillation verdict in it is `inconclusive` for "
            "that reason."
        )
    held = _where(rows, stats.HOLDS)
    text = (
        f"- **What pretraining gave**: a teacher beats the randomly initialised control (same architecture and "
        f"tokenizer, fine-tuned alike) on {_count(rows, stats.HOLDS)} of {len(rows)} teacher × task cells "
        f"({_list(held)})."
    )
    lost = _where(rows, stats.DOES_NOT_HOLD)
    if lost:
        text += f" It scores *below* the control on {_list(lost)}."
    text += (
        " Distillation can only pass on what pretraining gave, so a finding about distillation is stated only "
        "on those cells; elsewhere this scale cannot test it."
    )
    return text


def _baselines(rows: pd.DataFrame, ctx: dict) -> str:
    if rows["reason"].str.startswith(f"no {LEXICAL}").all():
        return (
            "- **Baselines**: this results folder has no `baseline-lexical` scores, so the models are not "
            "compared with one."
        )
    comp = baseline_comparison(ctx["scores"])
    below_all = [r["task"] for r in comp.to_dict("records") if r["models"] and r[f"below_{LEXICAL}"] == r["models"]]
    held = rows[rows["verdict"] == stats.HOLDS]
    best_tasks = sorted(set(held["task"]), key=[COLUMN_TITLES[t] for t in TASK_COLUMNS].index)
    text = (
        "- **Against a trivial baseline**: `baseline-lexical` (most frequent tag per word for the tagging tasks, "
        "TF-IDF + logistic regression for the classification tasks, word overlap for STS) is beaten beyond the "
        f"seeds' noise on {len(best_tasks)} of {rows['task'].nunique()} tasks"
        + (f" ({', '.join(best_tasks)})" if best_tasks else "")
        + "."
    )
    if below_all:
        who = "teachers and controls included" if set(CONTROLS) & set(ctx["scores"]["model"]) else "teachers included"
        text += (
            f" On **{', '.join(below_all)}**, every fine-tuned model, {who}, scores *below* it: there the models "
            "have learned the task less well than a lexical lookup, and their differences measure under-training, "
            "not distillation."
        )
    return text


def _distillation(title: str, success: str, failure: str) -> Callable[[pd.DataFrame, dict], str]:
    def write(rows: pd.DataFrame, ctx: dict) -> str:
        held, lost = _where(rows, stats.HOLDS), _where(rows, stats.DOES_NOT_HOLD)
        open_ = rows[rows["verdict"] == stats.INCONCLUSIVE]
        testable = rows[~rows["reason"].str.contains(UNTESTABLE)]
        if testable.empty:
            return f"- **{title}**: not testable in this run ({_gate_reasons(rows)})."
        text = f"- **{title}** (tested on {len(testable)} of {len(rows)} cells): "
        text += f"{success} for {_list(held)}" if held else f"{success} nowhere"
        text += f"; {failure} for {_list(lost)}" if lost else ""
        untested = len(rows) - len(testable)
        text += f"; inside the noise on {len(open_) - untested}" if len(open_) - untested else ""
        text += f"; untestable on {untested} (the teacher did not beat the control)" if untested else ""
        return text + "."

    return write


def _retention_hypothesis(rows: pd.DataFrame, ctx: dict) -> str:
    text = _distillation("Retention (≥ 97 % of the teacher)", "holds", "does not hold")(rows, ctx)
    profile = ctx.get("profile")
    if (rows["verdict"] == stats.DOES_NOT_HOLD).any() and profile is not None:
        layers = profile.teachers.cased.num_hidden_layers
        steps = profile.distill.steps if profile.distill.source == "build" else None
        text += (
            f" Hypotheses: a {layers // 2}-layer student of a {layers}-layer miniature teacher has little spare "
            "capacity, unlike a 6-layer student of a 12-layer BERT"
            + (
                f"; {steps:,} distillation steps transfer less than the paper's pass over a large corpus"
                if steps
                else ""
            )
            + "."
        )
    low = low_score_tasks(ctx["scores"])
    if low:
        text += (
            f" On {', '.join(low)} every model scores under 30 points, where a ratio of small numbers swings by "
            "tens of percent for a point of difference."
        )
    return text


def _second_teacher(rows: pd.DataFrame, ctx: dict) -> str:
    write = _distillation("The second teacher", "changes little (within ±1 point)", "matters (beyond ±1 point)")
    text = write(rows, ctx)
    if (rows["verdict"] == stats.DOES_NOT_HOLD).any():
        text += (
            " Hypothesis: the uncased teacher reaches the student only where its tokenization lines up with the "
            "student's (the distillation chapter gives the coverage) and as lowercased pieces mapped onto cased "
            "ones, so its signal is partial and differently shaped."
        )
    return text


def _size_speed(rows: pd.DataFrame, ctx: dict) -> str:
    by_id = {r.id: r for r in rows.itertuples()}
    size, speed = by_id.get("students-smaller"), by_id.get("students-faster")
    if size is None or speed is None:
        return ""
    both = size.verdict == speed.verdict == stats.HOLDS
    return (
        f"- **Size and speed** ({'hold' if both else 'partly hold'}): halving the layers removes {size.ours} "
        f"of the parameters and runs {speed.ours} as fast. The size follows from the shapes alone (the embedding "
        "matrix is kept whole, which is why the reduction is about 35 % and not 50 %); the speed-up is measured "
        "once on this run's hardware (the timing line of the size and speed table)."
    )


# The chapter's reading of each claim, keyed on the claim's id (never on its wording).
DISCUSSION: dict[str, Callable[[pd.DataFrame, dict], str]] = {
    "students-smaller": _size_speed,
    "teacher-beats-random-init": _pretraining,
    "model-beats-lexical-baseline": _baselines,
    "student-keeps-97pc": _retention_hypothesis,
    "distillation-beats-init-only": _distillation(
        "Distillation beyond initialisation",
        "the student beats control-init-only",
        "the student is below control-init-only",
    ),
    "second-teacher-changes-little": _second_teacher,
}


# A paragraph that reads several claims' rows (keyed on the first).
READS = {"students-smaller": ("students-smaller", "students-faster")}


def discussion(scores: pd.DataFrame, found: pd.DataFrame, profile=None) -> str:
    """Markdown: what the verdicts say, claim by claim, with the numbers interpolated.

    The paragraph of each claim is chosen by its id in :data:`DISCUSSION` and by its verdicts, so the
    conclusions always follow from the run they are printed beside. ``profile`` (a
    :class:`~rokd.profiles.Profile`) supplies the shapes and budgets the hypotheses refer to.
    """
    unknown = set(DISCUSSION) - set(CLAIMS)
    if unknown:
        raise KeyError(f"discussion written for unknown claim ids {sorted(unknown)}")
    ctx = {"scores": scores, "profile": profile}
    out = []
    for claim_id, write in DISCUSSION.items():
        rows = found[found["id"].isin(READS.get(claim_id, (claim_id,)))]
        if rows.empty:
            continue
        text = write(rows, ctx)
        if text:
            out.append(text)
    return "\n".join(out)
