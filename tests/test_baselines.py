"""Baselines: each method on a tiny fixture worked out by hand, and the files they write like a model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rokd.profiles import EvalConfig, Profile
from rokd.tasks.baselines import (
    C_GRID,
    MostFrequentTag,
    jaccard,
    majority,
    run_baseline,
    score_baseline,
    words,
)
from rokd.tasks.predictions import load_predictions, predictions_path
from rokd.tasks.scores import read_scores

TAGS = ["NOUN", "VERB", "PROPN", "DET"]
NOUN, VERB, PROPN, DET = range(4)
# Three training sentences. Counts: Ana PROPN 1; are VERB 1 NOUN 1 (tie); mere NOUN 2 VERB 1; o DET 2;
# Are VERB 1. Lowercased: are VERB 2 NOUN 1. Overall: NOUN 3, VERB 3, PROPN 1, DET 2 (tie NOUN / VERB).
TRAIN_TOKENS = [["Ana", "are", "mere"], ["mere", "are", "o"], ["Are", "o", "mere"]]
TRAIN_TAGS = [[PROPN, VERB, NOUN], [NOUN, NOUN, DET], [VERB, DET, VERB]]


def test_most_frequent_tag_hand_checked():
    tagger = MostFrequentTag(len(TAGS)).fit(TRAIN_TOKENS, TRAIN_TAGS)
    pred, probs, unseen = tagger.predict([["are", "Mere", "Ana"], ["casa", "ARE"]])
    # are: NOUN/VERB tie -> lowest id NOUN; Mere: unseen form, its lowercase "mere" is NOUN 2 : VERB 1;
    # Ana: PROPN; casa: never seen -> overall counts, tie -> NOUN; ARE: lowercase "are" is VERB 2 : NOUN 1.
    assert pred.tolist() == [NOUN, NOUN, PROPN, NOUN, VERB]
    assert unseen == 1
    np.testing.assert_allclose(probs[0], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(probs[1], [2 / 3, 1 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(probs[3], [3 / 9, 3 / 9, 1 / 9, 2 / 9], rtol=1e-6)
    np.testing.assert_allclose(probs[4], [1 / 3, 2 / 3, 0, 0], rtol=1e-6)
    assert (probs.argmax(1) == pred).all()


def test_majority_and_word_overlap_hand_checked():
    assert majority([1, 1, 0, 2, 2], 4)[0] == 1  # tie between 1 and 2: the lowest id
    np.testing.assert_allclose(majority([1, 1, 0, 2, 2], 4)[1], [0.2, 0.4, 0.4, 0.0])
    assert words("Ana are, MERE!") == ["ana", "are", "mere"]
    assert jaccard("Ana are mere.", "ana are pere") == pytest.approx(2 / 4)  # {ana, are} of {ana, are, mere, pere}
    assert jaccard("", "") == 0.0


def _tagging_dd():
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    feats = Features(
        {"id": Value("string"), "tokens": Sequence(Value("string")), "labels": Sequence(ClassLabel(names=TAGS))}
    )

    def ds(ids, tokens, tags):
        return Dataset.from_dict({"id": ids, "tokens": tokens, "labels": tags}, features=feats)

    return DatasetDict(
        train=ds(["t1", "t2", "t3"], TRAIN_TOKENS, TRAIN_TAGS),
        validation=ds(["v1"], [["Ana", "o"]], [[PROPN, DET]]),
        # gold: are/VERB (predicted NOUN: wrong), Mere/NOUN (right), casa/NOUN (right), Ion/PROPN (NOUN: wrong)
        test=ds(["x1", "x2"], [["are", "Mere"], ["casa", "Ion"]], [[VERB, NOUN], [NOUN, PROPN]]),
    )


def _profile(seeds=(1, 2)) -> Profile:
    return Profile(name="unit", evaluate=EvalConfig(seeds=list(seeds), max_train_examples=None, max_eval_examples=None))


def test_tagging_baselines_write_scores_predictions_and_run_records_under_every_seed(tmp_path):
    dd = _tagging_dd()
    lexical = score_baseline(_profile(), "baseline-lexical", "upos", dataset=dd, results_dir=tmp_path, log=None)
    assert lexical["accuracy"] == pytest.approx(2 / 4)
    majority_scores = score_baseline(
        _profile(), "baseline-majority", "upos", dataset=dd, results_dir=tmp_path, log=None
    )
    assert majority_scores["accuracy"] == pytest.approx(2 / 4)  # always NOUN: right on Mere and casa
    rows = read_scores(tmp_path / "scores.csv")
    by_seed = {(r["model"], r["seed"], r["metric"]): r["value"] for r in rows}
    for seed in (1, 2):  # deterministic: the same rows under each seed
        assert by_seed[("baseline-lexical", seed, "accuracy")] == pytest.approx(0.5)
        assert ("baseline-lexical", seed, "macro_f1") in by_seed
    preds = load_predictions(predictions_path(tmp_path, "baseline-lexical", "upos", 2))
    assert preds.ids.tolist() == ["x1#0", "x1#1", "x2#0", "x2#1"]  # the models' row ids
    assert preds.pred.tolist() == [NOUN, NOUN, NOUN, NOUN] and preds.gold.tolist() == [VERB, NOUN, NOUN, PROPN]
    assert preds.label_names == TAGS and preds.probs.shape == (4, 4)
    run = json.loads(predictions_path(tmp_path, "baseline-lexical", "upos", 1).with_suffix(".run.json").read_text())
    assert run["config"]["model"] == "baseline-lexical" and run["headline_metric"] == "accuracy"
    assert run["runinfo"]["wall_time_s"] > 0 and run["computed_once_for_seeds"] == [1, 2]
    assert run["sizes"]["test"] == {"examples": 2, "available": 2, "truncated_or_split": 0, "rows": 4, "features": 4}
    assert run["baseline"]["test_words_unseen"] == 2  # casa, Ion
    # the label set is the models': train + validation tags (no DET-only issue here: all four seen)
    assert run["baseline"]["labels"]["left_out"] == [] and run["baseline"]["labels"]["test_rows_outside"] == 0


def test_baselines_are_reused_when_up_to_date(tmp_path):
    dd = _tagging_dd()
    score_baseline(_profile(), "baseline-lexical", "upos", dataset=dd, results_dir=tmp_path, log=None)
    path = predictions_path(tmp_path, "baseline-lexical", "upos", 1).with_suffix(".run.json")
    mtime = path.stat().st_mtime_ns
    score_baseline(_profile(), "baseline-lexical", "upos", dataset=dd, results_dir=tmp_path, log=None)
    assert path.stat().st_mtime_ns == mtime
    score_baseline(_profile(), "baseline-lexical", "upos", dataset=dd, results_dir=tmp_path, log=None, force=True)
    assert path.stat().st_mtime_ns != mtime


def _sentence_dd(task: str):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    if task == "sts":
        feats = Features(
            {"id": Value("string"), "text": Value("string"), "text_pair": Value("string"), "label": Value("float32")}
        )
        pairs = [
            ("ana are mere", "ana are mere", 5.0),
            ("ana are mere", "ion are pere", 2.0),
            ("casa mare", "oras mic", 0.0),
            ("vreme buna", "vreme rea", 2.5),
            ("bun rau", "bun", 3.0),
        ]
    else:
        feats = Features(
            {
                "id": Value("string"),
                "text": Value("string"),
                "text_pair": Value("string"),
                "label": ClassLabel(names=["negative", "positive"]),
            }
        )
        pairs = [
            ("produs excelent bun", "", 1),
            ("excelent foarte bun", "", 1),
            ("bun excelent", "", 1),
            ("groaznic rau", "", 0),
            ("foarte rau groaznic", "", 0),
        ]

    def ds(prefix, rows):
        return Dataset.from_dict(
            {
                "id": [f"{prefix}{i}" for i in range(len(rows))],
                "text": [r[0] for r in rows],
                "text_pair": [r[1] for r in rows],
                "label": [r[2] for r in rows],
            },
            features=feats,
        )

    return DatasetDict(train=ds("a", pairs), validation=ds("b", pairs), test=ds("c", pairs[::-1]))


def test_classification_baselines():
    dd = _sentence_dd("sapn")
    run = run_baseline("baseline-majority", "sapn", dd, None, None)
    assert run.pred.tolist() == [1] * 5  # 3 positive : 2 negative in training
    np.testing.assert_allclose(run.probs[0], [0.4, 0.6])
    run = run_baseline("baseline-lexical", "sapn", dd, None, None)
    assert run.pred.tolist() == run.gold.tolist()  # separable by words
    assert run.details["C"] in C_GRID and set(run.details["validation_accuracy"]) == {repr(c) for c in C_GRID}
    # C is the best on validation; ties keep the smallest
    best = max(run.details["validation_accuracy"].values())
    assert run.details["C"] == min(c for c in C_GRID if run.details["validation_accuracy"][repr(c)] == best)
    assert np.allclose(run.probs.sum(1), 1, atol=1e-5)


def test_sts_baselines(tmp_path):
    dd = _sentence_dd("sts")
    scores = score_baseline(_profile((3,)), "baseline-majority", "sts", dataset=dd, results_dir=tmp_path, log=None)
    assert scores == {"pearson": 0.0, "spearman": 0.0}  # a constant: 0/0, reported as 0 (see the module doc)
    preds = load_predictions(predictions_path(tmp_path, "baseline-majority", "sts", 3))
    assert preds.is_regression and np.allclose(preds.pred, 12.5 / 5)  # the mean training score
    # word overlap of the test pairs (reversed order): {bun} of {bun, rau}; {vreme} of 3 words; nothing;
    # {are} of {ana, are, mere, ion, pere}; identical
    test = dd["test"]
    overlap = [jaccard(a, b) for a, b in zip(test["text"], test["text_pair"])]
    np.testing.assert_allclose(overlap, [1 / 2, 1 / 3, 0, 1 / 5, 1])
    run = run_baseline("baseline-lexical", "sts", dd, None, None)
    val = run.details["validation_pearson"]
    assert set(val) == {"jaccard", "tfidf_cosine"} and run.details["similarity"] == max(val, key=val.get)
    assert not math.isnan(
        score_baseline(_profile((3,)), "baseline-lexical", "sts", dataset=dd, results_dir=tmp_path, log=None)["pearson"]
    )


def test_unknown_baseline_or_task_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("baseline-oracle", "upos", _tagging_dd(), None, None)
    with pytest.raises(ValueError, match="unknown task"):
        run_baseline("baseline-lexical", "parsing", _tagging_dd(), None, None)


def test_provenance_table_reads_the_models_records_not_the_baselines(tmp_path):
    from rokd.report import split_provenance_table

    score_baseline(_profile((1,)), "baseline-lexical", "upos", dataset=_tagging_dd(), results_dir=tmp_path, log=None)
    assert split_provenance_table("unit", tmp_path).empty  # "baseline-..." sorts first: it must not stand for the task
