"""rokd.stats: the rule behind every verdict, on hand-computed standard errors; and the rule applied to a
synthetic scores.csv (a difference inside the noise is inconclusive, one clearly beyond it holds)."""

from __future__ import annotations

import math

import pytest

from rokd import stats
from rokd.stats import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, compare, difference, verdict


def test_paired_standard_error_by_hand():
    # per-seed differences 1, 2, 3: mean 2, sample sd 1, SE = 1 / sqrt(3) = 0.57735; 2 SE = 1.1547 < 2
    d = difference({1: 10.0, 2: 12.0, 3: 14.0}, {1: 9.0, 2: 10.0, 3: 11.0})
    assert d.diff == pytest.approx(2.0) and d.se == pytest.approx(1 / math.sqrt(3)) and d.test == "paired (3 seeds)"
    assert verdict(d)[0] == HOLDS
    assert verdict(d, "less")[0] == DOES_NOT_HOLD  # the claim "a < b" is contradicted beyond the noise


def test_welch_standard_error_by_hand():
    # different seed sets: a = (1, 3): mean 2, var 2; b = (2, 6): mean 4, var 8;
    # SE = sqrt(2/2 + 8/2) = sqrt(5) = 2.2361; d = -2 lies inside +-4.47
    d = difference({1: 1.0, 2: 3.0}, {3: 2.0, 4: 6.0})
    assert d.test == "Welch" and d.diff == pytest.approx(-2.0) and d.se == pytest.approx(math.sqrt(5))
    assert verdict(d)[0] == INCONCLUSIVE and verdict(d, "less")[0] == INCONCLUSIVE
    # unpaired on request, even with common seeds: (10, 12, 14) var 4, (9, 10, 11) var 1 -> SE sqrt(4/3 + 1/3)
    w = difference({1: 10.0, 2: 12.0, 3: 14.0}, {1: 9.0, 2: 10.0, 3: 11.0}, paired=False)
    assert w.test == "Welch" and w.se == pytest.approx(math.sqrt(5 / 3))


def test_fewer_than_two_seeds_is_inconclusive():
    d = difference({1: 90.0}, {1: 10.0})
    assert math.isnan(d.se) and d.diff == pytest.approx(80.0)
    v, why = verdict(d)
    assert v == INCONCLUSIVE and "fewer than 2 seeds" in why
    assert verdict(difference({}, {1: 1.0, 2: 2.0}))[0] == INCONCLUSIVE


def test_minimum_effect_and_equivalence():
    tight = {1: 0.5, 2: 0.6, 3: 0.4}  # d = 0.5, SE = 0.1/sqrt(3) = 0.0577
    zero = {1: 0.0, 2: 0.0, 3: 0.0}
    assert verdict(difference(tight, zero), "greater", margin=0.0)[0] == HOLDS
    # beyond the noise but the band (0.38, 0.62) lies below the claimed minimum of 2 points
    v, why = verdict(difference(tight, zero), "greater", margin=2.0)
    assert v == DOES_NOT_HOLD and "below the claimed minimum" in why
    assert verdict(difference(tight, zero), "equivalent", margin=1.0)[0] == HOLDS  # band inside +-1
    assert verdict(difference(tight, zero), "equivalent", margin=0.3)[0] == DOES_NOT_HOLD  # band outside +-0.3
    assert verdict(difference(tight, zero), "equivalent", margin=0.55)[0] == INCONCLUSIVE  # band across 0.55
    with pytest.raises(ValueError, match="claim kind"):
        verdict(difference(tight, zero), "bigger")


def test_nan_values_are_left_out():
    d = difference({1: 3.0, 2: float("nan"), 3: 5.0}, {1: 1.0, 2: 1.0, 3: 1.0})
    assert d.test == "paired (2 seeds)" and d.diff == pytest.approx(3.0)


# --- the rule on a synthetic scores.csv ----------------------------------------------------------


def _scores(path, per_model: dict[str, list[float]], task="sapn", metric=None):
    from rokd.tasks.metrics import headline_metric
    from rokd.tasks.scores import merge_scores

    for model, values in per_model.items():
        for seed, v in enumerate(values, start=1):
            merge_scores(path / "scores.csv", model, task, seed, {metric or headline_metric(task): v})


def test_synthetic_scores_inside_the_noise_is_inconclusive_beyond_it_holds(tmp_path):
    from rokd.report import load_scores, teacher_gains

    noisy, clear = tmp_path / "noisy", tmp_path / "clear"
    # teacher - control per seed: +0.03, -0.02, +0.02 (points: 3, -2, 2): mean 1, sd 2.6458, SE 1.5275
    _scores(noisy, {"bert-base-ro": [0.83, 0.78, 0.82], "control-random-init": [0.80, 0.80, 0.80]})
    # per seed +10.0, +10.5, +9.5 points: mean 10, SE 0.2887
    _scores(clear, {"bert-base-ro": [0.90, 0.905, 0.895], "control-random-init": [0.80, 0.80, 0.80]})
    g = teacher_gains(load_scores("unit", noisy), teachers=["bert-base-ro"]).set_index("task").loc["sapn"]
    assert (
        g.verdict == INCONCLUSIVE
        and g["diff"] == pytest.approx(1.0)
        and g.se == pytest.approx(math.sqrt(7) / math.sqrt(3))
    )
    g = teacher_gains(load_scores("unit", clear), teachers=["bert-base-ro"]).set_index("task").loc["sapn"]
    assert g.verdict == HOLDS and g["diff"] == pytest.approx(10.0) and g.se == pytest.approx(0.5 / math.sqrt(3))


def test_compare_returns_difference_and_reason():
    d, v, why = compare({1: 1.0, 2: 2.0}, {1: 1.0, 2: 2.0})
    assert d.diff == 0.0 and d.se == 0.0 and v == INCONCLUSIVE and "inside the noise" in why
    assert stats.Z == 2.0 and "2 SE" in stats.RULE


def test_a_student_pooled_over_distillations_is_compared_unpaired_with_a_teacher():
    # runs (k, s) numbered 1000 (k - 1) + s (rokd.report.tables.load_scores): two distillations x 3 seeds
    student = {1: 80.0, 2: 81.0, 3: 82.0, 1001: 78.0, 1002: 79.0, 1003: 80.0}
    teacher = {1: 85.0, 2: 85.5, 3: 86.0}
    d = difference(student, teacher)
    assert d.test == "Welch (a: 6 runs, 2 distillations)" and (d.n_a, d.n_b) == (6, 3)
    assert d.diff == pytest.approx(80.0 - 85.5)
    # student: distillation means 81 and 79 -> var 2, / K = 1.0; within: squares 1+0+1 per distillation,
    # 4 / (6 - 2) = 1, / N = 1/6 < 1.0. Teacher: var 0.25 / 3. (As 6 independent runs: 2.0 / 6, a third.)
    assert d.se == pytest.approx(math.sqrt(1.0 + 0.25 / 3))
    assert stats.run_number(2, 3) == 1003 and stats.run_number(1, 3) == 3


def test_two_pooled_students_are_paired_run_by_run_and_clustered_by_distillation():
    student = {1: 80.0, 2: 81.0, 3: 82.0, 1001: 78.0, 1002: 79.0, 1003: 80.0}
    # differences per run: distillation 1: 1, 2, 3 (mean 2); distillation 2: 3, 4, 5 (mean 4)
    other = {1: 81.0, 2: 83.0, 3: 85.0, 1001: 81.0, 1002: 83.0, 1003: 85.0}
    d = difference(other, student)
    assert d.test == "paired (6 runs, 2 distillations)" and d.diff == pytest.approx(3.0)
    # between: var(2, 4) = 2, / 2 = 1.0; within: (1 + 0 + 1) * 2 / 4 = 1, / 6 = 0.1667: SE = 1.0
    assert d.se == pytest.approx(1.0)
    assert verdict(d)[0] == HOLDS  # 3 > 2 SE = 2.0
    # the distillations agree: the within-distillation term (fine-tuning seeds) is the floor
    same = {1: 81.0, 2: 83.0, 3: 85.0, 1001: 79.0, 1002: 81.0, 1003: 83.0}  # differences 1, 2, 3 both times
    d = difference(same, student)
    assert d.diff == pytest.approx(2.0) and d.se == pytest.approx(math.sqrt(4 / 4 / 6))
    # one run per distillation: only the between-distillation estimate exists
    d = difference({1: 2.0, 1001: 4.0}, {1: 0.0, 1001: 0.0})
    assert d.test == "paired (2 runs, 2 distillations)" and d.se == pytest.approx(1.0)
