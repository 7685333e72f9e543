"""Results files: the predictions round trip and the scores.csv merge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rokd.tasks.predictions import Predictions, load_predictions, predictions_path, save_predictions
from rokd.tasks.scores import SCORE_COLUMNS, merge_scores, read_scores


def test_predictions_round_trip_classification_and_regression(tmp_path):
    p = Predictions(
        ids=np.array(["s1#0", "s1#1", "s2#0"]),
        gold=np.array([0, 2, 1], dtype=np.int64),
        pred=np.array([0, 1, 1], dtype=np.int64),
        probs=np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.6, 0.1]], dtype=np.float32),
        label_names=["O", "B-PER", "I-PER"],
        meta={"model": "m", "task": "ner", "seed": 1},
    )
    path = save_predictions(p, predictions_path(tmp_path, "m", "ner", 1))
    assert path == tmp_path / "predictions" / "m" / "ner" / "seed1.npz"
    back = load_predictions(path)
    assert back.ids.tolist() == ["s1#0", "s1#1", "s2#0"]
    assert np.array_equal(back.gold, p.gold) and np.array_equal(back.pred, p.pred)
    assert np.allclose(back.probs, p.probs) and back.label_names == p.label_names
    assert back.meta == p.meta and not back.is_regression
    assert not list(path.parent.glob("*.tmp*"))

    r = Predictions(
        ids=np.array(["a", "b"]),
        gold=np.array([1.5, 4.0], dtype=np.float32),
        pred=np.array([2.25, 3.5], dtype=np.float32),
        meta={"task": "sts"},
    )
    back = load_predictions(save_predictions(r, tmp_path / "sts.npz"))
    assert back.is_regression and back.probs is None and back.label_names is None
    assert back.pred.tolist() == [2.25, 3.5]


def test_predictions_reject_mismatched_rows():
    with pytest.raises(ValueError, match="gold"):
        Predictions(ids=np.array(["a"]), gold=np.array([0, 1]), pred=np.array([0]))


def test_scores_merge_replaces_rows_of_same_model_task_seed(tmp_path):
    path = tmp_path / "scores.csv"
    merge_scores(path, "bert-base-ro", "upos", 1, {"macro_f1": 0.5, "accuracy": 0.8})
    merge_scores(path, "bert-base-ro", "upos", 2, {"macro_f1": 0.6, "accuracy": 0.85})
    merge_scores(path, "robert-base", "sts", 1, {"pearson": float("nan"), "spearman": 0.1})
    # A re-run of bert/upos/seed 1 with one metric only replaces BOTH earlier rows of that run.
    merge_scores(path, "bert-base-ro", "upos", 1, {"macro_f1": 0.55})
    rows = read_scores(path)
    assert path.read_text().splitlines()[0] == ",".join(SCORE_COLUMNS)
    key = {(r["model"], r["task"], r["seed"], r["metric"]): r["value"] for r in rows}
    assert key[("bert-base-ro", "upos", 1, "macro_f1")] == 0.55
    assert ("bert-base-ro", "upos", 1, "accuracy") not in key
    assert key[("bert-base-ro", "upos", 2, "accuracy")] == 0.85
    assert np.isnan(key[("robert-base", "sts", 1, "pearson")])
    assert len(rows) == 5
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_scores_bad_file_is_a_clear_error(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("model,score\nx,1\n")
    with pytest.raises(ValueError, match="expected the header"):
        read_scores(path)
    with pytest.raises(TypeError, match="not a number"):
        merge_scores(tmp_path / "ok.csv", "m", "t", 1, {"f1": "high"})
    assert not (tmp_path / "ok.csv").exists()
    json.dumps(read_scores(tmp_path / "missing.csv"))  # a missing file is simply empty
