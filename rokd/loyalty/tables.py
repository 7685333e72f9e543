"""Loyalty tables for the chapter: the paper's table, per-task matrices, references, and the orderings' verdicts.

Every ordering is tested task by task with the rule of :mod:`rokd.stats` (paired by fine-tuning seed: both
pairs of an ordering share the seed's models), and read against the control pairs of
:func:`rokd.loyalty.compute.control_pairs`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rokd import stats
from rokd.loyalty.compute import control_pairs, loyalty_pairs, pair_label
from rokd.loyalty.measures import (
    ENSEMBLE,
    LABEL_TASKS,
    METRIC_TITLES,
    METRICS,
    REFERENCE_TITLES,
    REFERENCES,
    REGRESSION_TASKS,
)
from rokd.models.registry import CONTROL_TEACHER, DISPLAY_NAMES, STUDENT_TEACHERS, TEACHERS
from rokd.spec import INIT_ONLY_CONTROL, MULTI_STUDENT, RANDOM_INIT_CONTROL, SINGLE_STUDENT
from rokd.tasks.metrics import headline_metric


def _headline(task: str) -> str | None:
    try:
        return headline_metric(task)
    except ValueError:
        return None


def paper_style_table(loyalty: pd.DataFrame, pairs: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The paper's loyalty table: per pair, L-L and P-L averaged over the classification tasks, R-L on STS.

    Per seed the task average is taken first, then mean and standard deviation over seeds (percent).
    Columns: ``L-L``, ``L-L std``, ``P-L``, ``P-L std``, ``R-L``, ``R-L std``, ``seeds`` (runs, with
    ``distillations`` of a student pooled by :func:`~rokd.loyalty.compute.pool_replicas`), and the paper's
    values ``paper L-L`` / ``paper P-L`` / ``paper R-L`` where the paper reports that pair (else NaN).
    Indexed by (student, teacher) in the order of ``pairs`` (default: the paper's pairs, then the control
    pairs); pairs with no row in ``loyalty`` are left out.
    """
    from rokd.paper import PAPER_LOYALTY

    df = loyalty.copy()
    cls = df[df.task.isin(LABEL_TASKS) & df.metric.isin(["label_loyalty", "prob_loyalty"])]
    reg = df[df.task.isin(REGRESSION_TASKS) & (df.metric == "regression_loyalty")]
    per_seed = pd.concat(
        [
            cls.groupby(["student", "teacher", "seed", "metric"]).value.mean().reset_index(),
            reg.groupby(["student", "teacher", "seed", "metric"]).value.mean().reset_index(),
        ]
    )
    per_seed["value"] *= 100
    rows = []
    paper = {(r["student"], r["teacher"]): r for r in PAPER_LOYALTY}
    for student, teacher in pairs or loyalty_pairs() + control_pairs():
        sub = per_seed[(per_seed.student == student) & (per_seed.teacher == teacher)]
        if sub.empty:
            continue
        distillations = int(sub.seed.map(stats.distillation_of).nunique())  # pooled runs (pool_replicas)
        row = {"student": student, "teacher": teacher, "seeds": int(sub.seed.nunique()), "distillations": distillations}
        for metric in METRICS:
            vals = sub[sub.metric == metric].value
            title = METRIC_TITLES[metric]
            row[title] = float(vals.mean()) if len(vals) else math.nan
            row[f"{title} std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            row[f"paper {title}"] = (
                float(paper[(student, teacher)][metric]) if (student, teacher) in paper else math.nan
            )
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
    # a student distilled several times: its runs are (distillation, fine-tuning seed)
    out["seeds"] = [n if k < 2 else f"{n} runs ({k} distillations)" for n, k in zip(table.seeds, table.distillations)]
    return out


def loyalty_matrix(loyalty: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Pairs x tasks table of one metric in percent, averaged over seeds (for heatmaps)."""
    if metric not in METRICS + REFERENCES:
        raise ValueError(f"metric must be one of {METRICS + REFERENCES}, got {metric!r}")
    sub = loyalty[loyalty.metric == metric]
    m = sub.groupby(["student", "teacher", "task"]).value.mean().mul(100).unstack("task")
    order = [p for p in loyalty_pairs() + control_pairs() if p in m.index]
    tasks = [t for t in (*LABEL_TASKS, *REGRESSION_TASKS) if t in m.columns]
    m = m.loc[order, tasks]
    m.index = [pair_label(s, t) for s, t in m.index]
    return m


def loyalty_vs_score(
    loyalty: pd.DataFrame, scores: pd.DataFrame, pairs: list[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """Each pair's loyalty (L-L, or R-L on STS) beside the student's and teacher's headline task score.

    ``scores`` has the columns of ``scores.csv`` (``model,task,metric,seed,value``). Ensemble rows get
    the mean score of the ensemble's members as teacher score. Values in percent; one row per
    (student, teacher, task, seed) of ``pairs`` (default: the paper's pairs).
    """
    missing = {"model", "task", "metric", "seed", "value"} - set(scores.columns)
    if missing:
        raise ValueError(
            f"scores table lacks the columns {sorted(missing)} (expected those of scores.csv: "
            "model,task,metric,seed,value); run the evaluation step first"
        )
    head = scores[scores["metric"] == scores["task"].map(_headline)]
    score = head.set_index(["model", "task", "seed"]).value.mul(100)
    keep = set(pairs or loyalty_pairs())
    rows = []
    for r in loyalty.itertuples(index=False):
        if (r.student, r.teacher) not in keep:
            continue
        wanted = "regression_loyalty" if r.task in REGRESSION_TASKS else "label_loyalty"
        if r.metric != wanted:
            continue
        members = STUDENT_TEACHERS.get(r.student, ()) if r.teacher == ENSEMBLE else (r.teacher,)
        t_scores = [score.get((m, r.task, r.seed), math.nan) for m in members]
        rows.append(
            {
                "student": r.student,
                "teacher": r.teacher,
                "pair": pair_label(r.student, r.teacher),
                "task": r.task,
                "seed": r.seed,
                "loyalty_metric": METRIC_TITLES[wanted],
                "loyalty": 100 * r.value,
                "student_score": score.get((r.student, r.task, r.seed), math.nan),
                "teacher_score": float(np.mean(t_scores)) if t_scores else math.nan,
            }
        )
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
        rows.append(
            {
                "task": task,
                "loyalty_metric": g.loyalty_metric.iloc[0] if len(g) else "",
                "points": len(g),
                "spearman_rho": rho,
            }
        )
    return pd.DataFrame(rows, columns=["task", "loyalty_metric", "points", "spearman_rho"])


def references_table(loyalty: pd.DataFrame) -> pd.DataFrame:
    """Per pair (rows) and label task (columns): 'L-L (chance / floor)', each averaged over seeds, in percent.

    ``chance``: the agreement of two independent labellers with the two models' label frequencies;
    ``floor``: max(0, acc_s + acc_t − 1), the agreement that two models reach by both being right. An L-L
    near either says little about what the student took from its teacher. Pairs computed before these
    references existed show '—'.
    """
    sub = loyalty[loyalty.task.isin(LABEL_TASKS) & loyalty.metric.isin(("label_loyalty", *REFERENCES))]
    m = sub.groupby(["student", "teacher", "task", "metric"]).value.mean().mul(100).unstack("metric")
    out: dict[str, dict[str, str]] = {}
    for pair in [p for p in loyalty_pairs() + control_pairs() if p in m.index.droplevel("task")]:
        row = {}
        for task in [t for t in LABEL_TASKS if (*pair, t) in m.index]:
            r = m.loc[(*pair, task)]
            refs = [f"{r[k]:.0f}" if k in r and not math.isnan(r[k]) else "—" for k in REFERENCES]
            row[task.upper()] = f"{r['label_loyalty']:.1f} ({' / '.join(refs)})"
        out[pair_label(*pair)] = row
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index.name = f"L-L ({' / '.join(REFERENCE_TITLES.values())})"
    return frame


# --- the orderings, task by task ------------------------------------------------------------------

MULTI, SINGLE = MULTI_STUDENT, SINGLE_STUDENT
INIT_ONLY, RANDOM_INIT = INIT_ONLY_CONTROL, RANDOM_INIT_CONTROL
CASED, UNCASED = TEACHERS

LOYALTY_CLAIMS: dict[str, stats.Claim] = {
    c.id: c
    for c in (
        stats.Claim(
            "multi-closer-to-cased",
            f"{DISPLAY_NAMES[MULTI]} is more loyal to {DISPLAY_NAMES[CASED]} than to {DISPLAY_NAMES[UNCASED]}",
            paper="the paper's ordering (averaged over tasks)",
        ),
        stats.Claim(
            "single-closer-than-multi",
            f"{DISPLAY_NAMES[SINGLE]} is more loyal to {DISPLAY_NAMES[CASED]} than {DISPLAY_NAMES[MULTI]} is",
            paper="the paper's ordering (averaged over tasks)",
        ),
        stats.Claim(
            "second-teacher-pulls-multi",
            f"the second teacher pulls {DISPLAY_NAMES[MULTI]} towards {DISPLAY_NAMES[UNCASED]}: its preference "
            f"for {DISPLAY_NAMES[CASED]} is smaller than {DISPLAY_NAMES[SINGLE]}'s",
            kind="less",
            paper="not reported",
            distillation=True,
        ),
        stats.Claim(
            "distillation-raises-loyalty",
            f"the distilled student is more loyal to {DISPLAY_NAMES[CASED]} than "
            f"{DISPLAY_NAMES.get(INIT_ONLY, INIT_ONLY)} (initialised from the same layers, not distilled)",
            paper="not reported",
            distillation=True,
        ),
    )
}


def _metric_for(task: str) -> list[str]:
    return ["regression_loyalty"] if task in REGRESSION_TASKS else ["label_loyalty", "prob_loyalty"]


def _seeds(loyalty: pd.DataFrame, student: str, teacher: str, task: str, metric: str) -> dict[int, float]:
    sub = loyalty[
        (loyalty.student == student)
        & (loyalty.teacher == teacher)
        & (loyalty.task == task)
        & (loyalty.metric == metric)
    ]
    return {int(s): 100 * float(v) for s, v in zip(sub.seed, sub.value)}


def _gap(loyalty: pd.DataFrame, model: str, task: str, metric: str) -> dict[int, float]:
    """Per seed: loyalty of ``model`` to the cased teacher minus to the uncased one (points)."""
    a, b = _seeds(loyalty, model, CASED, task, metric), _seeds(loyalty, model, UNCASED, task, metric)
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def _mean(v: dict[int, float]) -> float:
    return float(np.mean(list(v.values()))) if v else math.nan


def _paper_pair(student: str, teacher: str, metric: str) -> float:
    from rokd.paper import PAPER_LOYALTY

    rows = [r for r in PAPER_LOYALTY if (r["student"], r["teacher"]) == (student, teacher)]
    return float(rows[0][metric]) if rows else math.nan


Gate = Callable[[tuple[str, ...], str], tuple[bool, str]]


FINDING_COLUMNS = [
    "id",
    "claim",
    "subject",
    "task",
    "measure",
    "ours",
    "paper",
    "diff",
    "se",
    "test",
    "verdict",
    "reason",
]


@dataclass
class _Comparison:
    """One tested ordering on one task and measure: seeds of ``a`` against seeds of ``b`` (points)."""

    claim: stats.Claim
    subject: str
    a: dict[int, float]
    b: dict[int, float]
    ours: str
    paper: str
    needs: list[tuple[str, str]]  # the (student, teacher) pairs it reads
    teachers: tuple[str, ...]  # whose gain over control-random-init must hold for a distillation claim


def _vs(a: dict, b: dict) -> str:
    return f"{_mean(a):.2f} vs {_mean(b):.2f}" if a and b else "n/a"


def _comparisons(loyalty: pd.DataFrame, task: str, metric: str) -> list[_Comparison]:
    """The paper's loyalty orderings and the control readings on one task and measure."""
    cased, uncased, multi, single = (DISPLAY_NAMES[k] for k in (CASED, UNCASED, MULTI, SINGLE))
    out = []
    a, b = _seeds(loyalty, MULTI, CASED, task, metric), _seeds(loyalty, MULTI, UNCASED, task, metric)
    paper = f"{_paper_pair(MULTI, CASED, metric):.2f} vs {_paper_pair(MULTI, UNCASED, metric):.2f}"
    out.append(
        _Comparison(
            LOYALTY_CLAIMS["multi-closer-to-cased"],
            f"{multi}: → {cased} vs → {uncased}",
            a,
            b,
            _vs(a, b),
            paper,
            [(MULTI, CASED), (MULTI, UNCASED)],
            STUDENT_TEACHERS[MULTI],
        )
    )
    a, b = _seeds(loyalty, SINGLE, CASED, task, metric), _seeds(loyalty, MULTI, CASED, task, metric)
    paper = f"{_paper_pair(SINGLE, CASED, metric):.2f} vs {_paper_pair(MULTI, CASED, metric):.2f}"
    out.append(
        _Comparison(
            LOYALTY_CLAIMS["single-closer-than-multi"],
            f"→ {cased}: {single} vs {multi}",
            a,
            b,
            _vs(a, b),
            paper,
            [(SINGLE, CASED), (MULTI, CASED)],
            STUDENT_TEACHERS[SINGLE],
        )
    )
    claim = LOYALTY_CLAIMS["second-teacher-pulls-multi"]
    a, b = _gap(loyalty, MULTI, task, metric), _gap(loyalty, SINGLE, task, metric)
    out.append(
        _Comparison(
            claim,
            f"preference for {cased}: {multi} vs {single}",
            a,
            b,
            f"gap {_mean(a):+.2f} vs {_mean(b):+.2f}" if a and b else "n/a",
            claim.paper,
            [(MULTI, CASED), (MULTI, UNCASED), (SINGLE, CASED), (SINGLE, UNCASED)],
            STUDENT_TEACHERS[MULTI],
        )
    )
    claim = LOYALTY_CLAIMS["distillation-raises-loyalty"]
    for student in (SINGLE, MULTI):
        a, b = _seeds(loyalty, student, CASED, task, metric), _seeds(loyalty, INIT_ONLY, CASED, task, metric)
        subject = f"→ {cased}: {DISPLAY_NAMES[student]} vs {DISPLAY_NAMES.get(INIT_ONLY, INIT_ONLY)}"
        out.append(
            _Comparison(
                claim, subject, a, b, _vs(a, b), claim.paper, [(student, CASED), (INIT_ONLY, CASED)], (CONTROL_TEACHER,)
            )
        )
    return out


def _finding(c: _Comparison, task: str, metric: str, have: set, gate: "Gate | None") -> dict:
    """The statistics rule on one comparison; a missing pair or a failed gate makes it ``inconclusive``."""
    d = stats.difference(c.a, c.b)
    verdict, why = stats.verdict(d, c.claim.kind, c.claim.margin)
    lacking = [p for p in c.needs if p not in have]
    if lacking:
        verdict, why = (
            stats.INCONCLUSIVE,
            f"no {pair_label(*lacking[0])} rows in this loyalty.csv (control not evaluated)",
        )
    elif c.claim.distillation:
        ok, reason = gate(c.teachers, task) if gate else (False, "no scores given to check the teachers' gain")
        if not ok:
            verdict, why = stats.INCONCLUSIVE, reason
    measured = {"diff": d.diff, "se": d.se, "test": d.test, "verdict": verdict, "reason": why}
    return {
        "id": c.claim.id,
        "claim": c.claim.text,
        "subject": c.subject,
        "task": task.upper(),
        "measure": METRIC_TITLES[metric],
        "ours": c.ours,
        "paper": c.paper,
        **measured,
    }


def loyalty_findings(loyalty: pd.DataFrame, gate: Gate | None = None) -> pd.DataFrame:
    """The orderings of the paper and the control readings, tested per task and measure (see :data:`LOYALTY_CLAIMS`).

    Columns ``id, claim, subject, task, measure, ours, paper, diff, se, test, verdict, reason`` (points; paired by
    fine-tuning seed). ``gate(teachers, task) -> (ok, reason)`` says whether distillation can be tested on a task
    (the teachers beat ``control-random-init``; e.g. ``lambda ts, t: rokd.report.gate(gains, ts, t)``); without
    it the claims about distillation are ``inconclusive``. A pair missing from ``loyalty`` (e.g. the control pairs
    of a run made before they existed) makes its rows ``inconclusive`` with that reason.
    """
    have = set(zip(loyalty.student, loyalty.teacher))
    tasks = [t for t in (*LABEL_TASKS, *REGRESSION_TASKS) if t in set(loyalty.task)]
    rows = [
        _finding(c, task, metric, have, gate)
        for task in tasks
        for metric in _metric_for(task)
        for c in _comparisons(loyalty, task, metric)
    ]
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def ordering_controls(loyalty: pd.DataFrame) -> pd.DataFrame:
    """What each ordering is read against, per task and measure (points, mean over seeds).

    Columns: the preference for the cased teacher (loyalty to it minus to the uncased one) of DistilMulti,
    Distil-BERT-base-ro and control-init-only; the two teachers' agreement with each other; and the loyalty
    of control-init-only and control-random-init to the cased teacher. NaN where a pair was not computed.
    """
    rows = []
    tasks = [t for t in (*LABEL_TASKS, *REGRESSION_TASKS) if t in set(loyalty.task)]
    for task in tasks:
        for metric in _metric_for(task):
            rows.append(
                {
                    "task": task.upper(),
                    "measure": METRIC_TITLES[metric],
                    f"gap {DISPLAY_NAMES[MULTI]}": _mean(_gap(loyalty, MULTI, task, metric)),
                    f"gap {DISPLAY_NAMES[SINGLE]}": _mean(_gap(loyalty, SINGLE, task, metric)),
                    "gap control-init-only": _mean(_gap(loyalty, INIT_ONLY, task, metric)),
                    "teachers ↔ each other": _mean(_seeds(loyalty, UNCASED, CASED, task, metric)),
                    f"control-init-only → {DISPLAY_NAMES[CASED]}": _mean(
                        _seeds(loyalty, INIT_ONLY, CASED, task, metric)
                    ),
                    f"control-random-init → {DISPLAY_NAMES[CASED]}": _mean(
                        _seeds(loyalty, RANDOM_INIT, CASED, task, metric)
                    ),
                }
            )
    return pd.DataFrame(rows).set_index(["task", "measure"])


def loyalty_verdict_counts(found: pd.DataFrame) -> pd.DataFrame:
    """Per claim id: how many (subject, task, measure) rows hold, do not hold, are inconclusive."""
    counts = (
        found.groupby(["id", "verdict"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(stats.VERDICTS), fill_value=0)
    )
    counts = counts.loc[[i for i in LOYALTY_CLAIMS if i in counts.index]]
    counts.insert(0, "claim", [LOYALTY_CLAIMS[i].text for i in counts.index])
    return counts


def _cells(found: pd.DataFrame, claim_id: str, verdict: str) -> list[str]:
    sub = found[(found["id"] == claim_id) & (found["verdict"] == verdict)]
    return [f"{r.task} {r.measure}" for r in sub.itertuples()]


def loyalty_discussion(found: pd.DataFrame) -> str:
    """Markdown: the reading of each loyalty claim, keyed on the claim ids (never on their wording)."""
    out = []
    for claim_id, claim in LOYALTY_CLAIMS.items():
        rows = found[found["id"] == claim_id]
        if rows.empty:
            continue
        held, lost = _cells(found, claim_id, stats.HOLDS), _cells(found, claim_id, stats.DOES_NOT_HOLD)
        untestable = rows[rows["reason"].str.contains("control not evaluated|cannot|no scores given")]
        text = f"- **{claim.text[0].upper() + claim.text[1:]}** (`{claim_id}`): "
        if len(untestable) == len(rows):
            text += f"not testable here ({sorted(set(untestable['reason']), key=len)[0]})."
            out.append(text)
            continue
        text += f"holds on {', '.join(held)}" if held else "holds nowhere"
        text += f"; reversed beyond the noise on {', '.join(lost)}" if lost else ""
        text += f"; inside the noise on {len(rows) - len(held) - len(lost) - len(untestable)} of {len(rows)}"
        text += f"; untestable on {len(untestable)}" if len(untestable) else ""
        text += "."
        if claim_id == "multi-closer-to-cased":
            text += (
                f" DistilMulti is initialised from {DISPLAY_NAMES[CASED]}'s layers and shares its tokenizer, so "
                "this ordering is expected from initialisation alone: read it against the same gap of "
                "control-init-only and of Distil-BERT-base-ro (table above), and against the next claims."
            )
        out.append(text)
    control_ids = [i for i, c in LOYALTY_CLAIMS.items() if c.distillation]
    ctrl = found[found["id"].isin(control_ids)]
    if len(ctrl) and ctrl["reason"].str.contains("control not evaluated").all():
        out.append(
            "- **Without the control pairs, none of the orderings above can be attributed to distillation** "
            "rather than to initialisation from the cased teacher and its shared tokenizer."
        )
    return "\n".join(out)
