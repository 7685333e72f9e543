"""The loyalty chapter's figures: heatmaps per task, R-L on STS, teacher-vs-student clouds, agreement matrices,
and loyalty against the student's score. Each returns its figure (or None with the reason it was not drawn)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rokd.loyalty.compute import available, load_pair, loyalty_pairs, pair_label
from rokd.loyalty.measures import ENSEMBLE, METRIC_TITLES, agreement_matrix, label_loyalty, regression_loyalty
from rokd.loyalty.tables import loyalty_matrix
from rokd.models.registry import DISPLAY_NAMES, STUDENT_TEACHERS
from rokd.paths import results_dir


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_loyalty_heatmaps(loyalty: pd.DataFrame):
    """L-L and P-L per pair and task (%)."""
    import seaborn as sns

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, metric in zip(axes, ["label_loyalty", "prob_loyalty"]):
        sns.heatmap(
            loyalty_matrix(loyalty, metric),
            annot=True,
            fmt=".1f",
            vmin=0,
            vmax=100,
            cmap="viridis",
            ax=ax,
            cbar_kws={"label": f"{METRIC_TITLES[metric]} (%)"},
        )
        ax.set_title(f"{METRIC_TITLES[metric]} per task (%)")
        ax.set_xlabel("task")
        ax.set_ylabel("student → teacher")
    fig.tight_layout()
    return fig


def plot_regression_loyalty(loyalty: pd.DataFrame):
    """R-L on STS per pair (Pearson x 100)."""
    import seaborn as sns

    plt = _plt()
    rl = loyalty_matrix(loyalty, "regression_loyalty")
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.barplot(x=rl["sts"].to_numpy(), y=rl.index, orient="h", color="tab:blue", ax=ax)
    ax.set_xlim(-100 if (rl["sts"] < 0).any() else 0, 100)
    ax.set_xlabel("R-L on STS: Pearson × 100")
    ax.set_ylabel("student → teacher")
    ax.set_title("Regression loyalty on STS")
    fig.tight_layout()
    return fig


def pair_available(profile: str, pair: tuple[str, str], task: str, seed: int) -> bool:
    """The predictions behind a figure (full or compact) of ``pair`` are on this machine."""
    student, teacher = pair
    members = STUDENT_TEACHERS[student] if teacher == ENSEMBLE else (teacher,)
    return all(available(results_dir(profile), m, task, seed) for m in (student, *members))


def plot_sts_clouds(profile: str, seed: int):
    """Teacher vs student STS outputs for every loyalty pair; None when the predictions are not here."""
    pairs = loyalty_pairs()
    if not all(pair_available(profile, p, "sts", seed) for p in pairs):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.6))
    for ax, (student, teacher) in zip(np.atleast_1d(axes), pairs):
        t, s = load_pair(profile, student, teacher, "sts", seed)
        ax.scatter(t.pred, s.pred, s=8, alpha=0.5)
        lo, hi = float(min(t.pred.min(), s.pred.min())), float(max(t.pred.max(), s.pred.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        ax.set_xlabel(f"teacher: {'ensemble' if teacher == ENSEMBLE else DISPLAY_NAMES[teacher]}")
        ax.set_ylabel(f"student: {DISPLAY_NAMES[student]}")
        ax.set_title(f"R-L = {100 * regression_loyalty(t.pred, s.pred):.1f}", fontsize=10)
    fig.suptitle(f"STS test outputs, teacher vs student (seed {seed})")
    fig.tight_layout()
    return fig


def plot_agreement(profile: str, student: str, teacher: str, tasks: list[str], seed: int, top_k: int = 12):
    """Agreement matrices of one pair on ``tasks`` (those with predictions here); None when there are none.

    Tasks with more than 20 labels show only the teacher's ``top_k`` most frequent ones.
    """
    import seaborn as sns

    tasks = [t for t in tasks if pair_available(profile, (student, teacher), t, seed)]
    if not tasks:
        return None
    plt = _plt()
    ncols = 3
    nrows = int(np.ceil(len(tasks) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 5.2 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, task in zip(axes, tasks):
        t, s = load_pair(profile, student, teacher, task, seed)
        k = top_k if len(t.label_names) > 20 else None
        m = agreement_matrix(t, s, top_k=k)
        sns.heatmap(
            m,
            cmap="Blues",
            vmin=0,
            vmax=1,
            ax=ax,
            square=True,
            cbar_kws={"label": "share of teacher's label"},
            annot=len(m) <= 6,
            fmt=".2f",
        )
        ax.set_xlabel("student's label")
        ax.set_ylabel("teacher's label")
        shown = f", top {k} teacher tags" if k else ""
        ax.set_title(f"{task.upper()}: L-L = {100 * label_loyalty(t.pred, s.pred):.1f} %{shown}", fontsize=10)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    fig.suptitle(f"Agreement matrices: {pair_label(student, teacher)} (seed {seed})")
    fig.tight_layout()
    return fig


def plot_loyalty_vs_score(vs: pd.DataFrame):
    """Loyalty against the student's score and against its gap to the teacher (``loyalty_vs_score``)."""
    import seaborn as sns

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    sns.scatterplot(data=vs, x="loyalty", y="student_score", hue="task", style="pair", s=70, ax=axes[0])
    axes[0].set_xlabel("loyalty to the teacher (L-L, or R-L on STS; %)")
    axes[0].set_ylabel("student's headline score (%)")
    axes[0].set_title("Loyalty vs the student's score")
    sns.scatterplot(data=vs, x="loyalty", y="score_gap", hue="task", style="pair", s=70, ax=axes[1], legend=False)
    axes[1].axhline(0, color="grey", lw=1, ls="--")
    axes[1].set_xlabel("loyalty to the teacher (L-L, or R-L on STS; %)")
    axes[1].set_ylabel("student score − teacher score (points)")
    axes[1].set_title("Loyalty vs the gap to the teacher")
    axes[0].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


__all__ = [
    "plot_loyalty_heatmaps",
    "plot_regression_loyalty",
    "pair_available",
    "plot_sts_clouds",
    "plot_agreement",
    "plot_loyalty_vs_score",
]
