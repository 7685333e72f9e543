"""The results chapter's figures: scores per task and model, retention per task."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rokd.models.registry import BASELINES
from rokd.paper import COLUMN_TITLES, TASK_COLUMNS
from rokd.report.tables import _order_models, display, retention_table, summary
from rokd.tasks.metrics import headline_metric


def plot_scores(scores: pd.DataFrame, ax=None):
    """Grouped bar chart: headline score per task (x) and model (hue), error bars = std over seeds.

    Models and controls are bars; each baseline is a horizontal line across its task's group."""
    import matplotlib.pyplot as plt

    s = summary(scores)
    s = s[s["task"].isin(TASK_COLUMNS)]
    models = [m for m in _order_models(s["model"].unique()) if m not in BASELINES]
    ax = ax or plt.subplots(figsize=(10, 4.5))[1]
    width = 0.8 / max(1, len(models))
    x = np.arange(len(TASK_COLUMNS))
    for i, m in enumerate(models):
        sub = s[s["model"] == m].set_index("task").reindex(TASK_COLUMNS)
        ax.bar(
            x + (i - (len(models) - 1) / 2) * width,
            sub["mean"],
            width,
            yerr=sub["std"].fillna(0),
            label=display(m),
            capsize=2,
        )
    for b, style in zip(BASELINES, ("dotted", "dashed")):
        sub = s[s["model"] == b].set_index("task").reindex(TASK_COLUMNS)
        if sub["mean"].notna().any():
            ax.hlines(sub["mean"], x - 0.45, x + 0.45, colors="black", linestyles=style, label=display(b))
    ax.set_xticks(x, [f"{COLUMN_TITLES[t]}\n({headline_metric(t)})" for t in TASK_COLUMNS])
    ax.set_xlabel("task (headline metric)")
    ax.set_ylabel("test score (x100; mean over seeds, bars ± std)")
    ax.set_title("Test scores per task and model")
    ax.legend(fontsize=8, ncol=2)
    return ax


def plot_retention(scores: pd.DataFrame, ax=None):
    """Retention (student / teacher score, %) per task for each student/teacher pair, ours vs the paper's."""
    import matplotlib.pyplot as plt

    r = retention_table(scores)
    r = r[r["task"].isin(TASK_COLUMNS)]
    ax = ax or plt.subplots(figsize=(10, 4.5))[1]
    pairs = list(dict.fromkeys(zip(r["student"], r["teacher"])))
    width = 0.8 / max(1, len(pairs))
    x = np.arange(len(TASK_COLUMNS))
    for i, (s_, t_) in enumerate(pairs):
        sub = r[(r["student"] == s_) & (r["teacher"] == t_)].set_index("task").reindex(TASK_COLUMNS)
        off = x + (i - (len(pairs) - 1) / 2) * width
        ax.bar(off, sub["ratio"], width, label=f"{display(s_)} / {display(t_)}")
        ax.scatter(off, sub["paper"], color="black", marker="_", s=120, zorder=3, label="paper" if i == 0 else None)
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, [COLUMN_TITLES[t] for t in TASK_COLUMNS])
    ax.set_xlabel("task")
    ax.set_ylabel("student score / teacher score (%)")
    ax.set_title("Retention of the teacher's score (bars: ours; black ticks: the paper's)")
    ax.legend(fontsize=8, ncol=2)
    return ax
