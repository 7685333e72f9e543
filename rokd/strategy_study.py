"""The cross-tokenizer strategy study: every strategy of :mod:`rokd.distill.strategies` x distillation seeds,
measured the same way, into ``results/<profile>/strategies.csv`` (``strategy,seed,task,metric,value``).

It sits at the end of the data flow (distill -> tasks -> loyalty -> here), like :mod:`rokd.report`, and
only calls down into the stages. For each strategy and seed:

1. **distill** DistilMulti-BERT-base-ro (both teachers; ``cased-only`` keeps only the cased one in the
   objective) into ``artifacts/<profile>/strategies/<strategy>/seed<k>/`` (idempotent, resumable);
   rows ``task = "distill"``: the training log's ``stat_*`` diagnostics averaged over the last quarter of
   the logged steps, and the final ``loss`` / ``ce``;
2. **held-out**: the student's masked-token accuracy and the diagnostics of
   :func:`rokd.distill.heldout.heldout_diagnostics` on the profile's held-out lines (same masks for every
   student, temperature 1); rows ``task = "heldout"``;
3. **tasks**: fine-tuning on the chosen tasks (default NER, UPOS, STS) with one fine-tuning seed, through
   :func:`rokd.tasks.finetune.evaluate_model` (the profile's protocol; outputs under
   ``results/<profile>/strategies/``); rows ``task = <task>``, one per test metric;
4. **loyalty** to each teacher and to their ensemble on the same test rows
   (:func:`rokd.loyalty.pair_loyalty`; the teachers' predictions are those of the profile's own
   evaluation, ``results/<profile>/predictions/``, produced here when missing); rows
   ``metric = "<measure>.<teacher>"``.

:func:`compare_to_baseline` applies the results chapter's rule (:mod:`rokd.stats`) to every strategy against
``span-map``: the difference of the means over distillation seeds with its standard error (paired by seed);
beyond 2 SE in the claimed direction ``holds``, beyond it the other way ``does not hold``, inside it (or
with fewer than two seeds) ``inconclusive``.

Run it as ``python -m rokd.strategy_study --profile mini --seeds 1 2``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rokd import io
from rokd.distill.strategies import STRATEGIES, canonical_name
from rokd.paper import HEADLINE_METRIC
from rokd.paths import artifacts_dir, results_dir
from rokd.profiles import Profile, resolve_profile
from rokd.spec import MODELS, MULTI_STUDENT

STUDENT = MULTI_STUDENT
SAME_TEACHER, OTHER_TEACHER = MODELS[STUDENT].teachers  # the teacher whose vocabulary it has, and the other
STUDY_TASKS = ("ner", "upos", "sts")
COLUMNS = ("strategy", "seed", "task", "metric", "value")
CSV_NAME = "strategies.csv"
BASELINE = "span-map"


@dataclass
class StudyConfig:
    """What one study covered (written beside ``strategies.csv``)."""

    profile: str
    strategies: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    finetune_seed: int = 1
    steps: int | None = None
    heldout_lines: int = 0


def student_path(profile: str | Profile, strategy: str, seed: int) -> Path:
    return artifacts_dir(resolve_profile(profile).name) / "strategies" / canonical_name(strategy) / f"seed{seed}"


def model_name(strategy: str, seed: int) -> str:
    """The name of a study student in the study's prediction files."""
    return f"strategy-{canonical_name(strategy)}-seed{seed}"


def study_results(profile: str | Profile) -> Path:
    return results_dir(resolve_profile(profile).name) / "strategies"


# --- the four measurements of one student ----------------------------------------------------------


def distill_one(profile: str | Profile, strategy: str, seed: int, steps: int | None = None, log=print) -> Path:
    from rokd.distill.distiller import DistillOverrides, distill_student

    prof = resolve_profile(profile)
    overrides = DistillOverrides(strategy=canonical_name(strategy), seed=seed, steps=steps)
    return distill_student(
        prof, STUDENT, overrides, output_dir=student_path(prof, strategy, seed), progress=False, log=log
    )


def distill_rows(path: str | Path, strategy: str, seed: int, tail: float = 0.25) -> list[dict]:
    """Rows ``task = "distill"``: each logged ``stat_*`` averaged over the last ``tail`` of the steps, final losses."""
    from rokd.distill.distiller import read_log

    log = read_log(Path(path) / "train_log.jsonl")
    last = log[-max(1, math.ceil(len(log) * tail)) :]
    keys = sorted({k for r in last for k in r if k.startswith("stat_")})
    rows = []
    for k in keys:
        vals = [r[k] for r in last if r.get(k) is not None]
        if vals:
            rows.append(_row(strategy, seed, "distill", k.removeprefix("stat_"), float(np.mean(vals))))
    for k in ("loss", "ce", "mlm", "cos"):
        if k in log[-1]:
            rows.append(_row(strategy, seed, "distill", f"final_{k}", float(log[-1][k])))
    return rows


def heldout_rows(
    profile: str | Profile, path: str | Path, strategy: str, seed: int, lines: Sequence[str]
) -> list[dict]:
    """Rows ``task = "heldout"``: :func:`rokd.distill.heldout.heldout_diagnostics` of the student at ``path``."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from rokd.distill.heldout import heldout_diagnostics
    from rokd.models.registry import STUDENT_TEACHERS, load_model, load_tokenizer

    prof = resolve_profile(profile)
    cfg = json.loads((Path(path) / "distill_config.json").read_text(encoding="utf-8"))
    student = AutoModelForMaskedLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    keys = cfg.get("teachers") or list(STUDENT_TEACHERS[STUDENT])
    teachers = {k: load_model(k, "mlm", prof) for k in keys}
    toks = {k: load_tokenizer(k, prof) for k in keys}
    # Same masks for every student (seed fixed at the profile's distillation seed), temperature 1.
    diag = heldout_diagnostics(
        student,
        tok,
        teachers,
        toks,
        lines,
        strategy=strategy,
        teacher_weights=cfg.get("teacher_weights"),
        mlm_probability=prof.distill.mlm_probability,
        max_length=prof.distill.max_length,
        seed=prof.distill.seed,
    )
    return [_row(strategy, seed, "heldout", k, v) for k, v in diag.items()]


def task_rows(
    profile: str | Profile,
    path: str | Path,
    strategy: str,
    seed: int,
    tasks: Sequence[str],
    finetune_seed: int,
    dataset_for=None,
    log=print,
) -> list[dict]:
    """Rows ``task = <task>``: the student's test metrics (fine-tuned with ``finetune_seed``)."""
    prof = resolve_profile(profile)
    rows = []
    for task in tasks:
        name = model_name(strategy, seed)
        metrics = _fine_tuned(prof, str(path), task, finetune_seed, study_results(prof), dataset_for, log, name)
        rows += [_row(strategy, seed, task, m, v) for m, v in metrics.items()]
    return rows


def _fine_tuned(prof: Profile, model: str, task: str, seed: int, results: Path, dataset_for, log, name=None) -> dict:
    """Fine-tune ``model`` on ``task`` with the profile's protocol into ``results`` (reused when up to date);
    its test metrics. The predictions are then at ``predictions_path(results, name or model, task, seed)``."""
    from rokd.tasks.finetune import evaluate_model

    dataset = dataset_for(task) if dataset_for else None
    return evaluate_model(prof, model, task, seed, name=name, results_dir=results, dataset=dataset, log=log)


def loyalty_rows(
    profile: str | Profile,
    strategy: str,
    seed: int,
    tasks: Sequence[str],
    finetune_seed: int,
    dataset_for=None,
    log=print,
) -> list[dict]:
    """Rows ``metric = "<measure>.<teacher>"``: loyalty of the study student to each teacher and to their ensemble."""
    from rokd.loyalty import ENSEMBLE, ensemble_predictions, pair_loyalty
    from rokd.models.registry import STUDENT_TEACHERS
    from rokd.tasks.predictions import load_predictions, predictions_path

    prof = resolve_profile(profile)
    main_results = results_dir(prof.name)
    rows = []
    for task in tasks:
        name = model_name(strategy, seed)
        student = load_predictions(predictions_path(study_results(prof), name, task, finetune_seed))
        teachers = {}
        for t in STUDENT_TEACHERS[STUDENT]:
            # The profile's own evaluation of the teacher (reused when up to date, else run with the same protocol).
            _fine_tuned(prof, t, task, finetune_seed, main_results, dataset_for, log)
            teachers[t] = load_predictions(predictions_path(main_results, t, task, finetune_seed))
        teachers[ENSEMBLE] = ensemble_predictions(list(teachers.values()), list(teachers))
        for t, preds in teachers.items():
            loyal = pair_loyalty(preds, student, t, name)
            rows += [_row(strategy, seed, task, f"{m}.{t}", v) for m, v in loyal.items()]
    return rows


def _row(strategy: str, seed: int, task: str, metric: str, value: float) -> dict:
    return {"strategy": strategy, "seed": int(seed), "task": task, "metric": metric, "value": float(value)}


# --- the whole study -------------------------------------------------------------------------------


def csv_path(profile: str | Profile) -> Path:
    return results_dir(resolve_profile(profile).name) / CSV_NAME


def run_study(
    profile: str | Profile,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] = (1, 2),
    tasks: Sequence[str] = STUDY_TASKS,
    finetune_seed: int | None = None,
    steps: int | None = None,
    heldout_lines: int | None = None,
    dataset_for=None,
    write: bool = True,
    log=print,
) -> pd.DataFrame:
    """Every strategy x seed: distil, held-out diagnostics, fine-tune on ``tasks``, loyalty.

    Returns the rows of ``strategies.csv``.

    Defaults: all seven strategies, distillation seeds 1 and 2, NER / UPOS / STS, the profile's first
    evaluation seed for fine-tuning, the profile's distillation steps and ``distill.eval_lines`` held-out
    lines. Each step is idempotent, so an interrupted study continues where it stopped. With ``write``
    the table is written atomically to ``results/<profile>/strategies.csv`` and the resolved config to
    ``strategies_config.json``. ``dataset_for(task)`` replaces the data layer (tests).
    """
    from rokd.config import save_config
    from rokd.models.quality import read_lines
    from rokd.models.teachers import corpus_files

    prof = resolve_profile(profile)
    strategies = [canonical_name(s) for s in (strategies or list(STRATEGIES))]
    finetune_seed = int(finetune_seed if finetune_seed is not None else prof.evaluate.seeds[0])
    n_lines = int(heldout_lines if heldout_lines is not None else prof.distill.eval_lines)
    lines = read_lines(corpus_files(prof)[1], limit=n_lines, seed=prof.distill.seed)
    rows: list[dict] = []
    for strategy in strategies:
        for seed in seeds:
            log(f"strategy study ({prof.name}): {strategy}, seed {seed}")
            path = distill_one(prof, strategy, seed, steps, log=log)
            summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
            rows.append(_row(strategy, seed, "distill", "train_time_s", summary["train_time_s"]))
            rows += distill_rows(path, strategy, seed)
            rows += heldout_rows(prof, path, strategy, seed, lines)
            rows += task_rows(prof, path, strategy, seed, tasks, finetune_seed, dataset_for, log)
            rows += loyalty_rows(prof, strategy, seed, tasks, finetune_seed, dataset_for, log)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if write:
        out = csv_path(prof)
        with io.atomic_path(out) as tmp:
            df.to_csv(tmp, index=False, float_format="%.10g")
        cfg = StudyConfig(prof.name, strategies, [int(s) for s in seeds], list(tasks), finetune_seed, steps, n_lines)
        save_config(cfg, out.with_name("strategies_config.json"))
    return df


def read_study(profile: str | Profile, path: str | Path | None = None) -> pd.DataFrame:
    """``strategies.csv`` as a DataFrame; a clear error if it is missing or malformed."""
    p = Path(path) if path is not None else csv_path(profile)
    if not p.is_file():
        name = resolve_profile(profile).name
        raise FileNotFoundError(f"{p} not found; produce it with `python -m rokd.strategy_study --profile {name}`")
    df = pd.read_csv(p)
    if tuple(df.columns) != COLUMNS:
        raise ValueError(f"{p}: expected columns {','.join(COLUMNS)}, got {','.join(df.columns)}")
    return df


# --- tables and the statistics rule ------------------------------------------------------------------


def headline_metrics(
    tasks: Sequence[str] = STUDY_TASKS, other: str = OTHER_TEACHER, same: str = SAME_TEACHER
) -> list[tuple[str, str]]:
    """The (task, metric) pairs of the chapter's main table, in order."""
    out = [
        ("heldout", "mlm_accuracy"),
        ("heldout", f"strategy_coverage.{other}"),
        ("heldout", f"strategy_mass.{other}"),
        ("heldout", f"unmatched_student_mass.{other}"),
        ("heldout", f"top1_agreement.{same}"),
        ("heldout", f"top1_agreement.{other}"),
        ("heldout", f"kl.{same}"),
        ("heldout", f"kl.{other}"),
    ]
    for task in tasks:
        out.append((task, HEADLINE_METRIC[task]))
    for task in tasks:
        measure = "regression_loyalty" if task == "sts" else "label_loyalty"
        out += [(task, f"{measure}.{same}"), (task, f"{measure}.{other}")]
    return out


def lower_is_better(metric: str) -> bool:
    """KL to a teacher and losses: lower is better; every other study metric is higher-is-better
    (for ``unmatched_student_mass``: more mass = less of the suppression X-Token predicts)."""
    return metric.startswith(("kl.", "final_"))


def summary_table(df: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Strategies x (task, metric): mean over seeds, standard deviation (ddof 1) and number of seeds."""
    pairs = list(pairs) if pairs is not None else headline_metrics()
    keep = df.set_index(["task", "metric"]).index.isin(pairs)
    g = df[keep].groupby(["strategy", "task", "metric"])["value"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "seeds": g.count()}).reset_index()
    order = {p: i for i, p in enumerate(pairs)}
    s_order = {s: i for i, s in enumerate(STRATEGIES)}
    out["_p"] = [order[(t, m)] for t, m in zip(out.task, out.metric)]
    out["_s"] = out.strategy.map(s_order)
    return out.sort_values(["_s", "_p"]).drop(columns=["_p", "_s"]).reset_index(drop=True)


def wide_table(df: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None, digits: int = 3) -> pd.DataFrame:
    """:func:`summary_table` as display strings ``mean ± std``: strategies as rows, ``task / metric`` as columns."""
    s = summary_table(df, pairs)
    s["cell"] = [f"{m:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd == sd else "") for m, sd in zip(s["mean"], s["std"])]
    s["column"] = s.task + " / " + s.metric
    w = s.pivot(index="strategy", columns="column", values="cell")
    cols = [f"{t} / {m}" for t, m in (pairs or headline_metrics()) if f"{t} / {m}" in w.columns]
    return w.loc[[x for x in STRATEGIES if x in w.index], cols]


def compare_to_baseline(
    df: pd.DataFrame, baseline: str = BASELINE, pairs: Sequence[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """Each strategy against ``baseline`` on each (task, metric): the claim "<strategy> does better than <baseline>",
    judged by the results chapter's rule (:mod:`rokd.stats`: ``d`` = difference of the means over distillation
    seeds, its standard error paired by seed when both sides have the same seeds, Welch otherwise; ``holds``
    beyond 2 SE in the better direction -- lower for KL --, ``does not hold`` beyond it the other way,
    ``inconclusive`` inside it or with fewer than two seeds)."""
    from rokd import stats

    values = df.groupby(["strategy", "task", "metric", "seed"])["value"].mean()
    rows = []
    for strategy in [x for x in STRATEGIES if x != baseline and x in set(df.strategy)]:
        for task, metric in pairs or headline_metrics():
            if (strategy, task, metric) not in values.index.droplevel(3) or (
                baseline,
                task,
                metric,
            ) not in values.index.droplevel(3):
                continue
            a = values.loc[(strategy, task, metric)].to_dict()
            b = values.loc[(baseline, task, metric)].to_dict()
            kind = "less" if lower_is_better(metric) else "greater"
            d, verdict, reason = stats.compare(a, b, kind=kind)
            rows.append(
                {
                    "strategy": strategy,
                    "task": task,
                    "metric": metric,
                    "difference": d.diff,
                    "se": d.se,
                    "test": d.test,
                    "seeds": int(min(d.n_a, d.n_b)),
                    "verdict": verdict,
                    "reason": reason,
                }
            )
    columns = ["strategy", "task", "metric", "difference", "se", "test", "seeds", "verdict", "reason"]
    return pd.DataFrame(rows, columns=columns)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rokd.strategy_study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--profile", default="smoke", help="profile name or YAML path")
    p.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), help="default: all seven")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2], help="distillation seeds (default 1 2)")
    p.add_argument(
        "--tasks", nargs="+", default=list(STUDY_TASKS), choices=list(HEADLINE_METRIC), help="default: ner upos sts"
    )
    p.add_argument("--finetune-seed", type=int, help="default: the profile's first evaluation seed")
    p.add_argument("--steps", type=int, help="distillation steps (default: the profile's)")
    p.add_argument("--heldout-lines", type=int, help="default: the profile's distill.eval_lines")
    a = p.parse_args(argv)
    df = run_study(a.profile, a.strategies, a.seeds, a.tasks, a.finetune_seed, a.steps, a.heldout_lines)
    print(f"{len(df)} rows -> {csv_path(a.profile)}")
    return 0


DOWNSTREAM = {"ner": "NER", "upos": "UPOS", "sts": "STS"}


def conclusion(
    df: pd.DataFrame, baseline: str = BASELINE, other: str = OTHER_TEACHER, tasks: Sequence[str] = STUDY_TASKS
) -> str:
    """Markdown: the measured suppression under ``baseline`` and the best alternative, and the recommendation
    that :func:`compare_to_baseline`'s verdicts support (nothing else decides the wording).

    A strategy is recommended over the baseline only when its verdict ``holds`` on at least one downstream
    headline metric and ``does not hold`` on none; among several such, the one with the most ``holds``
    (then the largest mean difference). Otherwise rokd keeps the baseline.
    """
    cmp = compare_to_baseline(df, baseline)
    key = ("heldout", f"unmatched_student_mass.{other}")
    s = summary_table(df, [key]).set_index("strategy")
    heads = {(t, HEADLINE_METRIC[t]) for t in tasks}
    down = cmp[[(t, m) in heads for t, m in zip(cmp.task, cmp.metric)]]
    candidates = []
    for strategy, g in down.groupby("strategy"):
        wins, losses = int((g.verdict == "holds").sum()), int((g.verdict == "does not hold").sum())
        if wins and not losses:
            candidates.append((wins, float(g.difference.mean()), strategy))
    out = []
    if baseline in s.index:
        alt = [x for x in s.index if x not in (baseline, "cased-only")]
        best = max(candidates)[2] if candidates else (max(alt, key=lambda x: s.loc[x, "mean"]) if alt else None)
        line = (
            "- **Suppression of unmatched tokens** (the student's held-out probability mass on its tokens "
            "without a "
            f"counterpart in the other teacher's vocabulary): {s.loc[baseline, 'mean']:.4f} under `{baseline}`"
        )
        if best is not None:
            label = "the recommended alternative" if candidates else "the alternative that suppresses them least"
            line += f", {s.loc[best, 'mean']:.4f} under `{best}` ({label})"
        if "cased-only" in s.index:
            line += f"; {s.loc['cased-only', 'mean']:.4f} with the cased teacher alone."
        out.append(line)
    if candidates:
        wins, diff, strategy = max(candidates)
        g = down[down.strategy == strategy]
        shown = ", ".join(
            f"{DOWNSTREAM.get(t, t)} {d:+.4f} (± {2 * n:.4f}, 2 SE)" for t, d, n in zip(g.task, g.difference, g.se)
        )
        out.append(
            f"- **Recommendation: `{strategy}`.** It does better than `{baseline}` beyond the seeds' noise "
            f"on {wins} "
            f"downstream metric(s) and worse on none: {shown}."
        )
    else:
        n_seeds = int(cmp.seeds.min()) if len(cmp) else 0
        out.append(
            f"- **Recommendation: keep `{baseline}`.** No strategy does better on a downstream metric "
            "beyond the "
            f"seeds' noise without doing worse on another ({n_seeds} distillation seed(s) per strategy); "
            "the differences are in the table above."
        )
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
