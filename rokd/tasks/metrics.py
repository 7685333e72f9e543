"""The paper's metrics, computed with scikit-learn, seqeval and scipy.

All values are fractions (accuracy / F1 in [0, 1], correlations in [-1, 1]); reports multiply by 100.
The metric names match ``rokd.paper.HEADLINE_METRIC``.

Definitions chosen (the paper does not spell them out):

- **UPOS / XPOS** (per word, predicted at the word's first sub-word): ``accuracy`` (word accuracy) is
  the headline; ``macro_f1`` is scikit-learn's macro-averaged F1 over every tag that occurs in the gold
  *or* the predicted tags of the scored split (a tag never seen and never predicted cannot be scored).
  A model's tags are those of the train + validation data (:class:`rokd.tasks.encode.LabelInventory`):
  a test word whose gold tag is outside them counts as an error in both.
- **NER** (BIO2 tags per word, grouped back into sentences): ``macro_f1`` is seqeval's macro average
  over entity types of span F1 in seqeval's *default* mode (conlleval-compatible: an ``I-X`` that
  follows ``O`` starts a span). That is the mode of the Hugging Face token-classification recipe the
  paper's fine-tuning most likely followed; ``macro_f1_strict`` (IOB2 strict, RONEC's official
  scheme) is stored beside it. ``micro_f1`` is the span-level micro F1 (default mode) and
  ``token_accuracy`` the per-word tag accuracy, which counts ``O`` words and so is far higher than
  span F1.
- **SAPN**: ``accuracy`` (+ ``macro_f1``). **SAR**, **DI**: ``macro_f1`` over the classes
  (+ ``accuracy``).
- **STS**: ``pearson`` between predicted and gold scores (+ ``spearman``). A constant prediction has no
  correlation: the value is NaN (reported as such, never replaced by 0).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from rokd.paper import HEADLINE_METRIC
from rokd.spec import TASKS, tasks_of_kind

TAGGING_TASKS = tasks_of_kind("tagging")
CLASSIFICATION_TASKS = tasks_of_kind("classification")
REGRESSION_TASKS = tasks_of_kind("regression")
ALL_TASKS = TAGGING_TASKS + CLASSIFICATION_TASKS + REGRESSION_TASKS


def headline_metric(task: str) -> str:
    """The metric the paper reports for ``task`` (used for model selection on validation too)."""
    try:
        return HEADLINE_METRIC[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; known tasks: {list(HEADLINE_METRIC)}") from None


def classification_metrics(gold: Sequence[int], pred: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1 (scikit-learn; macro over labels in gold or pred, zero_division=0)."""
    from sklearn.metrics import accuracy_score, f1_score

    gold = np.asarray(gold)
    pred = np.asarray(pred)
    if len(gold) == 0:
        raise ValueError("cannot score an empty set of predictions")
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
    }


def tagging_metrics(gold: Sequence[int], pred: Sequence[int]) -> dict[str, float]:
    """UPOS / XPOS: per-word accuracy and macro-F1 over tags."""
    return classification_metrics(gold, pred)


def ner_metrics(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """NER on BIO2 tag strings, one list per sentence (see the module docstring for the modes)."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(pred_tags)} predicted ones")
    for i, (g, p) in enumerate(zip(gold_tags, pred_tags)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted tags")
    gold_tags = [list(s) for s in gold_tags]
    pred_tags = [list(s) for s in pred_tags]
    flat_gold = [t for s in gold_tags for t in s]
    flat_pred = [t for s in pred_tags for t in s]
    if not flat_gold:
        raise ValueError("cannot score an empty set of NER predictions")
    with warnings.catch_warnings():
        # seqeval warns when a type has no gold or no predicted span; its F1 is 0, as intended.
        warnings.simplefilter("ignore")
        macro = f1_score(gold_tags, pred_tags, average="macro", zero_division=0)
        micro = f1_score(gold_tags, pred_tags, average="micro", zero_division=0)
        strict = f1_score(gold_tags, pred_tags, average="macro", mode="strict", scheme=IOB2, zero_division=0)
    token_acc = sum(g == p for g, p in zip(flat_gold, flat_pred)) / len(flat_gold)
    return {
        "macro_f1": float(macro),
        "micro_f1": float(micro),
        "macro_f1_strict": float(strict),
        "token_accuracy": float(token_acc),
    }


def regression_metrics(gold: Sequence[float], pred: Sequence[float]) -> dict[str, float]:
    """STS: Pearson and Spearman correlation (scipy); NaN when either side is constant."""
    from scipy.stats import pearsonr, spearmanr

    gold = np.asarray(gold, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold scores but {len(pred)} predictions")
    if len(gold) < 2:
        raise ValueError("a correlation needs at least two examples")
    if np.ptp(gold) == 0 or np.ptp(pred) == 0:
        return {"pearson": math.nan, "spearman": math.nan}
    return {"pearson": float(pearsonr(gold, pred)[0]), "spearman": float(spearmanr(gold, pred)[0])}


def sentence_groups(ids: Sequence[str]) -> list[list[int]]:
    """Row indices grouped by sentence, from tagging row ids ``"<example id>#<word index>"``."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for row, rid in enumerate(ids):
        ex, sep, word = str(rid).rpartition("#")
        if not sep:
            raise ValueError(f"tagging row id {rid!r} is not '<example id>#<word index>'")
        groups.setdefault(ex, []).append((int(word), row))
    return [[row for _, row in sorted(v)] for v in groups.values()]


def compute_metrics(
    task: str,
    gold: Sequence,
    pred: Sequence,
    label_names: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> dict[str, float]:
    """All metrics of ``task`` from per-row gold and predictions (label ids, or scores for STS).

    NER needs ``label_names`` (to turn ids into BIO tags) and ``ids`` (to group words into sentences).
    """
    if task in REGRESSION_TASKS:
        return regression_metrics(gold, pred)
    if task in TASKS and TASKS[task].label_scheme == "BIO2":  # entity spans (NER)
        if label_names is None or ids is None:
            raise ValueError("NER metrics need label_names and row ids ('<example id>#<word index>')")
        gold = np.asarray(gold)
        pred = np.asarray(pred)
        groups = sentence_groups(ids)
        gold_tags = [[label_names[int(gold[r])] for r in g] for g in groups]
        pred_tags = [[label_names[int(pred[r])] for r in g] for g in groups]
        return ner_metrics(gold_tags, pred_tags)
    if task in TAGGING_TASKS:
        return tagging_metrics(gold, pred)
    if task in CLASSIFICATION_TASKS:
        return classification_metrics(gold, pred)
    raise ValueError(f"unknown task {task!r}; known tasks: {list(ALL_TASKS)}")


def score_predictions(task: str, preds) -> dict[str, float]:
    """Metrics of a :class:`rokd.tasks.predictions.Predictions` object."""
    return compute_metrics(task, preds.gold, preds.pred, preds.label_names, preds.ids)
