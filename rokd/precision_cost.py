"""What a cheaper inference variant (int8, bf16) of a fine-tuned model costs on the tasks.

Downstream of :mod:`rokd.tasks` (which writes the test predictions of ``<model>@<variant>`` beside
``<model>``'s when the profile's ``evaluate.variants`` lists them: the same selected weights, quantised or
cast) and of :mod:`rokd.loyalty` (whose measures it uses). For each model x variant x task x seed:

- the **score change**: the task's headline metric of the variant minus that of the fp32 model;
- the **loyalty of the variant to its fp32 self**: L-L and P-L (classification, tagging) or R-L (STS),
  with :func:`rokd.loyalty.pair_loyalty`, the fp32 model in the teacher's place. 100 % L-L means the
  quantised model never changes a label.

    from rokd.precision_cost import precision_cost
    table = precision_cost("mini", ["distil-bert-base-ro", "bert-base-ro"], variants=["int8", "bf16"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rokd.loyalty import pair_loyalty
from rokd.paths import results_dir
from rokd.tasks.finetune import variant_name
from rokd.tasks.metrics import headline_metric, score_predictions
from rokd.tasks.predictions import Predictions, load_predictions, predictions_path

COST_COLUMNS = (
    "model",
    "variant",
    "task",
    "seed",
    "metric",
    "fp32",
    "value",
    "change",
    "label_loyalty",
    "prob_loyalty",
    "regression_loyalty",
)


def variant_cost(reference: Predictions, variant: Predictions, task: str) -> dict[str, float]:
    """Headline metric of both, its change, and the variant's loyalty to the reference (same rows)."""
    metric = headline_metric(task)
    ref_value = score_predictions(task, reference)[metric]
    value = score_predictions(task, variant)[metric]
    loyalty = pair_loyalty(reference, variant, "fp32", "variant")
    return {"metric": metric, "fp32": ref_value, "value": value, "change": value - ref_value, **loyalty}


def precision_cost(
    profile: str,
    models: Sequence[str],
    variants: Sequence[str] = ("int8", "bf16"),
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    results: str | Path | None = None,
) -> pd.DataFrame:
    """One row per model x variant x task x seed that has both prediction files (see the module doc).

    ``tasks`` / ``seeds`` default to the profile's. Raises FileNotFoundError naming the missing files
    when nothing can be compared (run ``rokd evaluate`` with ``evaluate.variants`` set in the profile).
    """
    if tasks is None or seeds is None:
        from rokd.profiles import load_profile

        ev = load_profile(profile).evaluate
        tasks, seeds = tasks or ev.tasks, seeds or ev.seeds
    res = Path(results) if results is not None else results_dir(profile)
    rows, missing = [], []
    for model in models:
        for variant in variants:
            for task in tasks:
                for seed in seeds:
                    ref_path = predictions_path(res, model, task, seed)
                    var_path = predictions_path(res, variant_name(model, variant), task, seed)
                    if not (ref_path.exists() and var_path.exists()):
                        missing += [p for p in (ref_path, var_path) if not p.exists()]
                        continue
                    cost = variant_cost(load_predictions(ref_path), load_predictions(var_path), task)
                    rows.append({"model": model, "variant": variant, "task": task, "seed": seed, **cost})
    if not rows:
        shown = ", ".join(str(p) for p in missing[:3])
        raise FileNotFoundError(
            f"no fp32/variant prediction pair found (missing e.g. {shown}); set evaluate.variants: "
            f"[{', '.join(variants)}] in the profile and run `rokd evaluate`"
        )
    return pd.DataFrame(rows).reindex(columns=list(COST_COLUMNS))


def cost_summary(cost: pd.DataFrame) -> pd.DataFrame:
    """Mean over tasks and seeds per model x variant: score change (points) and loyalty (%)."""
    out = cost.assign(change=cost["change"] * 100)
    for col in ("label_loyalty", "prob_loyalty", "regression_loyalty"):
        out[col] = out[col] * 100
    return (
        out.groupby(["model", "variant"])[["change", "label_loyalty", "prob_loyalty", "regression_loyalty"]]
        .mean()
        .round(2)
    )
