"""The results tables on a synthetic scores.csv whose means and stds are known."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from rokd.paper import HEADLINE_METRIC, PAPER_SCORES, TASK_COLUMNS
from rokd.report import (
    ablation_table,
    load_scores,
    plot_retention,
    plot_scores,
    results_table,
    retention_table,
    side_by_side,
    split_provenance_table,
    summary,
)
from rokd.tasks.scores import merge_scores


@pytest.fixture
def synthetic(tmp_path):
    path = tmp_path / "scores.csv"
    base = {"bert-base-ro": 0.80, "robert-base": 0.90, "distil-bert-base-ro": 0.72,
            "distil-robert-base": 0.81, "distilmulti-bert-base-ro": 0.76}
    for model, v in base.items():
        for task in TASK_COLUMNS:
            for seed, delta in ((1, -0.01), (2, 0.0), (3, 0.01)):
                # headline metric = base +- 0.01 (mean base, sample std 0.01); a distractor metric too.
                merge_scores(path, model, task, seed, {HEADLINE_METRIC[task]: v + delta, "distractor": 0.0123})
    return tmp_path


def test_summary_and_paper_style_table(synthetic):
    scores = load_scores("unit", synthetic)
    s = summary(scores)
    row = s[(s.model == "bert-base-ro") & (s.task == "ner")].iloc[0]
    assert row["mean"] == pytest.approx(80.0) and row["std"] == pytest.approx(1.0) and row["n"] == 3
    table = results_table(scores)
    assert list(table.index) == ["BERT-base-ro", "RoBERT-base", "Distil-BERT-base-ro", "Distil-RoBERT-base",
                                 "DistilMulti-BERT-base-ro"]
    assert list(table.columns) == ["UPOS", "XPOS", "NER", "SAPN", "SAR", "DI", "STS"]
    assert table.loc["RoBERT-base", "STS"] == "90.00 ± 1.00"
    both = side_by_side(scores)
    assert both.loc["BERT-base-ro", ("UPOS", "paper")] == f"{PAPER_SCORES['bert-base-ro']['upos']:.2f}"
    assert both.loc["BERT-base-ro", ("UPOS", "ours")] == "80.00 ± 1.00"


def test_single_seed_and_missing_cells(tmp_path):
    merge_scores(tmp_path / "scores.csv", "bert-base-ro", "sapn", 1, {"accuracy": 0.5, "macro_f1": 0.4})
    table = results_table(load_scores("unit", tmp_path))
    assert table.loc["BERT-base-ro", "SAPN"] == "50.00"  # accuracy is SAPN's headline; no ± with one seed
    assert table.loc["RoBERT-base", "SAPN"] == "n/a"
    with pytest.raises(FileNotFoundError, match="run the evaluation"):
        load_scores("unit", tmp_path / "empty")


def test_retention_and_ablation(synthetic):
    scores = load_scores("unit", synthetic)
    r = retention_table(scores)
    pairs = set(zip(r.student, r.teacher))
    assert pairs == {("distil-bert-base-ro", "bert-base-ro"), ("distil-robert-base", "robert-base"),
                     ("distilmulti-bert-base-ro", "bert-base-ro"), ("distilmulti-bert-base-ro", "robert-base")}
    row = r[(r.student == "distilmulti-bert-base-ro") & (r.teacher == "robert-base") & (r.task == "upos")].iloc[0]
    assert row.ours == pytest.approx(100 * 76 / 90)
    assert row.paper == pytest.approx(100 * PAPER_SCORES["distilmulti-bert-base-ro"]["upos"] / PAPER_SCORES["robert-base"]["upos"])
    mean = r[(r.student == "distil-bert-base-ro") & (r.task == "mean")].iloc[0]
    assert mean.ours == pytest.approx(90.0)
    ab = ablation_table(scores)
    assert ab.loc["NER", "ours"] == pytest.approx(4.0)
    assert ab.loc["NER", "paper"] == pytest.approx(83.22 - 83.35)


def test_plots_have_labels(synthetic):
    scores = load_scores("unit", synthetic)
    for ax in (plot_scores(scores), plot_retention(scores)):
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_provenance_table_empty_without_runs(tmp_path):
    assert split_provenance_table("unit", tmp_path).empty
