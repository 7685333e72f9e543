"""Regression check of the published `mini` run: the committed results are complete and consistent.

The book's published chapters are rendered from ``results/mini/`` (committed, produced by one
``rokd pipeline --profile mini`` run). These tests read only those files, so they are fast; the
book build from them is a stage of ``make test`` (``rokd check``).
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from rokd.loyalty import (
    ENSEMBLE,
    FORMAT_VERSION,
    compute_loyalty,
    loyalty_pairs,
    pool_replicas,
    read_loyalty,
    read_loyalty_config,
)
from rokd.models.registry import MODEL_KEYS
from rokd.paper import HEADLINE_METRIC, TASK_COLUMNS
from rokd.paths import REPO_ROOT
from rokd.pipeline import plan
from rokd.report import load_scores, pipeline_record, run_records
from rokd.tasks.compact import COMPACT_DIR, compact_size
from rokd.tasks.metrics import CLASSIFICATION_TASKS, REGRESSION_TASKS, TAGGING_TASKS

pytestmark = pytest.mark.published

PUBLISHED = "mini"
RESULTS = REPO_ROOT / "results" / PUBLISHED
MIN_SEEDS = 3
# Compact predictions (from which loyalty.csv is recomputed) exist since this date. The published run must
# commit them once it is re-run: when loyalty_config.json says it was computed from them (format_version
# >= 2), or when any of the five models' evaluation run records was started on or after this date (then the
# full predictions were on the machine that computed loyalty). The run published before (evaluated
# 2026-11-24, loyalty from the full files, not committed) is the only one allowed without them.
COMPACT_SINCE = "2026-11-27"
COMPACT_BUDGET_BYTES = 20_000_000


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return load_scores(PUBLISHED, RESULTS)


def test_every_model_has_every_metric_with_three_seeds(scores):
    headline = scores[scores["metric"] == scores["task"].map(HEADLINE_METRIC)]
    seeds = headline.groupby(["model", "task"])["seed"].nunique()
    missing = [(m, t) for m in MODEL_KEYS for t in TASK_COLUMNS if seeds.get((m, t), 0) < MIN_SEEDS]
    assert not missing, f"model x task with fewer than {MIN_SEEDS} seeds in {RESULTS / 'scores.csv'}: {missing}"
    assert headline["value"].map(math.isfinite).all()
    # one seed set for everything: the seeds the loyalty pairs are matched on
    assert headline.groupby(["model", "task"])["seed"].apply(frozenset).nunique() == 1


def test_both_baselines_are_scored_on_every_task_under_every_seed(scores):
    from rokd.tasks.baselines import BASELINES

    headline = scores[scores["metric"] == scores["task"].map(HEADLINE_METRIC)]
    model_seeds = set(headline[headline["model"] == MODEL_KEYS[0]]["seed"])
    for name in BASELINES:
        for task in TASK_COLUMNS:
            rows = headline[(headline["model"] == name) & (headline["task"] == task)]
            assert set(rows["seed"]) == model_seeds, (name, task)  # deterministic: the same under each seed
            assert rows["value"].nunique() == 1, (name, task)


def test_every_score_has_its_run_record(scores):
    for (model, task, seed), _ in scores.groupby(["model", "task", "seed"]):
        base = RESULTS / "predictions" / model / task / f"seed{seed}"
        run = json.loads(base.with_suffix(".run.json").read_text(encoding="utf-8"))
        assert run["runinfo"]["profile"] == PUBLISHED and run["runinfo"]["wall_time_s"] > 0, base
        assert run["runinfo"]["hardware"] and run["runinfo"]["git_commit"] != "unknown", base
        # the per-example predictions (.npz) are not committed (too large); loyalty.csv holds what they gave


def test_loyalty_has_every_pair_task_and_seed(scores):
    loyalty = pool_replicas(read_loyalty(PUBLISHED, RESULTS))  # a student's distillations as its runs, like scores
    expected = {
        "label_loyalty": TAGGING_TASKS + CLASSIFICATION_TASKS,
        "prob_loyalty": TAGGING_TASKS + CLASSIFICATION_TASKS,
        "regression_loyalty": REGRESSION_TASKS,
    }
    have = set(zip(loyalty.student, loyalty.teacher, loyalty.task, loyalty.seed, loyalty.metric))
    missing = [
        (s, t, task, seed, metric)
        for s, t in loyalty_pairs()
        for metric, tasks in expected.items()
        for task in tasks
        for seed in sorted(scores.loc[scores["model"] == s, "seed"].unique())
        if (s, t, task, seed, metric) not in have
    ]
    assert not missing, f"{len(missing)} loyalty values missing, e.g. {missing[:5]}"
    assert ("distilmulti-bert-base-ro", ENSEMBLE) in set(zip(loyalty.student, loyalty.teacher))
    assert loyalty["value"].between(-1, 1).all()


def test_every_chapter_was_executed_by_one_recorded_run():
    record = pipeline_record(PUBLISHED, RESULTS)
    assert list(record["step"]) == [s.name for s in plan(PUBLISHED)], "an executed chapter is missing"
    assert not record["failed"].any()
    assert (record["commit"] != "unknown").all() and (record["hardware"] != "unknown").all()
    assert not record["commit"].str.endswith("+dirty").any(), "a chapter was executed from uncommitted code"
    assert (record["wall_s"] > 0).all()


def check_loyalty_recomputes_from_compact(profile: str, results) -> str:
    """The rule above, for one results folder; returns which branch applied ("legacy" or "recomputed")."""
    cfg = read_loyalty_config(profile, results)
    started = [r["runinfo"]["started"] for r in run_records(profile, results) if r["config"]["model"] in MODEL_KEYS]
    rerun = cfg["format_version"] >= FORMAT_VERSION or any(s[:10] >= COMPACT_SINCE for s in started)
    if not rerun:
        # the legacy published run: loyalty.csv came from full predictions that were never committed, and
        # nothing in the folder pretends otherwise (the loyalty chapter says it cannot be recomputed)
        assert cfg["format_version"] == 1 and not (results / COMPACT_DIR).exists()
        assert max(started) < COMPACT_SINCE
        return "legacy"
    assert cfg["format_version"] >= FORMAT_VERSION, (
        f"{results} was re-run after {COMPACT_SINCE}: recompute loyalty with `rokd loyalty --profile {profile}` "
        f"and commit {results / COMPACT_DIR}"
    )
    assert 0 < compact_size(results) <= COMPACT_BUDGET_BYTES
    again = compute_loyalty(
        profile,
        tasks=cfg["tasks"],
        seeds=cfg["seeds"],
        write=False,
        results=results,
        top_k=cfg["top_k"],
        compact_only=True,
    )
    committed = read_loyalty(profile, results)
    pd.testing.assert_frame_equal(
        again[list(committed.columns)].reset_index(drop=True), committed, check_dtype=False, rtol=1e-9, atol=0
    )
    return "recomputed"


def test_loyalty_recomputes_from_the_committed_compact_predictions():
    branch = check_loyalty_recomputes_from_compact(PUBLISHED, RESULTS)
    assert branch in {"legacy", "recomputed"}


def test_the_recompute_check_itself_on_a_rerun_folder(tmp_path):
    """The check's re-run branch, on a synthetic folder laid out like a re-run published profile."""
    import shutil

    from loyalty_fixtures import write_synthetic_predictions

    res = tmp_path / "smoke"
    tasks = ("upos", "sts")
    write_synthetic_predictions(res, tasks=tasks, seeds=(1, 2), n=16)
    compute_loyalty("smoke", tasks=tasks, seeds=[1, 2], results=res)
    shutil.rmtree(res / "predictions")  # as committed: no full files
    assert check_loyalty_recomputes_from_compact("smoke", res) == "recomputed"
    committed = read_loyalty("smoke", res)
    committed.loc[0, "value"] += 0.01  # a hand-edited number is caught
    committed.to_csv(res / "loyalty.csv", index=False)
    with pytest.raises(AssertionError):
        check_loyalty_recomputes_from_compact("smoke", res)
