"""Size and speed of the built models, for the results chapter: the records :mod:`rokd.tasks.speed` measured.

- :func:`model_stats`: parameters, size on disk and inference throughput (teacher vs student), the record
  ``model_stats.json`` of :func:`rokd.tasks.speed.measure_model_stats`.
- :func:`precision_table`: the teachers and students in fp32 / bf16 / int8 (``precision_speed.csv`` of
  :func:`rokd.tasks.speed.measure_precision_speed`) beside what each format costs on the tasks
  (:mod:`rokd.precision_cost`: score change, loyalty to its own fp32 model), computed from the test
  predictions the fine-tuning writes when the profile sets ``evaluate.variants`` and saved to
  ``precision_cost.csv``, which is read back where those predictions are not on this machine.

Measuring is the tasks step's business; this module only reads, so a published book shows the numbers of
the run that made it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rokd import io
from rokd.models.registry import DISPLAY_NAMES, MODEL_KEYS, STUDENT_TEACHERS, TEACHERS
from rokd.paths import results_dir
from rokd.tasks.speed import MODEL_STATS_FILE, PRECISION_SPEED_FILE

PRECISION_COST_FILE = "precision_cost.csv"


def _results(profile: str, results: str | Path | None) -> Path:
    return Path(results) if results is not None else results_dir(profile)


def model_stats(profile: str, results: str | Path | None = None) -> pd.DataFrame:
    """The record of :func:`rokd.tasks.speed.measure_model_stats`, indexed by display name; empty without one."""
    path = _results(profile, results) / MODEL_STATS_FILE
    if not path.exists():
        return pd.DataFrame()
    return pd.DataFrame(io.read_json(path)).set_index("model")


def precision_table(profile: str, results: str | Path | None = None) -> pd.DataFrame:
    """Teachers and students in fp32 / bf16 / int8: throughput (own fp32, and the fp32 teacher) and the cost.

    Speed: the record ``precision_speed.csv`` of :func:`rokd.tasks.speed.measure_precision_speed`. Cost:
    :func:`rokd.precision_cost.precision_cost` over every model whose variant predictions exist (mean over
    tasks and seeds), saved per task and seed to ``precision_cost.csv``, else read back from it. Empty
    without a speed record.
    """
    from rokd.precision_cost import COST_COLUMNS, cost_summary, precision_cost
    from rokd.tasks.speed import precision_speed_table

    res = _results(profile, results)
    keys = [k for k in MODEL_KEYS if k in TEACHERS or k in STUDENT_TEACHERS]
    speed_file, cost_file = res / PRECISION_SPEED_FILE, res / PRECISION_COST_FILE
    if not speed_file.exists():
        return pd.DataFrame()
    speed = pd.read_csv(speed_file)
    variants = [v for v in ("bf16", "int8") if v in set(speed["variant"])]
    try:
        cost = precision_cost(profile, keys, variants=variants, results=res)
        io.atomic_write_text(cost_file, cost.to_csv(index=False))
    except FileNotFoundError:
        cost = pd.read_csv(cost_file).reindex(columns=list(COST_COLUMNS)) if cost_file.exists() else None
    pairs = {k: STUDENT_TEACHERS[k][0] for k in keys if k in STUDENT_TEACHERS}
    table = precision_speed_table(speed, cost_summary(cost) if cost is not None and len(cost) else None, pairs)
    table.insert(
        0,
        "timing",
        f"{speed['device'].iloc[0]}, {int(speed['threads'].iloc[0])} thread(s), batch "
        f"{int(speed['batch_size'].iloc[0])} x {int(speed['seq_length'].iloc[0])}",
    )
    table["model"] = [DISPLAY_NAMES.get(m, m) for m in table["model"]]
    return table
