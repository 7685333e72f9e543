"""Loyalty: how closely a student *behaves like* its teacher, not only how well it scores.

- :mod:`rokd.loyalty.measures`: L-L, P-L, R-L and the references beside L-L (chance agreement, accuracy
  floor), pure functions of aligned predictions;
- :mod:`rokd.loyalty.compute`: the paper's pairs and the control pairs, ``loyalty.csv`` (computed from the
  compact predictions of :mod:`rokd.tasks.compact`, so it can be recomputed from the repository);
- :mod:`rokd.loyalty.tables`: the chapter's tables and the orderings' verdicts (rule of :mod:`rokd.stats`);
- :mod:`rokd.loyalty.plots`: the chapter's figures;
- :mod:`rokd.loyalty.cli`: ``rokd loyalty``.

Values are fractions (reports multiply by 100). Everything is importable from ``rokd.loyalty`` directly.
"""

from rokd.loyalty.compute import (
    FORMAT_VERSION,
    LOYALTY_COLUMNS,
    LoyaltyConfig,
    available,
    compute_loyalty,
    control_pairs,
    load_pair,
    loyalty_csv_path,
    loyalty_or_committed,
    loyalty_pairs,
    pair_label,
    pool_replicas,
    read_loyalty,
    read_loyalty_config,
)
from rokd.loyalty.measures import (
    ENSEMBLE,
    LABEL_TASKS,
    METRIC_TITLES,
    METRICS,
    REFERENCE_TITLES,
    REFERENCES,
    REGRESSION_TASKS,
    LoyaltyAlignmentError,
    agreement_floor,
    agreement_matrix,
    chance_agreement,
    check_aligned,
    ensemble_predictions,
    js_distance_rows,
    label_loyalty,
    pair_loyalty,
    probability_loyalty,
    regression_loyalty,
)
from rokd.loyalty.plots import (
    pair_available,
    plot_agreement,
    plot_loyalty_heatmaps,
    plot_loyalty_vs_score,
    plot_regression_loyalty,
    plot_sts_clouds,
)
from rokd.loyalty.tables import (
    LOYALTY_CLAIMS,
    format_paper_table,
    loyalty_discussion,
    loyalty_findings,
    loyalty_matrix,
    loyalty_score_correlation,
    loyalty_verdict_counts,
    loyalty_vs_score,
    ordering_controls,
    paper_style_table,
    references_table,
)

__all__ = [
    "pair_available",
    "plot_agreement",
    "plot_loyalty_heatmaps",
    "plot_loyalty_vs_score",
    "plot_regression_loyalty",
    "plot_sts_clouds",
    "pair_loyalty",
    "ENSEMBLE",
    "FORMAT_VERSION",
    "LABEL_TASKS",
    "LOYALTY_CLAIMS",
    "LOYALTY_COLUMNS",
    "METRICS",
    "METRIC_TITLES",
    "REFERENCES",
    "REFERENCE_TITLES",
    "REGRESSION_TASKS",
    "LoyaltyAlignmentError",
    "LoyaltyConfig",
    "agreement_floor",
    "agreement_matrix",
    "available",
    "chance_agreement",
    "check_aligned",
    "compute_loyalty",
    "control_pairs",
    "ensemble_predictions",
    "format_paper_table",
    "js_distance_rows",
    "label_loyalty",
    "load_pair",
    "loyalty_csv_path",
    "loyalty_discussion",
    "loyalty_findings",
    "loyalty_matrix",
    "loyalty_or_committed",
    "loyalty_pairs",
    "pool_replicas",
    "loyalty_score_correlation",
    "loyalty_verdict_counts",
    "loyalty_vs_score",
    "ordering_controls",
    "pair_label",
    "paper_style_table",
    "probability_loyalty",
    "read_loyalty",
    "read_loyalty_config",
    "references_table",
    "regression_loyalty",
]
