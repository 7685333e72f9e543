"""The paper's published numbers (Avram et al., LREC 2022 poster), for side-by-side tables.

Transcribed from the authors' poster as summarised in the project notes; they are *reference*
values shown beside ours, never used as results.
"""

from __future__ import annotations

import math

from rokd.spec import TASKS

# The task columns of the paper's tables, their titles and headline metrics (defined in rokd.spec).
TASK_COLUMNS = tuple(TASKS)
COLUMN_TITLES = {k: t.title for k, t in TASKS.items()}
HEADLINE_METRIC = {k: t.headline_metric for k, t in TASKS.items()}

# Scores in percent (STS: Pearson x 100).
PAPER_SCORES: dict[str, dict[str, float]] = {
    "bert-base-ro": {
        "upos": 98.00,
        "xpos": 96.46,
        "ner": 85.88,
        "sapn": 97.94,
        "sar": 79.61,
        "di": 95.41,
        "sts": 79.94,
    },
    "robert-base": {"upos": 98.02, "xpos": 97.15, "ner": 85.14, "sapn": 98.20, "sar": 79.40, "di": 96.17, "sts": 81.18},
    "distil-bert-base-ro": {
        "upos": 97.97,
        "xpos": 97.08,
        "ner": 83.35,
        "sapn": 98.12,
        "sar": 80.51,
        "di": 96.31,
        "sts": 80.57,
    },
    "distil-robert-base": {
        "upos": 97.12,
        "xpos": 95.79,
        "ner": 83.11,
        "sapn": 97.61,
        "sar": 79.58,
        "di": 96.11,
        "sts": 79.80,
    },
    "distilmulti-bert-base-ro": {
        "upos": 98.07,
        "xpos": 96.93,
        "ner": 83.22,
        "sapn": 97.74,
        "sar": 79.77,
        "di": 96.18,
        "sts": 80.66,
    },
}

# Parameter counts from the paper (millions).
PAPER_PARAMS_M = {
    "bert-base-ro": 124,
    "robert-base": 114,
    "distil-bert-base-ro": 81,
    "distil-robert-base": 72,
    "distilmulti-bert-base-ro": 81,
}

# Loyalty rows of the poster (percent). The poster does not say which pair each row measures; our
# reading (see notes): DistilMulti vs each teacher, then Distil-BERT-base-ro vs its teacher.
PAPER_LOYALTY: list[dict[str, object]] = [
    {
        "student": "distilmulti-bert-base-ro",
        "teacher": "bert-base-ro",
        "label_loyalty": 87.80,
        "prob_loyalty": 74.76,
        "regression_loyalty": 94.96,
    },
    {
        "student": "distilmulti-bert-base-ro",
        "teacher": "robert-base",
        "label_loyalty": 84.63,
        "prob_loyalty": 71.95,
        "regression_loyalty": 92.24,
    },
    {
        "student": "distil-bert-base-ro",
        "teacher": "bert-base-ro",
        "label_loyalty": 89.75,
        "prob_loyalty": 73.23,
        "regression_loyalty": 94.64,
    },
]


def paper_score(model: str, task: str) -> float:
    """The paper's score of ``model`` on ``task`` (percent), NaN for a model or task it did not publish."""
    return PAPER_SCORES.get(model, {}).get(task, math.nan)


def paper_text(value: float, fmt: str = ".1f", suffix: str = "") -> str:
    """A paper number for a table cell: ``n/a`` where the paper has none (a model of one's own)."""
    return "n/a" if math.isnan(value) else f"{value:{fmt}}{suffix}"
