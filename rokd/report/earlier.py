"""An earlier, superseded run of a profile, kept for its lesson: ``results/<profile>-v<k>/``.

When a published run is replaced, its ``scores.csv`` stays beside the new one with the profile it ran
(``profile.yaml``) and the size of the corpus its teachers saw (``corpus_stats.json``, ``train_lines``).
:func:`earlier_run_lesson` turns the latest of them into one paragraph for the results chapter: how much
pretraining and fine-tuning it had, and where its best model stood against the lexical baseline -- what an
under-trained reproduction looks like, computed from the committed files, not remembered.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from rokd import io
from rokd.config import load_config
from rokd.paper import COLUMN_TITLES, TASK_COLUMNS
from rokd.paths import results_dir


def earlier_runs(profile: str, results_root: str | Path | None = None) -> list[Path]:
    """``results/<profile>-v<k>/`` folders holding a ``scores.csv``, oldest first."""
    root = Path(results_root) if results_root is not None else results_dir(profile).parent
    name = Path(str(profile)).stem
    found = [p for p in root.glob(f"{name}-v*") if re.fullmatch(rf"{re.escape(name)}-v\d+", p.name)]
    return sorted((p for p in found if (p / "scores.csv").exists()), key=lambda p: int(p.name.rsplit("-v", 1)[1]))


def earlier_run_lesson(profile: str, results_root: str | Path | None = None) -> str:
    """One paragraph on the latest earlier run of ``profile`` (Markdown); "" when there is none."""
    from rokd.models.registry import DISPLAY_NAMES, MODEL_KEYS
    from rokd.profiles import Profile
    from rokd.report.tables import LEXICAL, RANDOM_INIT, _means, load_scores

    runs = earlier_runs(profile, results_root)
    if not runs:
        return ""
    folder = runs[-1]
    old = load_config(Profile, folder / "profile.yaml")
    scores = load_scores(old.name, folder)
    means = _means(scores)
    below = []
    for task in TASK_COLUMNS:
        best = max((means.get((m, task), -math.inf) for m in MODEL_KEYS), default=-math.inf)
        if (LEXICAL, task) in means and best <= means[(LEXICAL, task)]:
            below.append(COLUMN_TITLES[task])
    corpus = io.read_json(folder / "corpus_stats.json")["train_lines"]
    passes = old.teachers.steps * old.teachers.batch_size / corpus
    ev = old.evaluate
    steps = math.ceil((ev.max_train_examples or 0) * ev.epochs / ev.batch_size)
    has_controls = RANDOM_INIT in set(scores["model"])
    models = ", ".join(DISPLAY_NAMES[m] for m in MODEL_KEYS if m in set(scores["model"]))
    return (
        f"**What an under-trained reproduction looks like.** An earlier `{old.name}` run (kept in "
        f"`results/{folder.name}/`) pretrained its teachers for {old.teachers.steps:,} steps of "
        f"{old.teachers.batch_size} lines, {passes:.2f} of one pass over the {corpus:,}-line corpus, and "
        f"fine-tuned every model for {steps} steps ({ev.max_train_examples:,} examples x {ev.epochs:g} epochs). "
        f"The best of its models ({models}) stayed at or below the lexical baseline on {len(below)} of "
        f"{len(TASK_COLUMNS)} metrics ({', '.join(below) or 'none'}). "
        + (
            "It had no controls, so nothing in it could tell what pretraining or distillation gave from what "
            "any network of that shape learns in fine-tuning: every verdict about distillation was "
            "`inconclusive`. The controls and the acceptance bar above were added to catch exactly that."
            if not has_controls
            else "Its controls showed how little pretraining had given."
        )
    )
