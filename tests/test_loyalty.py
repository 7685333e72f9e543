"""rokd.loyalty: the three measures on hand-computed cases, alignment errors, pairs, the CSV and summaries."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest
from loyalty_fixtures import write_synthetic_predictions

from rokd.loyalty import (
    LOYALTY_COLUMNS,
    LoyaltyAlignmentError,
    agreement_matrix,
    check_aligned,
    compute_loyalty,
    control_pairs,
    ensemble_predictions,
    label_loyalty,
    load_pair,
    loyalty_matrix,
    loyalty_pairs,
    loyalty_vs_score,
    paper_style_table,
    pool_replicas,
    probability_loyalty,
    read_loyalty,
    regression_loyalty,
)
from rokd.tasks.predictions import Predictions, load_predictions, predictions_path, save_predictions

TASKS = ("upos", "xpos", "ner", "sapn", "sar", "di", "sts")


# --- label loyalty ------------------------------------------------------------------------------


def test_label_loyalty_hand_case():
    # rows 0, 2, 3 agree; row 1 differs -> 3/4
    assert label_loyalty([0, 1, 2, 1], [0, 2, 2, 1]) == pytest.approx(0.75)
    assert label_loyalty([3, 3], [3, 3]) == 1.0
    assert label_loyalty([0, 1], [1, 0]) == 0.0


def test_label_loyalty_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="teacher has 3 labels, student 2"):
        label_loyalty([0, 1, 2], [0, 1])


# --- probability loyalty ------------------------------------------------------------------------


def test_probability_loyalty_identical_is_one():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]], dtype=np.float32)
    assert probability_loyalty(p, p.copy()) == pytest.approx(1.0, abs=1e-12)


def test_probability_loyalty_disjoint_one_hot_is_zero():
    t = np.eye(3)[[0, 1, 2]]
    s = np.eye(3)[[1, 2, 0]]
    # JS divergence (base 2) of disjoint distributions is 1, so the distance is 1 and loyalty 0.
    assert probability_loyalty(t, s) == pytest.approx(0.0, abs=1e-12)


def test_probability_loyalty_hand_computed_intermediate():
    # Row 1: p = (1, 0), q = (1/2, 1/2); mixture m = (3/4, 1/4).
    #   KL(p||m) = 1 * log2(1 / (3/4))                        = 2 - log2 3            = 0.4150375
    #   KL(q||m) = 1/2 log2((1/2)/(3/4)) + 1/2 log2((1/2)/(1/4)) = 1 - (1/2) log2 3   = 0.2075187
    #   JS divergence = (0.4150375 + 0.2075187) / 2 = 3/2 - (3/4) log2 3             = 0.3112781
    #   JS distance   = sqrt(0.3112781)                                              = 0.5579230
    #   loyalty       = 1 - 0.5579230                                                = 0.4420770
    # Row 2: identical rows -> loyalty 1.  Mean over rows: (0.4420770 + 1) / 2 = 0.7210385.
    divergence = 1.5 - 0.75 * math.log2(3)
    assert divergence == pytest.approx(0.3112781, abs=1e-7)
    row1 = 1 - math.sqrt(divergence)
    t = np.array([[1.0, 0.0], [0.3, 0.7]])
    s = np.array([[0.5, 0.5], [0.3, 0.7]])
    assert probability_loyalty(t, s) == pytest.approx((row1 + 1) / 2, abs=1e-9)
    assert probability_loyalty(t, s) == pytest.approx(0.7210385, abs=1e-6)
    # The root taken twice would give 1 - 0.5579^(1/2) = 0.2530 for row 1: make sure we are not there.
    assert probability_loyalty(t[:1], s[:1]) == pytest.approx(0.4420770, abs=1e-6)


def test_probability_loyalty_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        probability_loyalty(np.ones((2, 3)) / 3, np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="non-negative"):
        probability_loyalty(np.array([[1.5, -0.5]]), np.array([[0.5, 0.5]]))


# --- regression loyalty -------------------------------------------------------------------------


def test_regression_loyalty_hand_case():
    # t = (1, 2, 3), s = (1, 3, 2): deviations (-1, 0, 1) and (-1, 1, 0);
    # covariance sum = 1, squared deviations 2 and 2 -> r = 1 / sqrt(2 * 2) = 0.5
    assert regression_loyalty([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert regression_loyalty([1, 2, 3, 4], [10, 12, 14, 16]) == pytest.approx(1.0)
    assert regression_loyalty([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_regression_loyalty_constant_output_is_nan_with_warning():
    with pytest.warns(UserWarning, match="student's outputs are constant"):
        assert math.isnan(regression_loyalty([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))


# --- alignment ----------------------------------------------------------------------------------


def _cls(ids, pred, probs=None, names=("A", "B")):
    pred = np.asarray(pred)
    probs = np.eye(len(names))[pred] if probs is None else np.asarray(probs)
    return Predictions(ids=np.asarray(ids), gold=pred, pred=pred, probs=probs, label_names=list(names))


def test_check_aligned_count_order_and_labels():
    t = _cls(["a", "b", "c"], [0, 1, 0])
    check_aligned(t, _cls(["a", "b", "c"], [1, 1, 0]), "T.npz", "S.npz")  # aligned: no error
    with pytest.raises(LoyaltyAlignmentError, match=r"T\.npz.*S\.npz.*3 rows vs 2 rows"):
        check_aligned(t, _cls(["a", "b"], [0, 1]), "T.npz", "S.npz")
    with pytest.raises(LoyaltyAlignmentError, match=r"T\.npz.*S\.npz.*first at row 0.*another order"):
        check_aligned(t, _cls(["b", "a", "c"], [0, 1, 0]), "T.npz", "S.npz")
    with pytest.raises(LoyaltyAlignmentError, match="different ids"):
        check_aligned(t, _cls(["a", "b", "x"], [0, 1, 0]), "T.npz", "S.npz")
    with pytest.raises(LoyaltyAlignmentError, match="label names differ"):
        check_aligned(t, _cls(["a", "b", "c"], [0, 1, 0], names=("B", "A")), "T.npz", "S.npz")


def test_compute_loyalty_refuses_misaligned_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=("sapn",), seeds=(1,), n=12)
    path = predictions_path(res, "distil-robert-base", "sapn", 1)
    p = load_predictions(path)
    order = np.roll(np.arange(len(p.ids)), 1)  # same rows, shifted by one
    save_predictions(
        Predictions(p.ids[order], p.gold[order], p.pred[order], p.probs[order], p.label_names, p.meta), path
    )
    with pytest.raises(LoyaltyAlignmentError) as err:
        compute_loyalty("smoke", tasks=["sapn"], seeds=[1])
    msg = str(err.value)
    assert str(predictions_path(res, "robert-base", "sapn", 1)) in msg and str(path) in msg
    assert not (res / "loyalty.csv").exists()  # nothing half-written


def test_compute_loyalty_refuses_count_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=("sts",), seeds=(1,), n=12)
    path = predictions_path(res, "distil-bert-base-ro", "sts", 1)
    p = load_predictions(path)
    save_predictions(Predictions(p.ids[:-1], p.gold[:-1], p.pred[:-1], meta=p.meta), path)
    with pytest.raises(LoyaltyAlignmentError, match="12 rows vs 11 rows") as err:
        compute_loyalty("smoke", tasks=["sts"], seeds=[1])
    assert str(path) in str(err.value) and str(predictions_path(res, "bert-base-ro", "sts", 1)) in str(err.value)


def test_compute_loyalty_missing_file_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=("di",), seeds=(1,), n=8)
    gone = predictions_path(res, "robert-base", "di", 1)
    gone.unlink()
    with pytest.raises(FileNotFoundError, match="rokd pipeline --profile smoke") as err:
        compute_loyalty("smoke", tasks=["di"], seeds=[1])
    assert str(gone) in str(err.value)


# --- ensemble and pairs -------------------------------------------------------------------------


def test_ensemble_averages_distributions_and_outputs():
    a = _cls(["x", "y"], [0, 1], probs=[[0.9, 0.1], [0.4, 0.6]])
    b = _cls(["x", "y"], [1, 1], probs=[[0.3, 0.7], [0.2, 0.8]])
    e = ensemble_predictions([a, b])
    np.testing.assert_allclose(e.probs, [[0.6, 0.4], [0.3, 0.7]])
    np.testing.assert_array_equal(e.pred, [0, 1])  # argmax of the averaged distribution
    r1 = Predictions(ids=np.array(["x", "y"]), gold=np.zeros(2), pred=np.array([1.0, 3.0]))
    r2 = Predictions(ids=np.array(["x", "y"]), gold=np.zeros(2), pred=np.array([2.0, 5.0]))
    np.testing.assert_allclose(ensemble_predictions([r1, r2]).pred, [1.5, 4.0])
    with pytest.raises(LoyaltyAlignmentError):
        ensemble_predictions([a, _cls(["y", "x"], [0, 1])], ["A.npz", "B.npz"])


def test_pairs_follow_student_teachers():
    assert loyalty_pairs() == [
        ("distil-bert-base-ro", "bert-base-ro"),
        ("distil-robert-base", "robert-base"),
        ("distilmulti-bert-base-ro", "bert-base-ro"),
        ("distilmulti-bert-base-ro", "robert-base"),
        ("distilmulti-bert-base-ro", "ensemble"),
    ]
    # the references: the two teachers; each single-teacher student vs the OTHER teacher; init-only vs each
    # teacher; random-init vs the cased teacher
    assert control_pairs() == [
        ("robert-base", "bert-base-ro"),
        ("distil-bert-base-ro", "robert-base"),
        ("distil-robert-base", "bert-base-ro"),
        ("control-init-only", "bert-base-ro"),
        ("control-init-only", "robert-base"),
        ("control-random-init", "bert-base-ro"),
    ]


def test_a_student_distilled_twice_has_the_pairs_of_each_distillation_read_pooled():
    replicas = {"distil-bert-base-ro": 2, "distilmulti-bert-base-ro": 2}
    pairs = loyalty_pairs(replicas)
    assert pairs[:2] == [("distil-bert-base-ro", "bert-base-ro"), ("distil-bert-base-ro@d2", "bert-base-ro")]
    assert ("distilmulti-bert-base-ro@d2", "ensemble") in pairs and len(pairs) == 5 + 1 + 3
    assert ("distil-bert-base-ro@d2", "robert-base") in control_pairs(replicas)
    raw = pd.DataFrame(
        {
            "student": ["distil-bert-base-ro", "distil-bert-base-ro@d2", "robert-base"],
            "teacher": ["bert-base-ro", "bert-base-ro", "bert-base-ro"],
            "task": ["upos"] * 3,
            "seed": [3, 3, 3],
            "metric": ["label_loyalty"] * 3,
            "value": [0.9, 0.8, 0.7],
        }
    )
    pooled = pool_replicas(raw)
    # the second distillation's seed 3 is run 1003 of the student (rokd.stats.run_number), like in scores
    assert list(pooled.student) == ["distil-bert-base-ro", "distil-bert-base-ro", "robert-base"]
    assert list(pooled.seed) == [3, 1003, 3] and list(raw.student)[1].endswith("@d2")  # the input is untouched


# --- the CSV, end to end on synthetic files ------------------------------------------------------


def test_compute_loyalty_covers_every_distillation_and_the_chapter_reads_them_pooled(tmp_path, monkeypatch):
    import shutil
    from dataclasses import replace

    from rokd.config import save_config
    from rokd.loyalty import loyalty_or_committed
    from rokd.profiles import load_profile

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    smoke = load_profile("smoke")
    tasks = ["upos", "sts"]
    prof = replace(
        smoke,
        distill=replace(smoke.distill, replicas={"distil-bert-base-ro": 2}),
        evaluate=replace(smoke.evaluate, tasks=tasks, seeds=[1, 2]),
    )
    yaml = save_config(prof, tmp_path / "smoke-replicas.yaml")
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=tasks, seeds=(1, 2), n=24)
    with pytest.raises(FileNotFoundError, match="distil-bert-base-ro@d2"):  # the second distillation is required
        compute_loyalty(str(yaml))
    for task in tasks:
        for seed in (1, 2):  # the second distillation: here the first one's predictions under its own key
            src = predictions_path(res, "distil-bert-base-ro", task, seed)
            dst = predictions_path(res, "distil-bert-base-ro@d2", task, seed)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    raw = compute_loyalty(str(yaml))
    d2 = raw[raw.student == "distil-bert-base-ro@d2"]
    assert set(d2.teacher) == {"bert-base-ro", "robert-base"}  # its paper pair and its control pair
    pooled, _ = loyalty_or_committed(str(yaml))
    runs = pooled[(pooled.student == "distil-bert-base-ro") & (pooled.teacher == "bert-base-ro")]
    assert sorted(set(runs.seed)) == [1, 2, 1001, 1002] and not pooled.student.str.contains("@d").any()
    one, two = (runs[runs.seed == s].set_index(["task", "metric"]).value for s in (1, 1001))
    pd.testing.assert_series_equal(one, two, check_names=False)  # same predictions, same loyalty


def test_compute_loyalty_writes_every_pair_task_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=TASKS, seeds=(1, 2), n=24)
    df = compute_loyalty("smoke", tasks=TASKS, seeds=[1, 2])
    # (5 paper + 6 control pairs) x (6 label tasks x (L-L, P-L, chance, floor) + STS x R-L) x 2 seeds
    assert len(df) == 11 * (6 * 4 + 1) * 2
    assert tuple(df.columns) == LOYALTY_COLUMNS
    back = read_loyalty("smoke")
    pd.testing.assert_frame_equal(back, df, check_dtype=False, atol=1e-9)
    assert (res / "loyalty_config.json").exists()
    assert not list(res.glob(".*tmp"))

    # Cross-check two rows against the raw files.
    t = load_predictions(predictions_path(res, "bert-base-ro", "upos", 2))
    s = load_predictions(predictions_path(res, "distil-bert-base-ro", "upos", 2))
    got = df.query("student == 'distil-bert-base-ro' and teacher == 'bert-base-ro' and task == 'upos' and seed == 2")
    assert got.set_index("metric").value["label_loyalty"] == pytest.approx(np.mean(t.pred == s.pred))
    r = load_predictions(predictions_path(res, "robert-base", "sts", 1))
    b = load_predictions(predictions_path(res, "bert-base-ro", "sts", 1))
    m = load_predictions(predictions_path(res, "distilmulti-bert-base-ro", "sts", 1))
    want = np.corrcoef((r.pred.astype(float) + b.pred) / 2, m.pred)[0, 1]
    got = df.query("teacher == 'ensemble' and task == 'sts' and seed == 1").value.item()
    assert got == pytest.approx(want, abs=1e-6)
    # All values are proper fractions / correlations.
    assert df[df.metric != "regression_loyalty"].value.between(0, 1).all()
    # chance agreement and floor of one pair, by hand from the files
    got = df.query("student == 'distil-bert-base-ro' and teacher == 'bert-base-ro' and task == 'upos' and seed == 2")
    got = got.set_index("metric").value
    ft, fs = np.bincount(t.pred, minlength=6) / len(t.pred), np.bincount(s.pred, minlength=6) / len(s.pred)
    assert got["label_chance"] == pytest.approx(float(ft @ fs))
    assert got["label_floor"] == pytest.approx(max(0.0, np.mean(t.pred == t.gold) + np.mean(s.pred == s.gold) - 1))


def test_cli_writes_loyalty_csv(tmp_path, monkeypatch, capsys):
    from rokd.loyalty import cli as loyalty_cli

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    write_synthetic_predictions(tmp_path / "smoke", tasks=("sar", "sts"), seeds=(1,), n=10)
    parser = argparse.ArgumentParser()
    loyalty_cli.register(parser.add_subparsers())
    args = parser.parse_args(["loyalty", "--profile", "smoke", "--tasks", "sar", "sts"])
    assert args.func(args) == 0
    assert len(read_loyalty("smoke")) == 11 * (4 + 1)
    out = capsys.readouterr().out
    assert "loyalty.csv" in out and "compact predictions" in out


def test_load_pair_ensemble(tmp_path):
    write_synthetic_predictions(tmp_path, tasks=("ner",), seeds=(3,), n=16)
    t, s = load_pair("smoke", "distilmulti-bert-base-ro", "ensemble", "ner", 3, results=tmp_path)
    a = load_predictions(predictions_path(tmp_path, "bert-base-ro", "ner", 3))
    b = load_predictions(predictions_path(tmp_path, "robert-base", "ner", 3))
    # loyalty sees the compact form: 5 NER labels and top 4 kept, float16 probabilities
    np.testing.assert_allclose(t.probs, (a.probs.astype(float) + b.probs) / 2, atol=2e-3)
    assert s.meta["model"] == "distilmulti-bert-base-ro"


# --- summaries ----------------------------------------------------------------------------------


def _rows(student, teacher, task, seed, **metrics):
    return [
        {"student": student, "teacher": teacher, "task": task, "seed": seed, "metric": k, "value": v}
        for k, v in metrics.items()
    ]


def test_paper_style_table_averages_tasks_then_seeds():
    s, t = "distil-bert-base-ro", "bert-base-ro"
    rows = (
        _rows(s, t, "upos", 1, label_loyalty=0.9, prob_loyalty=0.8)
        + _rows(s, t, "sar", 1, label_loyalty=0.7, prob_loyalty=0.6)
        + _rows(s, t, "sts", 1, regression_loyalty=0.95)
        + _rows(s, t, "upos", 2, label_loyalty=1.0, prob_loyalty=0.9)
        + _rows(s, t, "sar", 2, label_loyalty=0.8, prob_loyalty=0.7)
        + _rows(s, t, "sts", 2, regression_loyalty=0.85)
    )
    table = paper_style_table(pd.DataFrame(rows))
    row = table.loc[(s, t)]
    # L-L per seed: (90 + 70) / 2 = 80 and (100 + 80) / 2 = 90 -> mean 85, std sqrt(50) = 7.0711
    assert row["L-L"] == pytest.approx(85.0)
    assert row["L-L std"] == pytest.approx(math.sqrt(50))
    assert row["P-L"] == pytest.approx(75.0)
    assert row["R-L"] == pytest.approx(90.0)
    assert row["paper L-L"] == pytest.approx(89.75)  # the paper's value for this pair, beside ours
    assert row["seeds"] == 2


def test_loyalty_findings_compare_orderings_per_task_with_the_rule():
    from rokd.loyalty import loyalty_discussion, loyalty_findings

    multi, single, cased, uncased = "distilmulti-bert-base-ro", "distil-bert-base-ro", "bert-base-ro", "robert-base"
    rows = []
    for seed, d in ((1, 0.0), (2, 0.02)):
        rows += _rows(multi, cased, "upos", seed, label_loyalty=0.80 + d, prob_loyalty=0.70)
        rows += _rows(multi, cased, "sts", seed, regression_loyalty=0.90)
        rows += _rows(multi, uncased, "upos", seed, label_loyalty=0.85 + d, prob_loyalty=0.60)
        rows += _rows(multi, uncased, "sts", seed, regression_loyalty=0.80 + d)
        rows += _rows(single, cased, "upos", seed, label_loyalty=0.90, prob_loyalty=0.75)
        rows += _rows(single, cased, "sts", seed, regression_loyalty=0.95)
    f = loyalty_findings(pd.DataFrame(rows)).set_index(["id", "task", "measure"])
    ll = f.loc[("multi-closer-to-cased", "UPOS", "L-L")]
    # ours 81 vs 86 on every seed (paired SE 0): the paper's order (87.80 vs 84.63) is reversed beyond the noise
    assert ll.paper == "87.80 vs 84.63" and ll.ours == "81.00 vs 86.00" and ll.verdict == "does not hold"
    assert f.loc[("multi-closer-to-cased", "UPOS", "P-L"), "verdict"] == "holds"  # +10 on both seeds
    # R-L: differences +10 and +8 -> mean 9, SE 1 -> beyond 2 SE
    rl = f.loc[("multi-closer-to-cased", "STS", "R-L")]
    assert rl["diff"] == pytest.approx(9.0) and rl.se == pytest.approx(1.0) and rl.verdict == "holds"
    single_ll = f.loc[("single-closer-than-multi", "UPOS", "L-L")]
    assert single_ll.ours == "90.00 vs 81.00" and single_ll.verdict == "holds"
    # the control pairs are absent: the readings against them are inconclusive, with the reason
    ctrl = f.loc["distillation-raises-loyalty"]
    assert (ctrl.verdict == "inconclusive").all() and ctrl.reason.str.contains("control not evaluated").all()
    text = loyalty_discussion(f.reset_index())
    assert "(`multi-closer-to-cased`): holds on UPOS P-L, STS R-L; reversed beyond the noise on UPOS L-L" in text
    assert "expected from initialisation alone" in text
    assert "(`distillation-raises-loyalty`): not testable here" in text
    assert "none of the orderings above can be attributed to distillation" in text


def test_loyalty_findings_read_against_control_pairs_and_gate():
    from rokd.loyalty import loyalty_findings, ordering_controls

    multi, single, init, cased, uncased = (
        "distilmulti-bert-base-ro",
        "distil-bert-base-ro",
        "control-init-only",
        "bert-base-ro",
        "robert-base",
    )
    rows = []
    for seed, d in ((1, 0.0), (2, 0.01), (3, -0.01)):
        rows += _rows(multi, cased, "sar", seed, label_loyalty=0.80 + d, prob_loyalty=0.8)
        rows += _rows(multi, uncased, "sar", seed, label_loyalty=0.78, prob_loyalty=0.8)  # gap 2 +- 1
        rows += _rows(single, cased, "sar", seed, label_loyalty=0.90, prob_loyalty=0.8)
        rows += _rows(single, uncased, "sar", seed, label_loyalty=0.80, prob_loyalty=0.8)  # gap 10
        rows += _rows(init, cased, "sar", seed, label_loyalty=0.70, prob_loyalty=0.8)
        rows += _rows(init, uncased, "sar", seed, label_loyalty=0.69, prob_loyalty=0.8)
    loy = pd.DataFrame(rows)
    f = loyalty_findings(loy, gate=lambda teachers, task: (True, "")).set_index(["id", "subject", "task", "measure"])
    pulls = f.xs(("second-teacher-pulls-multi", "SAR", "L-L"), level=["id", "task", "measure"]).iloc[0]
    # gaps per seed: multi 2, 3, 1; single 10, 10, 10 -> d = -8, SE 1/sqrt(3): the claimed "less" holds
    assert (
        pulls["diff"] == pytest.approx(-8.0)
        and pulls.se == pytest.approx(1 / math.sqrt(3))
        and pulls.verdict == "holds"
    )
    raises = f.xs(("distillation-raises-loyalty", "SAR", "L-L"), level=["id", "task", "measure"])
    assert (raises.verdict == "holds").all() and len(raises) == 2
    closed = loyalty_findings(loy, gate=lambda teachers, task: (False, "the teacher cannot test it"))
    assert (closed[closed.id == "distillation-raises-loyalty"].reason == "the teacher cannot test it").all()
    assert (closed[closed.id == "multi-closer-to-cased"].verdict == "holds").any()  # the paper's orderings: no gate
    oc = ordering_controls(loy).loc[("SAR", "L-L")]
    assert oc["gap DistilMulti-BERT-base-ro"] == pytest.approx(2.0) and oc["gap control-init-only"] == pytest.approx(
        1.0
    )
    assert math.isnan(oc["teachers ↔ each other"])


def test_chance_agreement_and_floor_by_hand():
    from rokd.loyalty import agreement_floor, chance_agreement

    # teacher labels (0, 0, 1, 1), student (0, 1, 1, 1): f_t = (1/2, 1/2), f_s = (1/4, 3/4) -> 1/8 + 3/8 = 1/2
    assert chance_agreement([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5)
    # gold (0, 0, 1, 0): acc_t = 3/4, acc_s = 2/4 -> floor 1/4; L-L = 3/4 >= floor
    assert agreement_floor([0, 0, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.25)
    assert agreement_floor([0, 0], [1, 1], [1, 1]) == 0.0  # acc 0 + 0 - 1 < 0: no floor


# --- compact predictions: the committed form loyalty is computed from ------------------------------


def test_compact_keeps_the_prediction_first_and_spreads_the_rest_evenly():
    from rokd.tasks.compact import compact, expand

    probs = np.array([[0.5, 0.3, 0.15, 0.05], [0.4, 0.4, 0.1, 0.1]], dtype=np.float32)
    # row 1: a tie; the stored prediction (label 1) must come first whatever argsort does
    preds = Predictions(
        ids=np.array(["a", "b"]),
        gold=np.array([0, 1]),
        pred=np.array([0, 1]),
        probs=probs,
        label_names=["A", "B", "C", "D"],
    )
    rows, comp = compact(preds, top_k=2)
    np.testing.assert_array_equal(comp.topk_idx, [[0, 1], [1, 0]])
    assert comp.topk_p.dtype == np.float16 and comp.topk_idx.dtype == np.uint16
    back = expand(rows, comp)
    # kept: 0.5, 0.3 -> rest 0.2 over the two other labels = 0.1 each (float16 rounding of the kept values)
    np.testing.assert_allclose(back.probs[0], [0.5, 0.3, 0.1, 0.1], atol=1e-3)
    np.testing.assert_allclose(back.probs[1], [0.4, 0.4, 0.1, 0.1], atol=1e-3)
    np.testing.assert_array_equal(back.pred, [0, 1])
    full_rows, full = compact(preds, top_k=10)  # k capped at the 4 labels: the distribution is kept whole
    np.testing.assert_allclose(expand(full_rows, full).probs, probs, atol=1e-3)


def test_loyalty_recomputes_exactly_from_compact_predictions(tmp_path, monkeypatch):
    import json
    import shutil

    from rokd.tasks.compact import COMPACT_DIR, compact_size

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=TASKS, seeds=(1, 2), n=40)
    first = compute_loyalty("smoke", tasks=TASKS, seeds=[1, 2])
    cfg = json.loads((res / "loyalty_config.json").read_text())
    assert cfg["format_version"] == 2 and cfg["predictions"] == COMPACT_DIR and cfg["missing_controls"] == []
    assert cfg["compact_bytes"] == compact_size(res) > 0
    # P-L of the top-4 copy vs the full distributions: the flat synthetic XPOS (30 labels) loses a few points
    assert 0 < cfg["prob_loyalty_compaction_error"] < 0.2
    # one rows file per task: every model and seed scores the same test rows
    assert sorted(len(list((res / COMPACT_DIR / t).glob("rows-*.npz"))) for t in TASKS) == [1] * 7
    committed = read_loyalty("smoke")
    shutil.rmtree(res / "predictions")  # what a reader of the repository has: the compact copy only
    again = compute_loyalty("smoke", tasks=TASKS, seeds=[1, 2], write=False)
    pd.testing.assert_frame_equal(again, first)
    pd.testing.assert_frame_equal(read_loyalty("smoke"), committed)
    np.testing.assert_allclose(again.value, committed.value, rtol=1e-9, atol=0)  # the CSV keeps 10 significant digits


def test_compaction_error_vanishes_when_every_label_is_kept(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=("xpos",), seeds=(1,), n=40)
    compute_loyalty("smoke", tasks=["xpos"], seeds=[1], top_k=64)  # 30 labels: all kept, float16 only
    assert json.loads((res / "loyalty_config.json").read_text())["prob_loyalty_compaction_error"] < 1e-3


def test_compact_copy_is_checked_against_its_rows(tmp_path):
    import json

    from rokd.tasks.compact import StaleCompactError, compact_path, load_compact, rows_path, save_compact

    write_synthetic_predictions(tmp_path, tasks=("sar",), seeds=(1,), n=12)
    p = load_predictions(predictions_path(tmp_path, "bert-base-ro", "sar", 1))
    path = save_compact(tmp_path, "bert-base-ro", "sar", 1, p)
    with np.load(path) as z:
        digest = json.loads(str(z["meta"]))["rows_digest"]
    rows_file = rows_path(tmp_path, "sar", digest)
    with np.load(rows_file) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["gold"] = arrays["gold"][::-1].copy()  # someone edits the gold labels by hand
    np.savez_compressed(rows_file, **arrays)
    with pytest.raises(StaleCompactError, match="does not match its name"):
        load_compact(tmp_path, "bert-base-ro", "sar", 1)
    assert compact_path(tmp_path, "bert-base-ro", "sar", 1) == path


def test_controls_without_predictions_are_named_not_silently_dropped(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    write_synthetic_predictions(res, tasks=("sapn", "sts"), seeds=(1, 2), n=12, controls=False)
    df = compute_loyalty("smoke", tasks=["sapn", "sts"], seeds=[1, 2])
    cfg = json.loads((res / "loyalty_config.json").read_text())
    assert cfg["missing_controls"] == ["control-random-init", "control-init-only"]
    assert ("robert-base", "bert-base-ro") in set(zip(df.student, df.teacher))  # teacher vs teacher needs no control
    assert "control-init-only" not in set(df.student)
    # a control with only some of its files is an unfinished run: an error, not a partial table
    write_synthetic_predictions(res, tasks=("sapn",), seeds=(1,), n=12)
    with pytest.raises(FileNotFoundError, match="control prediction file"):
        compute_loyalty("smoke", tasks=["sapn", "sts"], seeds=[1, 2])


def test_loyalty_or_committed_says_where_the_numbers_come_from(tmp_path, monkeypatch):
    from rokd.loyalty import loyalty_or_committed

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    res = tmp_path / "smoke"
    res.mkdir()
    # a legacy folder: only loyalty.csv and a config without format_version
    pd.DataFrame(_rows("distil-bert-base-ro", "bert-base-ro", "upos", 1, label_loyalty=0.5)).to_csv(
        res / "loyalty.csv", index=False
    )
    (res / "loyalty_config.json").write_text('{"profile": "smoke"}')
    df, how = loyalty_or_committed("smoke")
    assert len(df) == 1 and "cannot be recomputed from the repository" in how


def test_loyalty_matrix_and_vs_score():
    s, t = "distil-robert-base", "robert-base"
    loy = pd.DataFrame(
        _rows(s, t, "upos", 1, label_loyalty=0.5, prob_loyalty=0.4) + _rows(s, t, "sts", 1, regression_loyalty=0.9)
    )
    m = loyalty_matrix(loy, "label_loyalty")
    assert m.loc["Distil-RoBERT-base → RoBERT-base", "upos"] == pytest.approx(50.0)
    scores = pd.DataFrame(
        [
            {"model": s, "task": "upos", "metric": "accuracy", "seed": 1, "value": 0.6},  # the headline metric
            {"model": s, "task": "upos", "metric": "macro_f1", "seed": 1, "value": 0.99},  # not the headline: ignored
            {"model": t, "task": "upos", "metric": "accuracy", "seed": 1, "value": 0.7},
            {"model": s, "task": "sts", "metric": "pearson", "seed": 1, "value": 0.3},
            {"model": t, "task": "sts", "metric": "pearson", "seed": 1, "value": 0.4},
        ]
    )
    v = loyalty_vs_score(loy, scores).set_index("task")
    assert v.loc["upos", "loyalty"] == pytest.approx(50.0) and v.loc["upos", "student_score"] == pytest.approx(60.0)
    assert v.loc["upos", "score_gap"] == pytest.approx(-10.0)
    assert v.loc["sts", "loyalty_metric"] == "R-L" and v.loc["sts", "teacher_score"] == pytest.approx(40.0)


def test_agreement_matrix_top_k_pools_the_rest():
    names = ("A", "B", "C", "D")
    t = _cls(list("abcdefgh"), [0, 0, 0, 0, 1, 1, 2, 3], names=names)
    s = _cls(list("abcdefgh"), [0, 0, 0, 1, 1, 0, 3, 2], names=names)
    full = agreement_matrix(t, s, normalize=False)
    assert full.loc["A", "A"] == 3 and full.loc["A", "B"] == 1 and full.loc["C", "D"] == 1
    top = agreement_matrix(t, s, top_k=2)
    assert list(top.index) == ["A", "B", "(other)"]
    np.testing.assert_allclose(top.loc["A"].to_numpy(), [0.75, 0.25, 0.0])
    np.testing.assert_allclose(top.loc["B"].to_numpy(), [0.5, 0.5, 0.0])
    np.testing.assert_allclose(top.loc["(other)"].to_numpy(), [0.0, 0.0, 1.0])  # C<->D swaps stay "other"


def test_loyalty_score_correlation_ranks():
    from rokd.loyalty import loyalty_score_correlation

    vs = pd.DataFrame(
        {
            "task": ["upos"] * 4 + ["sts"] * 2,
            "loyalty_metric": ["L-L"] * 4 + ["R-L"] * 2,
            "loyalty": [10, 20, 30, 40, 1, 2],
            "student_score": [1, 2, 4, 3, 5, 6],
        }
    )
    out = loyalty_score_correlation(vs).set_index("task")
    # ranks (1,2,3,4) vs (1,2,4,3): d^2 = 0+0+1+1 = 2 -> rho = 1 - 6*2 / (4*15) = 0.8
    assert out.loc["upos", "spearman_rho"] == pytest.approx(0.8)
    assert math.isnan(out.loc["sts", "spearman_rho"])  # only two points


def test_loyalty_vs_score_needs_score_columns():
    loy = pd.DataFrame(_rows("distil-bert-base-ro", "bert-base-ro", "upos", 1, label_loyalty=0.5))
    with pytest.raises(ValueError, match="run the evaluation step"):
        loyalty_vs_score(loy, pd.DataFrame())


def test_cli_reports_missing_predictions_without_traceback(tmp_path, monkeypatch, capsys):
    from rokd.loyalty import cli as loyalty_cli

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    parser = argparse.ArgumentParser()
    loyalty_cli.register(parser.add_subparsers())
    args = parser.parse_args(["loyalty", "--profile", "smoke", "--tasks", "sts", "--top-k", "3"])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "prediction file(s) missing" in err and "seed1.npz" in err
    assert not (tmp_path / "smoke" / "loyalty.csv").exists()
