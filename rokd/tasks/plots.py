"""Tables and figures of one model's evaluation (the ``03_evaluate`` chapter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rokd.paper import COLUMN_TITLES, HEADLINE_METRIC
from rokd.paths import results_dir
from rokd.tasks.finetune import load_run
from rokd.tasks.predictions import load_predictions, predictions_path


def scores_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task: every metric as mean over seeds (x100), headline metric first; columns = metrics."""
    df = scores.copy()
    df["value"] = df["value"] * 100
    table = df.pivot_table(index="task", columns="metric", values="value", aggfunc="mean")
    order = [t for t in COLUMN_TITLES if t in table.index]
    table = table.loc[order]
    table.insert(0, "headline", [f"{HEADLINE_METRIC[t]} = {table.loc[t, HEADLINE_METRIC[t]]:.2f}" for t in order])
    table.index = [COLUMN_TITLES[t] for t in order]
    return table


def validation_history(profile: str, model: str, tasks, seeds, results: str | Path | None = None) -> pd.DataFrame:
    """Validation headline metric at each evaluation step, from the run records (long format)."""
    rows = []
    for task in tasks:
        metric = HEADLINE_METRIC[task]
        for seed in seeds:
            rec = load_run(profile, model, task, seed, results)
            for h in rec["history"]:
                rows.append(
                    {
                        "task": COLUMN_TITLES[task],
                        "seed": seed,
                        "epoch": h["epoch"],
                        "step": h["step"],
                        "train_loss": h["train_loss"],
                        "validation": h["val_" + metric] * 100,
                        "selected": h["step"] == rec["selected"]["step"],
                    }
                )
    return pd.DataFrame(rows)


def plot_validation_curves(history: pd.DataFrame, model: str):
    """One panel per task: validation headline metric vs epoch, one line per seed; the selected point ringed."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(history["task"]))
    ncols = min(4, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    flat = axes.ravel()
    for ax in flat[len(tasks) :]:
        ax.set_visible(False)
    for ax, task in zip(flat, tasks):
        sub = history[history["task"] == task]
        for seed, g in sub.groupby("seed"):
            ax.plot(g["epoch"], g["validation"], marker="o", ms=3, label=f"seed {seed}")
            sel = g[g["selected"]]
            ax.scatter(sel["epoch"], sel["validation"], s=80, facecolors="none", edgecolors="black", zorder=3)
        metric = HEADLINE_METRIC[{v: k for k, v in COLUMN_TITLES.items()}[task]]
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {metric} (x100)")
    flat[0].legend(fontsize=7)
    fig.suptitle(f"{model}: validation score during fine-tuning (ringed: the state scored on test)")
    fig.tight_layout()
    return fig


def confusion(profile: str, model: str, task: str, seed: int, results: str | Path | None = None) -> pd.DataFrame:
    """Confusion matrix (rows gold, columns predicted) of a classification task's test predictions."""
    from sklearn.metrics import confusion_matrix

    res = Path(results) if results is not None else results_dir(profile)
    p = load_predictions(predictions_path(res, model, task, seed))
    if p.is_regression:
        raise ValueError(f"{task} is a regression task: it has no confusion matrix")
    labels = list(range(len(p.label_names)))
    cm = confusion_matrix(p.gold, p.pred, labels=labels)
    return pd.DataFrame(cm, index=p.label_names, columns=p.label_names)


def plot_confusion(cm: pd.DataFrame, title: str):
    """Row-normalised heat map of a confusion matrix, with the counts written in the cells."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    norm = cm.div(cm.sum(axis=1).replace(0, np.nan), axis=0)
    fig, ax = plt.subplots(figsize=(1.2 * len(cm) + 2, 1.0 * len(cm) + 1.5))
    sns.heatmap(
        norm,
        annot=cm.values,
        fmt="d",
        cmap="Blues",
        vmin=0,
        vmax=1,
        ax=ax,
        cbar_kws={"label": "share of the gold class"},
    )
    ax.set_xlabel("predicted label")
    ax.set_ylabel("gold label")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def headline_means(scores: pd.DataFrame, models, tasks) -> pd.DataFrame:
    """Headline metric per model x task (x100): ``mean`` and ``std`` over seeds (std NaN for one seed)."""
    h = scores[
        (scores["metric"] == scores["task"].map(HEADLINE_METRIC))
        & scores["model"].isin(list(models))
        & scores["task"].isin(list(tasks))
    ]
    g = h.groupby(["model", "task"])["value"]
    return pd.DataFrame({"mean": g.mean() * 100, "std": g.std(ddof=1) * 100})


def comparison_table(scores: pd.DataFrame, models, tasks) -> pd.DataFrame:
    """'mean ± std' of the headline metric (x100) per model in ``models`` (rows, in order); tasks as columns."""
    from rokd.models.registry import DISPLAY_NAMES

    stats = headline_means(scores, models, tasks)
    order = [t for t in COLUMN_TITLES if t in set(tasks)]
    table = {}
    for m in models:
        row = {}
        for t in order:
            if (m, t) not in stats.index:
                row[f"{COLUMN_TITLES[t]} ({HEADLINE_METRIC[t]})"] = "n/a"
                continue
            mean, std = stats.loc[(m, t)]
            shown = f"{mean:.2f}" if np.isnan(std) or std == 0 else f"{mean:.2f} ± {std:.2f}"
            row[f"{COLUMN_TITLES[t]} ({HEADLINE_METRIC[t]})"] = shown
        table[DISPLAY_NAMES.get(m, m)] = row
    return pd.DataFrame.from_dict(table, orient="index")


def tasks_below(scores: pd.DataFrame, model: str, reference: str, tasks) -> list[str]:
    """Tasks (display titles) where ``model``'s mean headline score is below ``reference``'s."""
    stats = headline_means(scores, [model, reference], tasks)
    return [
        COLUMN_TITLES[t]
        for t in COLUMN_TITLES
        if t in set(tasks)
        and (model, t) in stats.index
        and (reference, t) in stats.index
        and stats.loc[(model, t), "mean"] < stats.loc[(reference, t), "mean"]
    ]


def run_table(profile: str, model: str, tasks, seeds, results: str | Path | None = None) -> pd.DataFrame:
    """What each fine-tuning run of ``model`` used: examples per split (after the hash-based selection), test
    rows scored, truncated / split training examples, ``max_length``, the selected epoch and the wall time."""
    rows = []
    for task in tasks:
        for seed in seeds:
            rec = load_run(profile, model, task, seed, results)
            sz = rec["sizes"]
            rows.append(
                {
                    "task": task,
                    "seed": seed,
                    "train": sz["train"]["examples"],
                    "validation": sz["validation"]["examples"],
                    "test": sz["test"]["examples"],
                    "test rows scored": sz["test"]["rows"],
                    "train truncated/split": sz["train"]["truncated_or_split"],
                    "max_length": rec["max_length"],
                    "selected epoch": rec["selected"]["epoch"],
                    "wall time (s)": rec["timing_s"]["total"],
                }
            )
    return pd.DataFrame(rows).set_index(["task", "seed"])
