"""Deterministic, seeded, stratified splits (the substitutes for splits the mirror lacks)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable, Sequence

# One seed for every substitute split in the project, so all steps see the same splits.
SPLIT_SEED = 13


def stratified_split(
    strata: Sequence[Hashable], fractions: dict[str, float], seed: int = SPLIT_SEED
) -> dict[str, list[int]]:
    """Split ``range(len(strata))`` into parts of the given ``fractions``, stratum by stratum.

    Within each stratum (visited in sorted order) the indices are shuffled with one ``random.Random(seed)``
    and cut at the rounded cumulative fractions, so every part keeps the strata proportions. Returns,
    per part, the indices in increasing order. The fractions must sum to 1.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, s in enumerate(strata):
        groups[s].append(i)
    rng = random.Random(seed)
    parts: dict[str, list[int]] = {name: [] for name in fractions}
    for stratum in sorted(groups, key=repr):
        idx = groups[stratum]
        rng.shuffle(idx)
        n, cum, lo = len(idx), 0.0, 0
        for name, frac in fractions.items():
            cum += frac
            hi = round(cum * n)
            parts[name].extend(idx[lo:hi])
            lo = hi
    return {name: sorted(v) for name, v in parts.items()}
