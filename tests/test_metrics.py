"""Each metric on a small example whose value was worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rokd.paper import HEADLINE_METRIC
from rokd.tasks.metrics import (
    classification_metrics,
    compute_metrics,
    headline_metric,
    ner_metrics,
    regression_metrics,
    score_predictions,
    sentence_groups,
    tagging_metrics,
)
from rokd.tasks.predictions import Predictions


def test_tagging_accuracy_and_macro_f1():
    # class 0: P 1, R 1/2 -> F 2/3; class 1: P 1/2, R 1 -> F 2/3; class 2: F 1 -> macro 7/9.
    m = tagging_metrics([0, 0, 1, 2], [0, 1, 1, 2])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx(7 / 9)


def test_sar_macro_f1_counts_a_never_predicted_class_as_zero():
    # classes 0,1: F 1; class 2: P 1/2, R 1 -> 2/3; class 3 never predicted: F 0 -> macro (2 + 2/3) / 4.
    m = classification_metrics([0, 1, 2, 3], [0, 1, 2, 2])
    assert m["macro_f1"] == pytest.approx((2 + 2 / 3) / 4)
    assert m["accuracy"] == pytest.approx(0.75)


def test_sapn_accuracy():
    assert compute_metrics("sapn", [1, 0, 1, 1, 0], [1, 1, 1, 0, 0])["accuracy"] == pytest.approx(3 / 5)


def test_ner_span_f1_differs_from_token_accuracy_and_modes_differ():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "B-ORG", "I-ORG"]]
    pred = [["B-PER", "O", "O", "B-LOC", "O"], ["O", "I-ORG", "I-ORG"]]
    m = ner_metrics(gold, pred)
    # Words: 4/5 + 2/3 right = 6/8. Spans (default mode, I-ORG after O opens a span): PER wrong
    # (cut short), LOC right, ORG right -> per-type F1 0, 1, 1 -> macro 2/3; micro 2 of 3 / 2 of 3 -> 2/3.
    assert m["token_accuracy"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(2 / 3)
    # Strict IOB2: "I-ORG I-ORG" is no span at all, so ORG scores 0 -> macro 1/3.
    assert m["macro_f1_strict"] == pytest.approx(1 / 3)
    assert m["token_accuracy"] != m["micro_f1"]


def test_ner_through_rows_and_ids_groups_sentences_by_id():
    names = ["O", "B-PER", "I-PER"]
    # rows deliberately out of word order: the grouping sorts by word index.
    ids = ["a#1", "a#0", "b#0", "b#1"]
    gold = [2, 1, 0, 1]  # a: B-PER I-PER ; b: O B-PER
    pred = [2, 1, 0, 0]  # a right, b misses its PER
    m = compute_metrics("ner", gold, pred, names, ids)
    assert m["micro_f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)  # P 1, R 1/2
    assert m["token_accuracy"] == pytest.approx(0.75)
    assert sentence_groups(ids) == [[1, 0], [2, 3]]
    with pytest.raises(ValueError, match="word index"):
        sentence_groups(["no-hash"])


def test_sts_pearson_and_spearman():
    # deviations (-1.5, -.5, .5, 1.5) vs (-1.5, .5, -.5, 1.5): covariance 4 / variance 5 -> 0.8 (ranks too).
    m = regression_metrics([1, 2, 3, 4], [1, 3, 2, 4])
    assert m["pearson"] == pytest.approx(0.8)
    assert m["spearman"] == pytest.approx(0.8)
    m = regression_metrics([1, 2, 3, 4], [1, 3, 2, 40])
    assert m["spearman"] == pytest.approx(0.8) and m["pearson"] != pytest.approx(0.8)  # ranks unchanged, values not
    assert math.isnan(regression_metrics([1, 2, 3], [2, 2, 2])["pearson"])


def test_headline_metrics_are_produced_for_every_task():
    for task, metric in HEADLINE_METRIC.items():
        assert headline_metric(task) == metric
    assert "macro_f1" in compute_metrics("di", [0, 1], [0, 1])
    with pytest.raises(ValueError, match="unknown task"):
        headline_metric("parsing")


def test_score_predictions_reads_a_predictions_object():
    p = Predictions(
        ids=np.array(["x", "y", "z"]),
        gold=np.array([0, 1, 1]),
        pred=np.array([0, 1, 0]),
        probs=np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=np.float32),
        label_names=["neg", "pos"],
    )
    assert score_predictions("sapn", p)["accuracy"] == pytest.approx(2 / 3)
