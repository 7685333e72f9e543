"""The results chapter: tables, figures, findings and records computed from ``results/<profile>/``.

- :mod:`rokd.report.tables`: the main table (baselines, models, controls), the paper's beside it,
  what pretraining gave (teacher vs ``control-random-init``), retention and the second teacher's effect;
- :mod:`rokd.report.findings`: the claims (stable ids), their per-task verdicts and the discussion;
- :mod:`rokd.report.record`: split provenance, the executed chapters and all compute behind the numbers;
- :mod:`rokd.report.speed`: size and speed of the built models;
- :mod:`rokd.report.plots`: the figures.

The statistics rule every verdict follows is :mod:`rokd.stats` (re-exported here as ``report.stats``).
Everything is importable from ``rokd.report`` directly, as before the split.
"""

from rokd import stats
from rokd.models.registry import BASELINES, CONTROLS, DISPLAY_NAMES, MODEL_KEYS, STUDENT_TEACHERS
from rokd.report.caveats import caveats, chapter_intro, fine_tuning_budget, smoke_note
from rokd.report.earlier import earlier_run_lesson
from rokd.report.findings import (
    CLAIMS,
    DISCUSSION,
    Claim,
    discussion,
    findings,
    measured_findings,
    seeded_findings,
    verdict_counts,
    verdict_grid,
)
from rokd.report.plots import plot_retention, plot_scores
from rokd.report.record import (
    compute_record,
    compute_summary,
    mixed_protocols,
    pipeline_record,
    provenance_summary,
    run_records,
    split_provenance_table,
)
from rokd.report.speed import model_stats, precision_table
from rokd.report.tables import (
    NO_GAIN,
    RETENTION_PAIRS,
    TABLE_KEYS,
    ablation_table,
    acceptance,
    baseline_comparison,
    baseline_sentence,
    gains_view,
    gate,
    headline_note,
    headline_scores,
    load_scores,
    low_score_tasks,
    missing_references,
    paper_table,
    per_seed,
    results_table,
    retention_table,
    retention_wide,
    seed_spread,
    side_by_side,
    summary,
    teacher_gains,
)

__all__ = [
    "caveats",
    "earlier_run_lesson",
    "chapter_intro",
    "fine_tuning_budget",
    "smoke_note",
    "BASELINES",
    "CLAIMS",
    "CONTROLS",
    "DISCUSSION",
    "DISPLAY_NAMES",
    "MODEL_KEYS",
    "NO_GAIN",
    "RETENTION_PAIRS",
    "STUDENT_TEACHERS",
    "TABLE_KEYS",
    "Claim",
    "ablation_table",
    "baseline_comparison",
    "baseline_sentence",
    "compute_record",
    "compute_summary",
    "discussion",
    "findings",
    "gate",
    "headline_note",
    "headline_scores",
    "load_scores",
    "low_score_tasks",
    "measured_findings",
    "missing_references",
    "mixed_protocols",
    "model_stats",
    "precision_table",
    "paper_table",
    "per_seed",
    "pipeline_record",
    "plot_retention",
    "plot_scores",
    "provenance_summary",
    "results_table",
    "retention_table",
    "retention_wide",
    "run_records",
    "seed_spread",
    "seeded_findings",
    "side_by_side",
    "split_provenance_table",
    "stats",
    "summary",
    "gains_view",
    "teacher_gains",
    "acceptance",
    "verdict_counts",
    "verdict_grid",
]
