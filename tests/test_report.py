"""The results tables, findings and records on a synthetic scores.csv whose means and stds are known."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import math

import pytest

from rokd.paper import PAPER_SCORES, TASK_COLUMNS
from rokd.report import (
    CLAIMS,
    NO_GAIN,
    ablation_table,
    load_scores,
    plot_retention,
    plot_scores,
    results_table,
    retention_table,
    retention_wide,
    side_by_side,
    split_provenance_table,
    summary,
)
from rokd.tasks.metrics import headline_metric
from rokd.tasks.scores import merge_scores

MODELS = ["BERT-base-ro", "RoBERT-base", "Distil-BERT-base-ro", "Distil-RoBERT-base", "DistilMulti-BERT-base-ro"]


@pytest.fixture
def synthetic(tmp_path):
    path = tmp_path / "scores.csv"
    base = {
        "bert-base-ro": 0.80,
        "robert-base": 0.90,
        "distil-bert-base-ro": 0.72,
        "distil-robert-base": 0.81,
        "distilmulti-bert-base-ro": 0.76,
    }
    for model, v in base.items():
        for task in TASK_COLUMNS:
            for seed, delta in ((1, -0.01), (2, 0.0), (3, 0.01)):
                # headline metric = base +- 0.01 (mean base, sample std 0.01); a distractor metric too.
                merge_scores(path, model, task, seed, {headline_metric(task): v + delta, "distractor": 0.0123})
    return tmp_path


def test_summary_and_paper_style_table(synthetic):
    scores = load_scores("unit", synthetic)
    s = summary(scores)
    row = s[(s.model == "bert-base-ro") & (s.task == "ner")].iloc[0]
    assert row["mean"] == pytest.approx(80.0) and row["std"] == pytest.approx(1.0) and row["n"] == 3
    table = results_table(scores)
    # baselines first, then the paper's five models, then the controls ('not run' here)
    assert list(table.index) == [
        "Baseline: majority",
        "Baseline: lexical",
        *MODELS,
        "Control: random init",
        "Control: init only",
    ]
    assert (table.loc["Control: init only"] == "not run").all()
    assert list(table.columns) == ["UPOS", "XPOS", "NER", "SAPN", "SAR", "DI", "STS"]
    assert table.loc["RoBERT-base", "STS"] == "90.00 ± 1.00"
    both = side_by_side(scores)
    assert both.loc["BERT-base-ro", ("UPOS", "paper")] == f"{PAPER_SCORES['bert-base-ro']['upos']:.2f}"
    assert both.loc["BERT-base-ro", ("UPOS", "ours")] == "80.00 ± 1.00"


def test_single_seed_and_missing_cells(tmp_path):
    merge_scores(tmp_path / "scores.csv", "bert-base-ro", "sapn", 1, {"accuracy": 0.5, "macro_f1": 0.4})
    table = results_table(load_scores("unit", tmp_path))
    assert table.loc["BERT-base-ro", "SAPN"] == "50.00"  # accuracy is SAPN's headline; no ± with one seed
    assert table.loc["BERT-base-ro", "UPOS"] == "n/a" and table.loc["RoBERT-base", "SAPN"] == "not run"
    with pytest.raises(FileNotFoundError, match="run the evaluation"):
        load_scores("unit", tmp_path / "empty")


def test_retention_and_ablation(synthetic):
    scores = load_scores("unit", synthetic)
    r = retention_table(scores)
    pairs = set(zip(r.student, r.teacher))
    assert pairs == {
        ("distil-bert-base-ro", "bert-base-ro"),
        ("distil-robert-base", "robert-base"),
        ("distilmulti-bert-base-ro", "bert-base-ro"),
        ("distilmulti-bert-base-ro", "robert-base"),
    }
    assert set(r.task) == set(TASK_COLUMNS)  # no mean over tasks
    row = r[(r.student == "distilmulti-bert-base-ro") & (r.teacher == "robert-base") & (r.task == "upos")].iloc[0]
    assert row.ratio == pytest.approx(100 * 76 / 90)
    assert row.paper == pytest.approx(
        100 * PAPER_SCORES["distilmulti-bert-base-ro"]["upos"] / PAPER_SCORES["robert-base"]["upos"]
    )
    assert math.isnan(row.retained_gain) and row.gain_note == "no control-random-init"
    ab = ablation_table(scores)
    # +4 points on every seed: paired SE 0
    assert ab.loc["NER", "ours"] == pytest.approx(4.0) and ab.loc["NER", "se"] == pytest.approx(0.0)
    assert ab.loc["NER", "paper"] == pytest.approx(83.22 - 83.35)


def _with(path, model, values, tasks=TASK_COLUMNS):
    for task in tasks:
        for seed, v in enumerate(values, start=1):
            merge_scores(path / "scores.csv", model, task, seed, {headline_metric(task): v})


def test_retained_gain_only_where_the_teacher_beats_the_control(synthetic):
    # control 0.70 +- 0.01 per seed: BERT-base-ro (0.80) gains 10 points everywhere beyond its noise;
    # RoBERT-base (0.90) too. A second folder where the control equals the teacher: no measurable gain.
    _with(synthetic, "control-random-init", [0.70, 0.70, 0.70])
    scores = load_scores("unit", synthetic)
    r = retention_table(scores).set_index(["student", "teacher", "task"])
    row = r.loc[("distil-bert-base-ro", "bert-base-ro", "sts")]
    assert row.retained_gain == pytest.approx(100 * (72 - 70) / (80 - 70)) and row.gain_note == ""
    wide = retention_wide(scores)
    assert wide.loc[("Distil-BERT-base-ro / BERT-base-ro", "retained gain"), "STS"] == "20"
    assert wide.loc[("Distil-BERT-base-ro / BERT-base-ro", "ratio"), "STS"] == f"90.0 ({100 * 80.57 / 79.94:.1f})"
    _with(synthetic, "control-random-init", [0.81, 0.80, 0.79])  # = BERT-base-ro's scores, seed by seed
    r = retention_table(load_scores("unit", synthetic)).set_index(["student", "teacher", "task"])
    row = r.loc[("distil-bert-base-ro", "bert-base-ro", "ner")]
    assert math.isnan(row.retained_gain) and row.gain_note == NO_GAIN


def test_plots_draw_the_numbers_of_the_tables(synthetic):
    """The figures show the tables' values: one bar per model and task at its mean headline score (x100), and
    one retention bar per pair and task at student / teacher in percent, the paper's ratio ticked beside it."""
    import matplotlib.pyplot as plt

    scores = load_scores("unit", synthetic)
    ax = plot_scores(scores)
    heights = [round(b.get_height(), 6) for b in ax.patches]
    assert heights == [round(100 * v, 6) for v in (0.80, 0.90, 0.72, 0.81, 0.76) for _ in TASK_COLUMNS]
    plt.close(ax.figure)
    ax = plot_retention(scores)
    heights = [round(b.get_height(), 4) for b in ax.patches]
    assert heights[: len(TASK_COLUMNS)] == [round(100 * 0.72 / 0.80, 4)] * len(TASK_COLUMNS)  # Distil-BERT / BERT
    ticks = list(ax.collections[0].get_offsets()[:, 1])
    assert ticks == pytest.approx(
        [100 * PAPER_SCORES["distil-bert-base-ro"][t] / PAPER_SCORES["bert-base-ro"][t] for t in TASK_COLUMNS]
    )
    plt.close(ax.figure)


def test_provenance_table_empty_without_runs(tmp_path):
    assert split_provenance_table("unit", tmp_path).empty


def test_provenance_summary_condenses_kinds_and_notes():
    import pandas as pd

    from rokd.report import provenance_summary

    rows = []
    for split, kind, used, avail in (
        ("train", "rebuilt", 256, 8043),
        ("validation", "official", 128, 752),
        ("test", "official", 128, 729),
    ):
        rows.append(
            {
                "task": "UPOS",
                "split": split,
                "kind": kind,
                "source": "s",
                "note": "rebuilt from Rodna" if kind == "rebuilt" else "",
                "examples used": used,
                "available": avail,
                "max_length": 64,
                "truncated/split": 0,
            }
        )
    for split in ("train", "validation", "test"):
        rows.append(
            {
                "task": "NER",
                "split": split,
                "kind": "substitute",
                "source": "s",
                "note": "re-split of valid+test",
                "examples used": 10,
                "available": 20,
                "max_length": 64,
                "truncated/split": 0,
            }
        )
    table, notes = provenance_summary(pd.DataFrame(rows))
    assert list(table.index) == ["UPOS", "NER"] and list(table.columns) == ["train", "validation", "test"]
    assert table.loc["UPOS", "train"] == "rebuilt (256 of 8,043)"
    assert notes == ["UPOS train: rebuilt from Rodna", "NER train, validation, test: re-split of valid+test"]


def test_model_stats_measures_built_models(tmp_path, monkeypatch):
    import json

    import pandas as pd
    import torch
    from transformers import BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM

    from rokd.report import model_stats
    from rokd.tasks.speed import measure_model_stats

    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    torch.manual_seed(0)
    BertForMaskedLM(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    ).save_pretrained(tmp_path / "artifacts" / "smoke" / "teachers" / "bert-base-ro")
    DistilBertForMaskedLM(
        DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=32)
    ).save_pretrained(tmp_path / "artifacts" / "smoke" / "students" / "distil-bert-base-ro")
    assert model_stats("smoke", results=tmp_path / "results").empty  # nothing measured yet
    stats = measure_model_stats(
        "smoke", batch_size=2, seq_length=16, rounds=2, results=tmp_path / "results", min_round_s=0.01
    )
    assert list(stats["key"]) == ["bert-base-ro", "distil-bert-base-ro"]  # the others are not built
    assert stats.loc["BERT-base-ro", "layers"] == 2 and stats.loc["Distil-BERT-base-ro", "layers"] == 1
    assert stats.loc["BERT-base-ro", "params_M"] > stats.loc["Distil-BERT-base-ro", "params_M"] > 0
    assert stats.loc["Distil-BERT-base-ro", "disk_MB"] > 0
    s = stats.loc["Distil-BERT-base-ro"]
    assert s["speedup_vs_teacher"] == pytest.approx(s["seq_per_s"] / stats.loc["BERT-base-ro", "seq_per_s"])
    saved = json.loads((tmp_path / "results" / "model_stats.json").read_text())
    assert [r["key"] for r in saved] == ["bert-base-ro", "distil-bert-base-ro"]
    # The results chapter reads the record back, also where the models are gone.
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "elsewhere"))
    pd.testing.assert_frame_equal(model_stats("smoke", results=tmp_path / "results"), stats, check_dtype=False)


def _stats_frame(params: dict[str, float], speedups: dict[str, float]):
    import pandas as pd

    from rokd.models.registry import DISPLAY_NAMES

    return pd.DataFrame(
        [
            {"model": DISPLAY_NAMES[k], "key": k, "params_M": v, "speedup_vs_teacher": speedups.get(k)}
            for k, v in params.items()
        ]
    ).set_index("model")


def test_findings_check_each_claim_per_task(synthetic):
    from rokd.report import findings, verdict_counts

    scores = load_scores("unit", synthetic)
    # students 40 % / 35.6 % / 40 % smaller; speed-ups 1.9-2.1x
    stats = _stats_frame(
        {
            "bert-base-ro": 10.0,
            "robert-base": 9.0,
            "distil-bert-base-ro": 6.0,
            "distil-robert-base": 5.8,
            "distilmulti-bert-base-ro": 6.0,
        },
        {"distil-bert-base-ro": 2.1, "distil-robert-base": 1.9, "distilmulti-bert-base-ro": 2.0},
    )
    f = findings(scores, stats)
    size = f[f.id == "students-smaller"].iloc[0]
    assert size.ours == "40.0 %, 35.6 %, 40.0 %" and size.verdict == "holds"
    assert f[f.id == "students-faster"].iloc[0].ours == "1.90–2.10x"
    # no controls in this folder: every claim about distillation is inconclusive, with the reason
    dist = f[f.id.isin(["student-keeps-97pc", "distillation-beats-init-only", "second-teacher-changes-little"])]
    assert len(dist) == (4 + 2 + 1) * 7 and (dist.verdict == "inconclusive").all()
    assert dist.reason.str.contains("no control-random-init scores").all()
    # the numbers are still shown: DistilMulti - Distil-BERT-base-ro = +4 points on every seed
    second = f[(f.id == "second-teacher-changes-little") & (f.task == "NER")].iloc[0]
    assert second.ours == "+4.00" and second["diff"] == pytest.approx(4.0)
    counts = verdict_counts(f)
    assert counts.loc["teacher-beats-random-init", "inconclusive"] == 14


def test_findings_with_controls_and_baselines(synthetic):
    from rokd.report import findings

    _with(synthetic, "control-random-init", [0.70, 0.70, 0.70])
    _with(synthetic, "control-init-only", [0.72, 0.72, 0.72])
    _with(synthetic, "baseline-lexical", [0.85, 0.85, 0.85])
    f = findings(load_scores("unit", synthetic))
    gain = f[f.id == "teacher-beats-random-init"]
    assert (gain.verdict == "holds").all() and len(gain) == 14
    keep = f[f.id == "student-keeps-97pc"].set_index(["subject", "task"])
    # 72 vs 0.97 * 80 = 77.6 on every seed (SE 0): does not hold; 81 vs 0.97 * 90 = 87.3: does not hold
    assert keep.loc[("Distil-BERT-base-ro / BERT-base-ro", "UPOS"), "verdict"] == "does not hold"
    assert keep.loc[("Distil-BERT-base-ro / BERT-base-ro", "UPOS"), "ours"] == "90.0 %"
    # the grid's difference is against the threshold, as the claim's `difference` says: 72 - 77.6 = -5.6 points
    assert keep.loc[("Distil-BERT-base-ro / BERT-base-ro", "UPOS"), "diff"] == pytest.approx(-5.6)
    assert CLAIMS["student-keeps-97pc"].difference.startswith("student − 0.97 × teacher")
    init = f[f.id == "distillation-beats-init-only"].set_index(["subject", "task"])
    # Distil-BERT-base-ro 72 +- 1 vs 72: inside the noise; DistilMulti 76 +- 1 vs 72: beyond it
    assert init.loc[("Distil-BERT-base-ro vs Control: init only", "SAR"), "verdict"] == "inconclusive"
    assert init.loc[("DistilMulti-BERT-base-ro vs Control: init only", "SAR"), "verdict"] == "holds"
    # +4 points every seed: outside +-1 -> the paper's "changes little" does not hold
    assert (f[f.id == "second-teacher-changes-little"].verdict == "does not hold").all()
    lex = f[f.id == "model-beats-lexical-baseline"].set_index(["subject", "task"])
    assert lex.loc[("RoBERT-base vs Baseline: lexical", "DI"), "verdict"] == "holds"
    assert lex.loc[("BERT-base-ro vs Baseline: lexical", "DI"), "verdict"] == "does not hold"


def test_findings_without_model_stats_and_seed_spread(synthetic):
    from rokd.report import findings, seed_spread

    scores = load_scores("unit", synthetic)
    f = findings(scores, None)
    assert not f.id.isin(["students-smaller", "students-faster"]).any()  # size/speed need built models
    spread = seed_spread(scores)
    assert spread.loc["BERT-base-ro", "median std"] == pytest.approx(1.0) and spread.loc["BERT-base-ro", "seeds"] == 3


def test_pipeline_record_reads_executed_notebooks(tmp_path):
    import json

    from rokd.report import pipeline_record
    from rokd.runinfo import RunInfo

    info = RunInfo(
        "smoke",
        "00_data",
        git_commit="0123abcd",
        hardware="Test CPU, 2 cores",
        torch_version="2.13.0",
        started="2026-01-01T00:00:00+00:00",
        wall_time_s=3.0,
    )
    nb = {
        "metadata": {"papermill": {"start_time": "2026-01-01T00:00:00.5", "duration": 4.25, "exception": None}},
        "cells": [
            {
                "cell_type": "code",
                "outputs": [{"output_type": "display_data", "data": {"text/markdown": [info.markdown()]}}],
            }
        ],
    }
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_data.ipynb").write_text(json.dumps(nb))
    rec = pipeline_record("smoke", tmp_path)
    assert list(rec["step"]) == ["00_data"]  # steps without an executed notebook are left out
    row = rec.iloc[0]
    assert (row.wall_s, row.commit, row.hardware, row.started, row.failed) == (
        4.25,
        "0123abcd",
        "Test CPU, 2 cores",
        "2026-01-01 00:00:00",
        False,
    )
    assert list(pipeline_record("smoke", tmp_path, upstream_of="02_distill-distil-bert-base-ro")["step"]) == ["00_data"]
    assert pipeline_record("smoke", tmp_path, upstream_of="00_data").empty
    with pytest.raises(ValueError, match="unknown step"):
        pipeline_record("smoke", tmp_path, upstream_of="99_nothing")


def test_runinfo_markdown_round_trip():
    from rokd.runinfo import RunInfo

    info = RunInfo(
        "mini",
        "x",
        seed=2,
        git_commit="abc+dirty",
        hardware="AMD EPYC 7B13, 2 cores",
        torch_version="2.13.0+cpu",
        started="2026-11-24T18:00:00+00:00",
        wall_time_s=12.0,
    )
    back = RunInfo.from_markdown(info.markdown())
    assert (back.profile, back.seed, back.git_commit, back.hardware, back.torch_version, back.wall_time_s) == (
        "mini",
        2,
        "abc+dirty",
        "AMD EPYC 7B13, 2 cores",
        "2.13.0+cpu",
        12.0,
    )
    with pytest.raises(ValueError, match="not a RunInfo line"):
        RunInfo.from_markdown("no such line")


def test_discussion_follows_the_verdicts(synthetic):
    from rokd.profiles import load_profile
    from rokd.report import discussion, findings, low_score_tasks

    scores = load_scores("unit", synthetic)
    stats = _stats_frame(
        {
            "bert-base-ro": 10.0,
            "robert-base": 9.0,
            "distil-bert-base-ro": 6.5,
            "distil-robert-base": 5.8,
            "distilmulti-bert-base-ro": 6.5,
        },
        {"distil-bert-base-ro": 2.1, "distil-robert-base": 1.9, "distilmulti-bert-base-ro": 2.0},
    )
    text = discussion(scores, findings(scores, stats), load_profile("mini"))
    assert "**Size and speed** (hold)" in text
    assert "**What pretraining gave cannot be read from this run**" in text and "no finding about distillation" in text
    assert "**Retention (≥ 97 % of the teacher)**: not testable in this run" in text
    _with(synthetic, "control-random-init", [0.70, 0.70, 0.70])
    _with(synthetic, "baseline-lexical", [0.95, 0.95, 0.95])
    scores = load_scores("unit", synthetic)
    text = discussion(scores, findings(scores, stats), load_profile("mini"))
    assert "a teacher beats the randomly initialised control" in text and "on 14 of 14" in text
    # retention fails beyond the noise: the hypothesis names the profile's shapes
    assert "does not hold for Distil-BERT-base-ro / BERT-base-ro on UPOS, XPOS, NER, SAPN, SAR, DI, STS;" in text
    assert "a 3-layer student of a 6-layer miniature teacher" in text
    assert (
        "**The second teacher** (tested on 7 of 7 cells): changes little (within ±1 point) nowhere; matters (beyond "
        "±1 point) for DistilMulti" in text
    )
    assert "every fine-tuned model, teachers and controls included, scores *below* it" in text  # UPOS..SAPN < 85
    assert low_score_tasks(scores) == [] and low_score_tasks(scores, below=95.0) == [
        "UPOS",
        "XPOS",
        "NER",
        "SAPN",
        "SAR",
        "DI",
        "STS",
    ]


def test_discussion_is_keyed_on_claim_ids_not_wording(synthetic):
    from rokd.report import CLAIMS, DISCUSSION, discussion, findings

    assert set(DISCUSSION) <= set(CLAIMS)
    scores = load_scores("unit", synthetic)
    found = findings(scores)
    reworded = found.assign(claim="reworded claim text")
    assert discussion(scores, reworded) == discussion(scores, found)


def test_mini_copy_with_baselines_is_honest_about_missing_controls(tmp_path):
    """The published mini scores plus synthetic baseline rows: every distillation verdict is inconclusive
    with the reason, and the chapter says in plain words that the models are below the baseline."""
    import shutil

    from rokd.paths import REPO_ROOT
    from rokd.report import baseline_sentence, discussion, findings, missing_references

    shutil.copy(REPO_ROOT / "results" / "mini" / "scores.csv", tmp_path / "scores.csv")
    _with(tmp_path, "baseline-lexical", [0.95, 0.95, 0.95])  # above every mini model on every task
    _with(tmp_path, "baseline-majority", [0.30, 0.30, 0.30])
    scores = load_scores("mini", tmp_path)
    assert missing_references(scores) == ["control-random-init", "control-init-only"]
    f = findings(scores)
    dist = f[f.id.isin(["student-keeps-97pc", "distillation-beats-init-only", "second-teacher-changes-little"])]
    assert (dist.verdict == "inconclusive").all() and dist.reason.str.contains("no control-random-init").all()
    text = discussion(scores, f)
    assert "states **no finding about distillation**" in text
    assert (
        "On **UPOS, XPOS, NER, SAPN, SAR, DI, STS**, every fine-tuned model, teachers included, scores *below*" in text
    )
    assert "beats **Baseline: lexical** on 0 of 7 tasks; every model scores below it on UPOS" in baseline_sentence(
        scores
    )


def test_compute_record_counts_all_the_compute(tmp_path, monkeypatch):
    """Teacher builds (quality.json), distillations (summary.json, else the chapter's own wall time) and every
    fine-tuning's run.json, summed per model, including runs made outside a chapter."""
    import json

    from rokd.report import compute_record, compute_summary
    from rokd.runinfo import RunInfo

    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    art, res = tmp_path / "artifacts" / "smoke", tmp_path / "results"
    (art / "teachers" / "bert-base-ro").mkdir(parents=True)
    (art / "teachers" / "bert-base-ro" / "quality.json").write_text(
        json.dumps({"train_wall_s": 100.0, "build_wall_s": 120.0})
    )
    (art / "students" / "distil-bert-base-ro").mkdir(parents=True)
    (art / "students" / "distil-bert-base-ro" / "summary.json").write_text(json.dumps({"wall_time_s": 30.0}))
    # RoBERT-base's folder is gone, but the executed teachers chapter printed its pretraining time
    (res / "notebooks").mkdir(parents=True)
    text = (
        "- **RoBERT-base**: MLM accuracy **0.1** vs 0.05 for the unigram baseline (2.0x); pretrained in 47 min on cpu."
    )
    info = RunInfo("smoke", "x", git_commit="abc", hardware="cpu", torch_version="2", wall_time_s=61.0)

    def notebook(*markdown):
        return {
            "cells": [
                {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {"text/markdown": [m]}}]}
                for m in markdown
            ]
        }

    (res / "notebooks" / "01_teachers.ipynb").write_text(json.dumps(notebook(text)))
    (res / "notebooks" / "02_distill-distil-robert-base.ipynb").write_text(json.dumps(notebook(info.markdown())))
    for model, task, seed, wall in (
        ("bert-base-ro", "sapn", 1, 10.0),
        ("bert-base-ro", "sar", 1, 5.5),
        ("control-random-init", "sapn", 1, 7.0),
    ):
        d = res / "predictions" / model / task
        d.mkdir(parents=True, exist_ok=True)
        (d / f"seed{seed}.run.json").write_text(
            json.dumps({"config": {"model": model, "task": task}, "runinfo": {"wall_time_s": wall}})
        )
    rec = compute_record("smoke", res).set_index(["work", "model"])
    assert rec.loc[("teacher pretraining", "BERT-base-ro"), "wall_s"] == 120.0
    assert rec.loc[("teacher pretraining", "RoBERT-base"), "wall_s"] == 47 * 60
    assert rec.loc[("distillation", "Distil-BERT-base-ro"), "wall_s"] == 30.0
    assert rec.loc[("distillation", "Distil-RoBERT-base"), "wall_s"] == 61.0  # the chapter's wall time
    assert math.isnan(rec.loc[("distillation", "DistilMulti-BERT-base-ro"), "wall_s"])
    assert (
        rec.loc[("fine-tuning", "BERT-base-ro"), "wall_s"] == 15.5
        and rec.loc[("fine-tuning", "BERT-base-ro"), "runs"] == 2
    )
    assert rec.loc[("fine-tuning", "Control: random init"), "wall_s"] == 7.0
    total = (120 + 47 * 60 + 30 + 61 + 15.5 + 7) / 3600
    summary = compute_summary(rec.reset_index())
    assert summary.startswith(f"**All compute behind these numbers: {total:.1f} h**")
    assert "Not recorded on this machine: distillation of DistilMulti-BERT-base-ro." in summary


def test_compute_record_says_where_the_fine_tuning_ran(tmp_path, monkeypatch):
    """Runs made on a GPU are their own rows (GPU seconds are not CPU seconds) and the summary says how much."""
    import json

    from rokd.report import compute_record, compute_summary

    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    res = tmp_path / "results"
    for task, seed, wall, hardware in (
        ("sapn", 1, 300.0, "Intel(R) Xeon(R) Processor, 2 cores"),
        ("sapn", 2, 1500.0, "Intel(R) Xeon(R) Processor, 16 cores, GPU NVIDIA H200"),
        ("sar", 2, 2100.0, "Intel(R) Xeon(R) Processor, 16 cores, GPU NVIDIA H200"),
    ):
        d = res / "predictions" / "bert-base-ro" / task
        d.mkdir(parents=True, exist_ok=True)
        record = {
            "config": {"model": "bert-base-ro", "task": task},
            "runinfo": {"wall_time_s": wall, "hardware": hardware},
        }
        (d / f"seed{seed}.run.json").write_text(json.dumps(record))
    rec = compute_record("smoke", res)
    tuned = rec[rec["work"] == "fine-tuning"].set_index("hardware")
    assert tuned.loc["Intel(R) Xeon(R) Processor, 2 cores", ["runs", "wall_s"]].tolist() == [1, 300.0]
    assert tuned.loc["Intel(R) Xeon(R) Processor, 16 cores, GPU NVIDIA H200", ["runs", "wall_s"]].tolist() == [
        2,
        3600.0,
    ]
    assert "of the total, 1.0 h ran on a GPU (NVIDIA H200)" in compute_summary(rec)


def test_replicas_are_pooled_with_their_student(tmp_path):
    from rokd.report.tables import load_scores

    rows = ["model,task,metric,seed,value"]
    rows += [f"distil-bert-base-ro,upos,accuracy,{s},0.{80 + s}" for s in (1, 2)]
    rows += [f"distil-bert-base-ro@d2,upos,accuracy,{s},0.{70 + s}" for s in (1, 2)]
    (tmp_path / "scores.csv").write_text("\n".join(rows) + "\n")
    pooled = load_scores("x", tmp_path)
    assert set(pooled["model"]) == {"distil-bert-base-ro"}
    assert sorted(pooled["seed"]) == [1, 2, 1001, 1002]
    assert set(load_scores("x", tmp_path, pool_replicas=False)["model"]) == {
        "distil-bert-base-ro",
        "distil-bert-base-ro@d2",
    }


def test_task_and_model_metadata_are_defined_once_in_the_spec():
    """rokd.spec is the one definition: the registry, the paper's column order, fine-tuning's task kinds and the
    loyalty measures' task lists are derived from it (the issue found eight partial copies, one of them wrong)."""
    from rokd import paper, spec
    from rokd.loyalty.measures import LABEL_TASKS
    from rokd.models import registry
    from rokd.tasks import metrics

    assert paper.TASK_COLUMNS == tuple(spec.TASKS) == metrics.ALL_TASKS
    assert metrics.CLASSIFICATION_TASKS == ("sapn", "sar", "di") and metrics.REGRESSION_TASKS == ("sts",)
    assert set(LABEL_TASKS) == set(spec.TASKS) - {"sts"}
    assert registry.STUDENT_TEACHERS[spec.MULTI_STUDENT] == ("bert-base-ro", "robert-base")
    assert registry.STUDENT_TEACHERS[spec.SINGLE_STUDENT] == ("bert-base-ro",)
    assert registry.CONTROL_OF == {
        spec.RANDOM_INIT_CONTROL: "bert-base-ro",
        spec.INIT_ONLY_CONTROL: spec.SINGLE_STUDENT,
    }


def test_a_model_without_paper_numbers_is_shown_without_them():
    import math

    from rokd.paper import paper_score, paper_text

    assert paper_score("bert-base-ro", "ner") == 85.88
    assert (
        math.isnan(paper_score("my-own-student", "ner")) and paper_text(paper_score("my-own-student", "ner")) == "n/a"
    )


def test_no_model_key_is_written_outside_the_spec_and_the_papers_numbers():
    """grep for the paper's model keys in rokd's code (docstrings and comments aside): only rokd/spec.py and
    rokd/paper.py name them."""
    import ast
    from pathlib import Path

    from rokd.spec import MODELS

    root = Path(__file__).resolve().parents[1] / "rokd"
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name in ("spec.py", "paper.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        found += [
            f"{path.relative_to(root)}:{n.lineno} {n.value}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and id(n) not in docs and isinstance(n.value, str) and n.value in MODELS
        ]
    assert found == []


def test_acceptance_counts_the_teachers_wins_and_checks_the_best_tagger_against_the_lexical_baseline(synthetic):
    from rokd.report import acceptance

    path = synthetic / "scores.csv"
    for task in TASK_COLUMNS:
        for seed, delta in ((1, -0.01), (2, 0.0), (3, 0.02)):
            # The control: far below both teachers on five tasks, level with them on NER and STS.
            level = task in ("ner", "sts")
            merge_scores(
                path, "control-random-init", task, seed, {headline_metric(task): (0.85 if level else 0.5) + delta}
            )
            # The lexical baseline (no seed noise): below the best model on UPOS, above it on XPOS.
            merge_scores(
                path, "baseline-lexical", task, seed, {headline_metric(task): 0.85 if task == "upos" else 0.95}
            )
    table = acceptance(load_scores("unit", synthetic)).set_index("check")
    cased = table.loc["BERT-base-ro beats Control: random init by > 2 SE"]
    assert cased["measured"].startswith("5 of 7") and cased["passed"]  # 80 vs 85 on NER/STS: no win there
    uncased = table.loc["RoBERT-base beats Control: random init by > 2 SE"]
    assert uncased["measured"].startswith("7 of 7") and uncased["passed"]  # 90 beats 85 +- noise everywhere
    upos = table.loc["best model (RoBERT-base) beats Baseline: lexical on UPOS"]
    xpos = table.loc["best model (RoBERT-base) beats Baseline: lexical on XPOS"]
    assert upos["passed"] and not xpos["passed"] and xpos["measured"].startswith("does not hold")


def test_compute_record_counts_every_sitting_of_a_resumed_run(tmp_path, monkeypatch):
    """The trainer's clock (``elapsed_s``, restored with each checkpoint) counts the sittings before a resume
    that the last sitting's own wall time (``build_wall_s``, ``timing_s``, ``wall_time_s``) leaves out."""
    import json

    from rokd.report import compute_record

    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    art, res = tmp_path / "artifacts" / "smoke", tmp_path / "results"
    teacher = art / "teachers" / "bert-base-ro"
    teacher.mkdir(parents=True)
    # Resumed at step 2 of 3: the last sitting trained 100 s and spent 20 s more (tokenizer, quality measures).
    machines = "AMD EPYC, 2 cores; Intel Xeon, 2 cores"  # the sittings' machines (rokd.models.teachers)
    quality = {"train_wall_s": 100.0, "build_wall_s": 120.0, "device": "cpu", "hardware": machines}
    (teacher / "quality.json").write_text(json.dumps(quality))
    log = [{"step": 1, "elapsed_s": 900.0}, {"step": 2, "elapsed_s": 1800.0}, {"step": 3, "elapsed_s": 1900.0}]
    (teacher / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")
    student = art / "students" / "distil-bert-base-ro"
    student.mkdir(parents=True)
    (student / "summary.json").write_text(json.dumps({"wall_time_s": 12.0, "train_time_s": 10.0}))
    (student / "train_log.jsonl").write_text(json.dumps({"step": 9, "elapsed_s": 500.0}) + "\n")
    run = res / "predictions" / "bert-base-ro" / "ner"
    run.mkdir(parents=True)
    record = {  # killed after its first validation, finished in a second sitting of 30 s (20 s of training)
        "config": {"model": "bert-base-ro", "task": "ner"},
        "history": [{"step": 5, "elapsed_s": 50.0}, {"step": 10, "elapsed_s": 400.0}],
        "timing_s": {"data": 4.0, "train_and_select": 20.0, "total": 30.0},
        "runinfo": {"wall_time_s": 30.0},
    }
    (run / "seed1.run.json").write_text(json.dumps(record))
    rec = compute_record("smoke", res).set_index(["work", "model"])
    assert rec.loc[("teacher pretraining", "BERT-base-ro"), "wall_s"] == 1900.0 + 20.0
    assert "every sitting" in rec.loc[("teacher pretraining", "BERT-base-ro"), "source"]
    assert rec.loc[("teacher pretraining", "BERT-base-ro"), "hardware"] == machines  # not just "cpu"
    assert rec.loc[("distillation", "Distil-BERT-base-ro"), "wall_s"] == 500.0 + 2.0
    assert rec.loc[("fine-tuning", "BERT-base-ro"), "wall_s"] == 400.0 + 10.0


def test_earlier_run_lesson_is_computed_from_the_kept_files(tmp_path):
    import json
    from dataclasses import replace

    from rokd.config import save_config
    from rokd.profiles import load_profile
    from rokd.report.earlier import earlier_run_lesson, earlier_runs

    assert earlier_run_lesson("mini", tmp_path) == ""  # nothing kept: no paragraph
    old = tmp_path / "mini-v1"
    old.mkdir()
    prof = load_profile("mini")
    prof = replace(
        prof,
        teachers=replace(prof.teachers, steps=2400, batch_size=64),
        evaluate=replace(prof.evaluate, max_train_examples=1500, epochs=2, batch_size=32, per_task={}),
    )
    save_config(prof, old / "profile.yaml")
    (old / "corpus_stats.json").write_text(json.dumps({"train_lines": 768000}))
    for task in TASK_COLUMNS:
        lexical = 0.9 if task in ("upos", "xpos", "di") else 0.1  # the models beat it on four tasks only
        for seed in (1, 2):
            merge_scores(old / "scores.csv", "baseline-lexical", task, seed, {headline_metric(task): lexical})
            merge_scores(old / "scores.csv", "bert-base-ro", task, seed, {headline_metric(task): 0.5})
    assert [p.name for p in earlier_runs("mini", tmp_path)] == ["mini-v1"]
    text = earlier_run_lesson("mini", tmp_path)
    assert "2,400 steps of 64 lines, 0.20 of one pass over the 768,000-line corpus" in text  # 153,600 lines
    assert "for 94 steps (1,500 examples x 2 epochs)" in text
    assert "lexical baseline on 3 of 7 metrics (UPOS, XPOS, DI)" in text and "no controls" in text


def test_report_command_prints_the_gate_and_checks_the_acceptance_bar(synthetic, capsys):
    """``rokd report --check`` exits 1 until both teachers beat the control on >= 5 of 7 metrics and the best
    model beats the lexical baseline on UPOS and XPOS; the gains it prints are the teacher-control differences."""
    from rokd.cli import main

    argv = ["report", "--profile", "smoke", "--results", str(synthetic), "--check"]
    assert main(argv) == 1  # no control, no baseline: nothing can pass
    assert "acceptance bar NOT passed" in capsys.readouterr().out
    _with(synthetic, "control-random-init", [0.69, 0.70, 0.71])
    _with(synthetic, "baseline-lexical", [0.95, 0.95, 0.95], tasks=("upos", "xpos"))
    assert main(argv) == 1  # both teachers gain 10 / 20 points everywhere, but the best model is below 0.95
    out = capsys.readouterr().out
    assert out.count("7 of 7") == 2 and "acceptance bar NOT passed" in out
    _with(synthetic, "baseline-lexical", [0.85, 0.85, 0.85], tasks=("upos", "xpos"))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "acceptance bar passed" in out
    gains = [line.split() for line in out.splitlines() if line.startswith(("BERT-base-ro", " RoBERT-base"))]
    # teacher, task, teacher score, control score, diff, ..., ± 2 SE: paired by seed, both move by +-1 point: SE 0
    assert [g[2:5] + g[-1:] for g in gains if g[1] == "UPOS"] == [
        ["80.0", "70.0", "10.0", "0.0"],
        ["90.0", "70.0", "20.0", "0.0"],
    ]
    assert main(["report", "--profile", "smoke", "--results", str(synthetic), "--section", "acceptance"]) == 0
    assert "Test scores" not in capsys.readouterr().out


def _run_record(results, model, task, seed, **evaluate):
    """A fine-tuning's ``seed<k>.run.json`` with only the fields the protocol check reads."""
    import json

    folder = results / "predictions" / model / task
    folder.mkdir(parents=True, exist_ok=True)
    config = {"protocol_version": 2, "model": model, "task": task, "seed": seed, "evaluate": {"lr": 5e-4, **evaluate}}
    (folder / f"seed{seed}.run.json").write_text(json.dumps({"config": config}), encoding="utf-8")


def test_report_refuses_to_compare_runs_from_different_fine_tuning_protocols(synthetic, capsys):
    """A task whose models were fine-tuned with different budgets (some re-run, some not yet) is named, with the
    runs on each side and the settings that differ; ``--check`` then fails even where the bar's numbers pass."""
    from rokd.cli import main
    from rokd.report import mixed_protocols

    _with(synthetic, "control-random-init", [0.69, 0.70, 0.71])
    _with(synthetic, "baseline-lexical", [0.75, 0.75, 0.75], tasks=("upos", "xpos"))
    for seed in (1, 2):
        for model in ("bert-base-ro", "control-random-init"):
            _run_record(synthetic, model, "sts", seed, epochs=4.0)
        _run_record(synthetic, "robert-base", "sts", seed, epochs=3.0)
        _run_record(synthetic, "robert-base", "upos", seed, epochs=2.0)
        _run_record(synthetic, "control-random-init", "upos", seed, epochs=2.0)
    # a baseline has no fine-tuning: its record never makes a task mixed
    _run_record(synthetic, "baseline-lexical", "upos", 1)
    rec = synthetic / "predictions" / "baseline-lexical" / "upos" / "seed1.run.json"
    rec.write_text(rec.read_text().replace('{"config"', '{"baseline": {}, "config"'), encoding="utf-8")

    assert mixed_protocols("smoke", synthetic) == [
        "STS: 2 fine-tuning protocols among the runs: bert-base-ro (seeds 1 2), control-random-init (seeds 1 2): "
        "epochs=4.0; robert-base (seeds 1 2): epochs=3.0. Re-run the odd ones out (`rokd evaluate`) before "
        "reading this task."
    ]
    argv = ["report", "--profile", "smoke", "--results", str(synthetic), "--section", "acceptance", "--check"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "WARNING: STS: 2 fine-tuning protocols" in out and "acceptance bar NOT passed (runs from different" in out
    _run_record(synthetic, "robert-base", "sts", 1, epochs=4.0)  # the odd ones out re-run: the same numbers pass
    _run_record(synthetic, "robert-base", "sts", 2, epochs=4.0)
    assert mixed_protocols("smoke", synthetic) == []
    assert main(argv) == 0
    assert "acceptance bar passed" in capsys.readouterr().out
