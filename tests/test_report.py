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


def test_provenance_summary_condenses_kinds_and_notes():
    import pandas as pd

    from rokd.report import provenance_summary

    rows = []
    for split, kind, used, avail in (("train", "rebuilt", 256, 8043), ("validation", "official", 128, 752), ("test", "official", 128, 729)):
        rows.append({"task": "UPOS", "split": split, "kind": kind, "source": "s", "note": "rebuilt from Rodna" if kind == "rebuilt" else "",
                     "examples used": used, "available": avail, "max_length": 64, "truncated/split": 0})
    for split in ("train", "validation", "test"):
        rows.append({"task": "NER", "split": split, "kind": "substitute", "source": "s", "note": "re-split of valid+test",
                     "examples used": 10, "available": 20, "max_length": 64, "truncated/split": 0})
    table, notes = provenance_summary(pd.DataFrame(rows))
    assert list(table.index) == ["UPOS", "NER"] and list(table.columns) == ["train", "validation", "test"]
    assert table.loc["UPOS", "train"] == "rebuilt (256 of 8,043)"
    assert notes == ["UPOS train: rebuilt from Rodna", "NER train, validation, test: re-split of valid+test"]


def test_model_stats_measures_built_models(tmp_path, monkeypatch):
    import json

    import torch
    from transformers import BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM

    from rokd.report import model_stats

    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=32)
                    ).save_pretrained(tmp_path / "artifacts" / "smoke" / "teachers" / "bert-base-ro")
    DistilBertForMaskedLM(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                                           max_position_embeddings=32)
                          ).save_pretrained(tmp_path / "artifacts" / "smoke" / "students" / "distil-bert-base-ro")
    stats = model_stats("smoke", batch_size=2, seq_length=16, rounds=2, results=tmp_path / "results",
                        min_round_s=0.01)
    assert list(stats["key"]) == ["bert-base-ro", "distil-bert-base-ro"]  # the others are not built
    assert stats.loc["BERT-base-ro", "layers"] == 2 and stats.loc["Distil-BERT-base-ro", "layers"] == 1
    assert stats.loc["BERT-base-ro", "params_M"] > stats.loc["Distil-BERT-base-ro", "params_M"] > 0
    assert stats.loc["Distil-BERT-base-ro", "disk_MB"] > 0
    s = stats.loc["Distil-BERT-base-ro"]
    assert s["speedup_vs_teacher"] == pytest.approx(s["seq_per_s"] / stats.loc["BERT-base-ro", "seq_per_s"])
    saved = json.loads((tmp_path / "results" / "model_stats.json").read_text())
    assert [r["key"] for r in saved] == ["bert-base-ro", "distil-bert-base-ro"]


def _stats_frame(params: dict[str, float], speedups: dict[str, float]):
    import pandas as pd

    from rokd.models.registry import DISPLAY_NAMES

    return pd.DataFrame([{"model": DISPLAY_NAMES[k], "key": k, "params_M": v, "speedup_vs_teacher": speedups.get(k)}
                         for k, v in params.items()]).set_index("model")


def test_findings_check_each_claim_against_the_run(synthetic):
    from rokd.report import findings

    scores = load_scores("unit", synthetic)
    # students 40 % / 35.6 % / 40 % smaller; speed-ups 1.9-2.1x
    stats = _stats_frame({"bert-base-ro": 10.0, "robert-base": 9.0, "distil-bert-base-ro": 6.0,
                          "distil-robert-base": 5.8, "distilmulti-bert-base-ro": 6.0},
                         {"distil-bert-base-ro": 2.1, "distil-robert-base": 1.9, "distilmulti-bert-base-ro": 2.0})
    f = findings(scores, stats).set_index("claim")
    size = f.loc["students are ~35 % smaller (30–40 %)"]
    assert size.ours == "40.0 %, 35.6 %, 40.0 %" and size.verdict == "holds"
    assert f.loc["students are ~2x as fast (≥ 1.6x)"].ours == "1.90–2.10x"
    # synthetic retention: 72/80 = 90 %, 81/90 = 90 %, 76/80 = 95 %, 76/90 = 84.4 % -> below 95 %
    keep = f.loc["students keep most of their teachers' score (mean retention ≥ 95 %)"]
    assert keep.ours == "84.4–95.0 %" and keep.verdict == "does not hold"
    # DistilMulti - Distil-BERT-base-ro = +4 points on every task, seed noise 1 point -> not "little"
    second = f.loc["a second teacher changes little (mean difference within seed noise)"]
    assert second.ours == "mean +4.00 (noise ±1.00), better on 7/7 tasks" and second.verdict == "does not hold"


def test_findings_without_model_stats_and_seed_spread(synthetic):
    from rokd.report import findings, seed_spread

    scores = load_scores("unit", synthetic)
    f = findings(scores, None)
    assert len(f) == 2 and not f["claim"].str.contains("smaller").any()  # size/speed need built models
    spread = seed_spread(scores)
    assert spread.loc["BERT-base-ro", "median std"] == pytest.approx(1.0) and spread.loc["BERT-base-ro", "seeds"] == 3


def test_pipeline_record_reads_executed_notebooks(tmp_path):
    import json

    from rokd.report import pipeline_record
    from rokd.runinfo import RunInfo

    info = RunInfo("smoke", "00_data", git_commit="0123abcd", hardware="Test CPU, 2 cores", torch_version="2.13.0",
                   started="2026-01-01T00:00:00+00:00", wall_time_s=3.0)
    nb = {"metadata": {"papermill": {"start_time": "2026-01-01T00:00:00.5", "duration": 4.25, "exception": None}},
          "cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data",
                                                       "data": {"text/markdown": [info.markdown()]}}]}]}
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_data.ipynb").write_text(json.dumps(nb))
    rec = pipeline_record("smoke", tmp_path)
    assert list(rec["step"]) == ["00_data"]  # steps without an executed notebook are left out
    row = rec.iloc[0]
    assert (row.wall_s, row.commit, row.hardware, row.started, row.failed) == (4.25, "0123abcd", "Test CPU, 2 cores",
                                                                                 "2026-01-01 00:00:00", False)
    assert list(pipeline_record("smoke", tmp_path, upstream_of="02_distill-distil-bert-base-ro")["step"]) == ["00_data"]
    assert pipeline_record("smoke", tmp_path, upstream_of="00_data").empty
    with pytest.raises(ValueError, match="unknown step"):
        pipeline_record("smoke", tmp_path, upstream_of="99_nothing")


def test_runinfo_markdown_round_trip():
    from rokd.runinfo import RunInfo

    info = RunInfo("mini", "x", seed=2, git_commit="abc+dirty", hardware="AMD EPYC 7B13, 2 cores",
                   torch_version="2.13.0+cpu", started="2026-11-24T18:00:00+00:00", wall_time_s=12.0)
    back = RunInfo.from_markdown(info.markdown())
    assert (back.profile, back.seed, back.git_commit, back.hardware, back.torch_version, back.wall_time_s) == (
        "mini", 2, "abc+dirty", "AMD EPYC 7B13, 2 cores", "2.13.0+cpu", 12.0)
    with pytest.raises(ValueError, match="not a RunInfo line"):
        RunInfo.from_markdown("no such line")


def test_discussion_follows_the_verdicts(synthetic):
    from rokd.profiles import load_profile
    from rokd.report import discussion, findings, low_score_tasks

    scores = load_scores("unit", synthetic)
    stats = _stats_frame({"bert-base-ro": 10.0, "robert-base": 9.0, "distil-bert-base-ro": 6.5,
                          "distil-robert-base": 5.8, "distilmulti-bert-base-ro": 6.5},
                         {"distil-bert-base-ro": 2.1, "distil-robert-base": 1.9, "distilmulti-bert-base-ro": 2.0})
    text = discussion(scores, findings(scores, stats), load_profile("mini"))
    assert "**Size and speed** (hold)" in text
    # retention 84.4-95.0 % fails: the hypothesis names the profile's shapes and steps
    assert "**Retention does not hold at this scale**" in text and "a 3-layer student of a 6-layer miniature teacher" in text
    assert "1,000 distillation steps" in text
    assert "**The second teacher matters here**: mean +4.00" in text
    assert low_score_tasks(scores) == [] and low_score_tasks(scores, below=95.0) == ["UPOS", "XPOS", "NER", "SAPN", "SAR", "DI", "STS"]
