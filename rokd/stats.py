"""The statistics rule behind every verdict of the results and loyalty chapters.

A claim compares two quantities ``a`` and ``b`` on **one task** (never a mean over tasks, where opposite
signs would cancel), each measured once per fine-tuning seed. The rule:

1. **Difference and standard error from the seeds.** ``d = mean(a) - mean(b)``. When both were measured
   under the same seeds (same fine-tuning seed: same training subset, batch order and head
   initialisation seed), the pairing is real and ``SE = sd(a_i - b_i) / sqrt(n)`` over the common
   seeds; otherwise (different seed sets) Welch's ``SE = sqrt(s_a^2 / n_a + s_b^2 / n_b)``.
   Fewer than 2 seeds on a side gives no standard error, hence no verdict (``inconclusive``).
   A student distilled several times (``<student>@d<k>``) has runs ``(k, s)``, numbered
   ``REPLICA_SEED_STRIDE * (k - 1) + s`` (:func:`run_number`). Runs that share a distillation share its
   draw, so they are not independent: the variance of a mean over K distillations is estimated as
   ``max(var(m_k) / K, s_w^2 / N)`` (``m_k`` the mean of distillation k, ``s_w^2`` the pooled variance within
   distillations, N runs): the between-distillation estimate, never below what the fine-tuning seeds alone
   give. Treating the N runs as independent would weigh the distillation variance by about 1/N instead of
   1/K (with 2 distillations x 3 seeds, 1/10 instead of 1/2).
2. **Noise band** ``[d - 2 SE, d + 2 SE]`` (:data:`Z` = 2). With 3 seeds a paired band of 2 SE is
   about an 82 % two-sided interval (Student's t, 2 degrees of freedom), not 95 %: a ``holds`` at three
   seeds is a screening result, and a reader who wants 95 % can read the ``se`` column.
3. **Verdict** for each kind of claim (``margin`` is the claim's stated minimum effect, in points):

   - ``greater`` (``a`` beats ``b`` by at least ``margin``): **holds** if ``d > 2 SE`` and ``d >= margin``;
     **does not hold** if ``d < -2 SE`` (the other direction beyond the noise) or ``d + 2 SE < margin``
     (the band excludes the claimed size); else **inconclusive**.
   - ``less``: the same with ``a`` and ``b`` swapped.
   - ``equivalent`` (``|a - b| <= margin``): **holds** if the whole band lies inside ``[-margin, margin]``;
     **does not hold** if it lies wholly outside; else **inconclusive**.

These functions are pure (numbers in, numbers and words out) and unit-tested with hand-computed
standard errors in ``tests/test_stats.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

Z = 2.0  # half-width of the noise band, in standard errors
MIN_SEEDS = 2
# Run numbers of a student distilled several times: REPLICA_SEED_STRIDE * (k - 1) + fine-tuning seed.
REPLICA_SEED_STRIDE = 1000
KINDS = ("greater", "less", "equivalent")
HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)

RULE = (
    "Each claim is tested per task: d = mean(a) − mean(b) over the fine-tuning seeds, with a standard error "
    "from the seeds (paired by seed when both sides were fine-tuned with the same seeds, Welch otherwise). "
    f"A claim that a beats b (by at least its stated minimum effect m) **holds** if d > {Z:g} SE and d ≥ m; it "
    f"**does not hold** if d < −{Z:g} SE, or if d + {Z:g} SE < m; otherwise it is **inconclusive**. A claim that a "
    f"and b are equivalent within ±m holds if d ± {Z:g} SE lies inside ±m, does not hold if it lies wholly outside, "
    f"else is inconclusive. Fewer than {MIN_SEEDS} seeds on a side: inconclusive. A student distilled K times "
    "counts its runs clustered by distillation: the variance of its mean is the larger of var(distillation "
    "means) / K and the within-distillation variance / N. With 3 seeds the band "
    f"d ± {Z:g} SE is about an 82 % interval (t, 2 degrees of freedom), so `holds` is a screening result, "
    "not a 5 % test."
)


@dataclass(frozen=True)
class Claim:
    """A checked statement. ``id`` is stable (code and prose refer to it); ``text`` may be reworded freely.

    ``kind`` / ``margin``: the test of :func:`verdict` (``margin`` in points), or ``"measured"`` for a
    one-off measurement against a stated threshold (size, speed). ``distillation``: a claim about what
    distillation did, tested only where the teacher(s) beat ``control-random-init``. ``difference``: what the
    tested difference subtracts, in words (a threshold such as 0.97 x the teacher is not a plain gap).
    """

    id: str
    text: str
    kind: str = "greater"
    margin: float = 0.0
    paper: str = ""
    distillation: bool = False
    difference: str = ""


@dataclass(frozen=True)
class Difference:
    """``a - b`` with its standard error (NaN when the seeds cannot give one)."""

    diff: float
    se: float
    n_a: int
    n_b: int
    test: str  # "paired (n seeds)", "Welch", or why there is none

    @property
    def low(self) -> float:
        return self.diff - Z * self.se

    @property
    def high(self) -> float:
        return self.diff + Z * self.se

    @property
    def has_noise_estimate(self) -> bool:
        return not (math.isnan(self.diff) or math.isnan(self.se))


def _mean_var(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
    return mean, var


def run_number(distillation: int, seed: int) -> int:
    """The run number of fine-tuning seed ``seed`` of the ``distillation``-th distillation (1-based)."""
    return REPLICA_SEED_STRIDE * (distillation - 1) + seed


def distillation_of(run: int) -> int:
    """The distillation (1-based) a run number of :func:`run_number` belongs to."""
    return run // REPLICA_SEED_STRIDE + 1


def _var_of_mean(values: Mapping[int, float]) -> tuple[float, float, int]:
    """``(mean, variance of the mean, distillations)`` of runs numbered by :func:`run_number`.

    One distillation: the sample variance over N. Several: ``max(var(m_k) / K, s_w^2 / N)`` (module docstring).
    """
    n = len(values)
    groups: dict[int, list[float]] = {}
    for run, v in values.items():
        groups.setdefault(distillation_of(run), []).append(v)
    k = len(groups)
    if k < 2:
        mean, var = _mean_var(list(values.values()))
        return mean, var / n, k
    means = {d: sum(g) / len(g) for d, g in groups.items()}
    mean = sum(values.values()) / n
    _, between = _mean_var(list(means.values()))
    within_ss = sum((v - means[d]) ** 2 for d, g in groups.items() for v in g)
    if n == k:  # one run per distillation: nothing to estimate the fine-tuning seeds' share from
        return mean, between / k, k
    return mean, max(between / k, within_ss / (n - k) / n), k


def _runs(n: int, k: int) -> str:
    return f"{n} seeds" if k < 2 else f"{n} runs, {k} distillations"


def difference(a: Mapping[int, float], b: Mapping[int, float], paired: bool = True) -> Difference:
    """``a - b`` from per-seed values (``{seed: value}``), paired on the common seeds when ``paired``.

    Pairing is used when ``paired`` and both sides have the same seeds (at least :data:`MIN_SEEDS`);
    otherwise Welch's standard error over each side's own seeds -- e.g. a student pooled over two
    distillations (runs ``(k, s)``) against a teacher fine-tuned once per seed ``s``. Runs of several
    distillations are clustered by distillation (module docstring). NaN values are left out.
    """
    same_seeds = {int(k) for k in a} == {int(k) for k in b}  # before dropping NaN: a NaN run stays paired
    a = {int(k): float(v) for k, v in a.items() if not math.isnan(float(v))}
    b = {int(k): float(v) for k, v in b.items() if not math.isnan(float(v))}
    n_a, n_b = len(a), len(b)
    if not n_a or not n_b:
        return Difference(math.nan, math.nan, n_a, n_b, "no values on one side")
    common = sorted(set(a) & set(b))
    if paired and same_seeds and len(common) >= MIN_SEEDS:
        mean, var, k = _var_of_mean({s: a[s] - b[s] for s in common})
        n = len(common)
        return Difference(mean, math.sqrt(var), n, n, f"paired ({_runs(n, k)})")
    if n_a < MIN_SEEDS or n_b < MIN_SEEDS:
        mean_a, mean_b = sum(a.values()) / n_a, sum(b.values()) / n_b
        return Difference(mean_a - mean_b, math.nan, n_a, n_b, f"fewer than {MIN_SEEDS} seeds ({n_a} vs {n_b})")
    (mean_a, var_a, k_a), (mean_b, var_b, k_b) = _var_of_mean(a), _var_of_mean(b)
    clustered = [f"{side}: {_runs(n, k)}" for side, n, k in (("a", n_a, k_a), ("b", n_b, k_b)) if k > 1]
    test = "Welch" + (f" ({'; '.join(clustered)})" if clustered else "")
    return Difference(mean_a - mean_b, math.sqrt(var_a + var_b), n_a, n_b, test)


def verdict(d: Difference, kind: str = "greater", margin: float = 0.0) -> tuple[str, str]:
    """The verdict of one claim on one task and the reason in words (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"claim kind must be one of {KINDS}, got {kind!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not d.has_noise_estimate:
        return INCONCLUSIVE, f"no noise estimate: {d.test}"
    band = f"d = {d.diff:+.2f} ± {Z * d.se:.2f} ({Z:g} SE, {d.test})"
    if kind == "equivalent":
        if -margin < d.low and d.high < margin:
            return HOLDS, f"{band} lies inside ±{margin:g}"
        if d.low > margin or d.high < -margin:
            return DOES_NOT_HOLD, f"{band} lies outside ±{margin:g}"
        return INCONCLUSIVE, f"{band} overlaps the edge of ±{margin:g}"
    x = d if kind == "greater" else Difference(-d.diff, d.se, d.n_b, d.n_a, d.test)
    sign = "" if kind == "greater" else " (reversed: b − a)"
    band = f"d = {x.diff:+.2f} ± {Z * x.se:.2f}{sign} ({Z:g} SE, {x.test})"
    if x.diff > Z * x.se and x.diff >= margin:
        return HOLDS, f"{band}: beyond the noise" + (f" and ≥ {margin:g}" if margin else "")
    if x.diff < -Z * x.se:
        return DOES_NOT_HOLD, f"{band}: the other direction, beyond the noise"
    if margin and x.high < margin:
        return DOES_NOT_HOLD, f"{band}: below the claimed minimum {margin:g}"
    return INCONCLUSIVE, f"{band}: inside the noise"


def compare(
    a: Mapping[int, float], b: Mapping[int, float], kind: str = "greater", margin: float = 0.0, paired: bool = True
) -> tuple[Difference, str, str]:
    """:func:`difference` then :func:`verdict`: ``(difference, verdict, reason)``."""
    d = difference(a, b, paired=paired)
    v, why = verdict(d, kind, margin)
    return d, v, why
