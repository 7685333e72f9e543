"""Baselines: what a fine-tuned model has to beat before its numbers say anything about pretraining.

Two baselines, scored like any model (same hash-selected train / validation / test examples as
fine-tuning, same rows, same :mod:`rokd.tasks.metrics`), written to ``results/<profile>/scores.csv``
under the model keys :data:`BASELINES` and to ``predictions/<key>/<task>/seed<k>.npz`` (+ ``.run.json``,
``.config.json``) in the :mod:`rokd.tasks.predictions` format:

- ``baseline-majority``: the most frequent training tag / class for every row; STS: the mean training
  score for every pair.
- ``baseline-lexical``: UPOS / XPOS / NER: the most frequent training tag of each word (its exact form;
  else its lowercased form, for sentence-initial capitals; a word never seen in training gets the most
  frequent tag overall). SAPN / SAR / DI: TF-IDF of
  word uni- and bigrams + logistic regression (scikit-learn), ``C`` chosen on the validation subset by
  the task's headline metric from :data:`C_GRID`. STS: word-overlap (Jaccard) similarity of the two
  sentences or TF-IDF cosine, whichever correlates better with the gold scores on validation; neither
  learns from the training scores.

Choices to know when reading the numbers:

- Baselines are deterministic: the same rows are written under every seed of the profile so that
  per-seed tables and pairing by seed work (their standard error over seeds is 0). They are computed
  once per task; each seed's run record carries that one wall time and ``computed_once_for_seeds``.
- A constant prediction (``baseline-majority`` on STS) has no correlation with anything: Pearson and
  Spearman are 0/0. The baseline reports **0** (no association), and its run record says why; a
  fine-tuned model that collapses to a constant still gets NaN from :mod:`rokd.tasks.metrics`.
- Baselines read whole documents; fine-tuned models see the first ``evaluate.max_length`` sub-words.
- Probabilities (``probs``): tag / class relative frequencies (per word form for the lexical tagger),
  logistic-regression probabilities, so that :mod:`rokd.loyalty` can treat a baseline like a model.

Recompute with ``python -m rokd.tasks.baselines --profile mini`` (seconds) or
``rokd evaluate --profile mini --model baseline-lexical``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rokd import io
from rokd.config import save_config
from rokd.models.registry import BASELINES
from rokd.spec import LEXICAL_BASELINE, MAJORITY_BASELINE, TASKS
from rokd.tasks.encode import LabelInventory, select_split
from rokd.tasks.metrics import (
    ALL_TASKS,
    CLASSIFICATION_TASKS,
    REGRESSION_TASKS,
    TAGGING_TASKS,
    compute_metrics,
    headline_metric,
)
from rokd.tasks.predictions import Predictions, save_predictions
from rokd.tasks.scores import merge_scores, scores_path

# Bump when a baseline's method changes so that earlier outputs are recomputed instead of reused.
BASELINE_VERSION = 1
C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
TFIDF = {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True, "lowercase": True}
_WORD = re.compile(r"\w+", re.UNICODE)


# ------------------------------------------------------------------------------------------ pieces
def words(text: str) -> list[str]:
    """Lowercased word tokens (runs of letters / digits) of a sentence."""
    return _WORD.findall(str(text).lower())


def jaccard(a: str, b: str) -> float:
    """|A ∩ B| / |A ∪ B| of the two sentences' word sets (0 when both are empty)."""
    wa, wb = set(words(a)), set(words(b))
    union = wa | wb
    return len(wa & wb) / len(union) if union else 0.0


def _frequencies(counts: np.ndarray) -> np.ndarray:
    return (counts / counts.sum()).astype(np.float32)


@dataclass
class MostFrequentTag:
    """Per word: the tag it carries most often in training; unseen words: the most frequent tag.

    A word is looked up by its exact form, then (not found) by its lowercased form among the lowercased
    training words, then falls back to the overall tag counts. Ties go to the lowest tag id (``argmax``
    order). ``probs`` are the relative frequencies of the tags of that form, so ``argmax(probs) == pred``.
    """

    n_labels: int
    table: dict[str, np.ndarray] = field(default_factory=dict)
    lower_table: dict[str, np.ndarray] = field(default_factory=dict)
    overall: np.ndarray | None = None

    def fit(self, tokens: Sequence[Sequence[str]], labels: Sequence[Sequence[int]]) -> "MostFrequentTag":
        counts: dict[str, np.ndarray] = {}
        lower: dict[str, np.ndarray] = {}
        overall = np.zeros(self.n_labels, dtype=np.int64)
        for sent, labs in zip(tokens, labels):
            if len(sent) != len(labs):
                raise ValueError(f"a training sentence has {len(sent)} words but {len(labs)} tags")
            for w, t in zip(sent, labs):
                counts.setdefault(w, np.zeros(self.n_labels, dtype=np.int64))[int(t)] += 1
                lower.setdefault(w.lower(), np.zeros(self.n_labels, dtype=np.int64))[int(t)] += 1
                overall[int(t)] += 1
        if overall.sum() == 0:
            raise ValueError("no tagged words to learn from")
        self.table = {w: _frequencies(c) for w, c in counts.items()}
        self.lower_table = {w: _frequencies(c) for w, c in lower.items()}
        self.overall = _frequencies(overall)
        return self

    def lookup(self, word: str) -> np.ndarray | None:
        """Tag frequencies of ``word`` (exact form, else lowercased), None for a word unseen in training."""
        found = self.table.get(word)
        return found if found is not None else self.lower_table.get(word.lower())

    def predict(self, tokens: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, int]:
        """(pred (N,), probs (N, C), words unseen in training) over the words of every sentence, in order."""
        rows = [self.lookup(w) for sent in tokens for w in sent]
        unseen = sum(r is None for r in rows)
        probs = np.stack([self.overall if r is None else r for r in rows]) if rows else np.zeros((0, self.n_labels))
        return probs.argmax(axis=1).astype(np.int64), probs.astype(np.float32), unseen


def majority(labels: Sequence[int], n_labels: int) -> tuple[int, np.ndarray]:
    """The most frequent label (lowest id on ties) and the label frequencies."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_labels)
    if counts.sum() == 0:
        raise ValueError("no training labels")
    return int(counts.argmax()), _frequencies(counts)


def tfidf_logistic_regression(
    train_text, train_y, val_text, val_y, test_text, task: str, n_labels: int, grid: Sequence[float] = C_GRID
) -> tuple[np.ndarray, np.ndarray, dict]:
    """TF-IDF + logistic regression fitted on train, ``C`` picked on validation by the headline metric."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(**TFIDF)
    x_train = vec.fit_transform(train_text)
    x_val, x_test = vec.transform(val_text), vec.transform(test_text)
    metric = headline_metric(task)
    scores, best = {}, None
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=5000).fit(x_train, train_y)
        value = compute_metrics(task, val_y, clf.predict(x_val))[metric]
        scores[repr(float(c))] = value
        if best is None or value > best[0]:  # ties keep the smaller C (stronger regularisation)
            best = (value, c, clf)
    _, c, clf = best
    probs = np.zeros((x_test.shape[0], n_labels), dtype=np.float32)
    probs[:, clf.classes_] = clf.predict_proba(x_test)  # a class absent from train keeps probability 0
    pred = clf.classes_[clf.predict_proba(x_test).argmax(axis=1)].astype(np.int64)
    details = {
        "method": "tfidf + logistic regression",
        "tfidf": {k: list(v) if isinstance(v, tuple) else v for k, v in TFIDF.items()},
        "C_grid": [float(g) for g in grid],
        "validation_" + metric: scores,
        "C": float(c),
        "features": int(x_train.shape[1]),
    }
    return pred, probs, details


def tfidf_cosine(train_texts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Cosine of the TF-IDF vectors of each pair (IDF from the training sentences; no scores used)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(lowercase=True, token_pattern=r"(?u)\w+").fit(train_texts)
    va, vb = vec.transform(a), vec.transform(b)  # rows are L2-normalised: the dot product is the cosine
    return np.asarray(va.multiply(vb).sum(axis=1)).reshape(-1).astype(np.float32)


# ---------------------------------------------------------------------------------------- one task
@dataclass
class BaselineRun:
    """The test predictions of one baseline on one task, plus what was chosen and how much data was used."""

    ids: np.ndarray
    gold: np.ndarray
    pred: np.ndarray
    probs: np.ndarray | None
    label_names: list[str] | None
    details: dict
    sizes: dict


def _label_names(ds, task: str) -> list[str] | None:
    if task in REGRESSION_TASKS:
        return None
    feat = ds.features["labels" if task in TAGGING_TASKS else "label"]
    names = getattr(getattr(feat, "feature", feat), "names", None)
    if not names:
        raise ValueError(f"task {task!r}: the label column has no ClassLabel names ({feat})")
    return list(names)


def _texts(ds) -> list[str]:
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else [""] * len(ds)
    return [f"{a} {b}" if b else str(a) for a, b in zip(ds["text"], pairs)]


def run_baseline(
    name: str, task: str, dd, max_train_examples: int | None, max_eval_examples: int | None
) -> BaselineRun:
    """Fit ``name`` on the selected train (and validation) examples of ``dd`` and predict the selected test ones."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {list(ALL_TASKS)}")
    train = select_split(dd["train"], max_train_examples)
    val = select_split(dd["validation"], max_eval_examples)
    test = select_split(dd["test"], max_eval_examples)
    sizes = {
        s: {"examples": len(d), "available": len(dd[s]), "truncated_or_split": 0}
        for s, d in (("train", train), ("validation", val), ("test", test))
    }
    names = _label_names(dd["train"], task)
    details: dict = {}

    if task in TAGGING_TASKS:
        test_tokens = [list(t) for t in test["tokens"]]
        ids = np.asarray([f"{i}#{w}" for i, sent in zip(test["id"], test_tokens) for w in range(len(sent))])
        gold = np.asarray([int(x) for labs in test["labels"] for x in labs], dtype=np.int64)
        train_labels = list(train["labels"])
        if name == MAJORITY_BASELINE:
            tag, freq = majority([x for labs in train_labels for x in labs], len(names))
            pred = np.full(len(gold), tag, dtype=np.int64)
            probs = np.tile(freq, (len(gold), 1))
            details = {"method": "most frequent training tag", "tag": names[tag]}
        else:
            tagger = MostFrequentTag(len(names)).fit(list(train["tokens"]), train_labels)
            pred, probs, unseen = tagger.predict(test_tokens)
            details = {
                "method": "most frequent training tag of each word (exact form, else lowercased; "
                "unseen: most frequent tag)",
                "fallback_tag": names[int(tagger.overall.argmax())],
                "test_words_unseen": unseen,
                "train_word_forms": len(tagger.table),
            }
        if task in ("upos", "xpos"):  # the same label set fine-tuned models get
            details["labels"] = LabelInventory.build(task, names, [train_labels, val["labels"]]).record(gold)
        for s, d in (("train", train), ("validation", val), ("test", test)):
            sizes[s]["rows"] = sizes[s]["features"] = sum(len(t) for t in d["tokens"])
        return BaselineRun(ids, gold, pred, probs, names, details, sizes)

    ids = np.asarray([str(i) for i in test["id"]])
    for s, d in (("train", train), ("validation", val), ("test", test)):
        sizes[s]["rows"] = sizes[s]["features"] = len(d)
    if task in CLASSIFICATION_TASKS:
        y_train = np.asarray(train["label"], dtype=np.int64)
        gold = np.asarray(test["label"], dtype=np.int64)
        if name == MAJORITY_BASELINE:
            cls, freq = majority(y_train, len(names))
            pred = np.full(len(gold), cls, dtype=np.int64)
            probs = np.tile(freq, (len(gold), 1))
            details = {"method": "most frequent training class", "class": names[cls]}
        else:
            pred, probs, details = tfidf_logistic_regression(
                _texts(train),
                y_train,
                _texts(val),
                np.asarray(val["label"], dtype=np.int64),
                _texts(test),
                task,
                len(names),
            )
        return BaselineRun(ids, gold, pred, probs, names, details, sizes)

    # STS
    gold = np.asarray(test["label"], dtype=np.float32)
    if name == MAJORITY_BASELINE:
        mean = float(np.mean(np.asarray(train["label"], dtype=np.float64)))
        pred = np.full(len(gold), mean, dtype=np.float32)
        details = {
            "method": "mean training score",
            "score": mean,
            "correlation": "a constant prediction: Pearson and Spearman are 0/0, reported as 0 (no association)",
        }
        return BaselineRun(ids, gold, pred, None, None, details, sizes)
    train_sents = list(train["text"]) + list(train["text_pair"])
    candidates: dict[str, Callable] = {
        "jaccard": lambda d: np.asarray([jaccard(a, b) for a, b in zip(d["text"], d["text_pair"])], dtype=np.float32),
        "tfidf_cosine": lambda d: tfidf_cosine(train_sents, list(d["text"]), list(d["text_pair"])),
    }
    val_gold = np.asarray(val["label"], dtype=np.float32)
    val_scores = {k: compute_metrics(task, val_gold, f(val))["pearson"] for k, f in candidates.items()}
    chosen = max(val_scores, key=lambda k: -math.inf if math.isnan(val_scores[k]) else val_scores[k])
    pred = candidates[chosen](test)
    details = {
        "method": "unsupervised sentence similarity, chosen on validation (no training scores used)",
        "validation_pearson": val_scores,
        "similarity": chosen,
    }
    return BaselineRun(ids, gold, pred, None, None, details, sizes)


def baseline_metrics(name: str, task: str, run: BaselineRun) -> dict[str, float]:
    metrics = compute_metrics(task, run.gold, run.pred, run.label_names, list(run.ids))
    if task in REGRESSION_TASKS and name == MAJORITY_BASELINE:
        metrics = {k: 0.0 if math.isnan(v) else v for k, v in metrics.items()}  # see the module doc
    return metrics


# ------------------------------------------------------------------------------------- entry point
def _provenance(dd) -> dict:
    try:
        from rokd.data import split_provenance

        return split_provenance(dd)
    except (ImportError, AttributeError, KeyError, ValueError) as e:  # data made outside rokd.data: say so
        return {"unavailable": str(e)}


def baseline_run_config(profile, name: str, task: str, seed: int) -> dict:
    """Everything that determines a baseline's outputs (compared for idempotence)."""
    ev = profile.evaluate
    cfg = {
        "baseline_version": BASELINE_VERSION,
        "profile": profile.name,
        "model": name,
        "task": task,
        "seed": int(seed),
        "evaluate": {"max_train_examples": ev.max_train_examples, "max_eval_examples": ev.max_eval_examples},
    }
    if name == LEXICAL_BASELINE and task in CLASSIFICATION_TASKS:
        tfidf = {k: list(v) if isinstance(v, tuple) else v for k, v in TFIDF.items()}
        cfg["method"] = {"C_grid": list(C_GRID), "tfidf": tfidf}
    return cfg


def score_baseline(
    profile,
    name: str,
    task: str,
    seeds: Sequence[int] | None = None,
    *,
    dataset=None,
    results_dir: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = print,
    commit: str | None = None,
) -> dict[str, float]:
    """Score baseline ``name`` on ``task`` and write it under every seed (default: the profile's); TEST metrics.

    Idempotent like fine-tuning: when every seed's outputs exist with the same config they are reused
    and their rows re-merged into ``scores.csv``. ``dataset`` / ``results_dir`` override the data layer and
    ``results/<profile>`` (tests use both). ``commit``: the git commit to record (default: now).
    """
    from rokd.paths import results_dir as default_results_dir
    from rokd.profiles import resolve_profile
    from rokd.runinfo import RunInfo
    from rokd.tasks.finetune import load_task_cached, run_paths

    prof = resolve_profile(profile)
    seeds = [int(s) for s in (seeds or prof.evaluate.seeds)]
    results = Path(results_dir) if results_dir is not None else default_results_dir(prof.name)
    configs = {s: baseline_run_config(prof, name, task, s) for s in seeds}
    paths = {s: run_paths(results, name, task, s) for s in seeds}
    if not force and all(p["run"].exists() and p["predictions"].exists() for p in paths.values()):
        records = {s: json.loads(paths[s]["run"].read_text(encoding="utf-8")) for s in seeds}
        if all(records[s].get("config") == configs[s] for s in seeds):
            for s in seeds:
                merge_scores(scores_path(results), name, task, s, records[s]["metrics"])
            if log:
                log(f"{name} / {task}: up to date (reusing its run records)")
            return records[seeds[0]]["metrics"]

    t0 = time.perf_counter()
    dd = dataset if dataset is not None else load_task_cached(task)
    t_data = time.perf_counter() - t0
    run = run_baseline(name, task, dd, prof.evaluate.max_train_examples, prof.evaluate.max_eval_examples)
    metrics = baseline_metrics(name, task, run)
    wall = time.perf_counter() - t0
    for s in seeds:
        info = RunInfo(
            profile=prof.name, step=f"baseline {name} {task}", seed=s, **({"git_commit": commit} if commit else {})
        )
        info.wall_time_s = round(wall, 4)  # not rounded to 0.1 s: a majority baseline takes milliseconds
        meta = {
            "model": name,
            "task": task,
            "seed": s,
            "profile": prof.name,
            "baseline": True,
            "label_scheme": TASKS[task].label_scheme,
            "rows": "one per word" if task in TAGGING_TASKS else "one per example",
            "max_length": None,
        }
        save_predictions(
            Predictions(
                ids=run.ids,
                gold=run.gold,
                pred=run.pred,
                probs=run.probs,
                label_names=run.label_names if run.probs is not None else None,
                meta=meta,
            ),
            paths[s]["predictions"],
        )
        record = {
            "config": configs[s],
            "metrics": metrics,
            "headline_metric": headline_metric(task),
            "baseline": run.details,
            "max_length": None,  # baselines read whole texts
            "sizes": run.sizes,
            "provenance": _provenance(dd),
            "timing_s": {"data": round(t_data, 4), "total": round(wall, 4)},
            "computed_once_for_seeds": seeds,  # deterministic: one computation, the same rows under each seed
            "device": "cpu",
            "runinfo": info.to_dict(),
        }
        save_config(configs[s], paths[s]["config"])
        io.atomic_write_json(paths[s]["run"], record, default=str)
        merge_scores(scores_path(results), name, task, s, metrics)
    if log:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        log(f"{name} / {task}: {shown} ({wall:.1f} s, written for seeds {', '.join(map(str, seeds))})")
    return metrics


def score_baselines(profile, names: Sequence[str] = BASELINES, tasks: Sequence[str] | None = None, **kwargs):
    """Every baseline x task (default: the profile's tasks); a DataFrame of the TEST metrics."""
    import pandas as pd

    from rokd.profiles import resolve_profile
    from rokd.runinfo import git_commit

    prof = resolve_profile(profile)
    # The commit is read once, before the first run writes into results/: a committed results folder that
    # is being rewritten would otherwise make every later record say "+dirty".
    kwargs.setdefault("commit", git_commit())
    rows = []
    for name in names:
        for task in tasks or prof.evaluate.tasks:
            metrics = score_baseline(prof, name, task, **kwargs)
            rows += [{"model": name, "task": task, "metric": k, "value": v} for k, v in metrics.items()]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rokd.tasks.baselines",
        description="Score both baselines on every task of a profile (seconds; no model needed).",
    )
    p.add_argument("--profile", default="smoke", help="smoke | mini | paper | path to a profile YAML")
    p.add_argument("--task", action="append", choices=ALL_TASKS, help="task (repeatable; default: the profile's)")
    p.add_argument("--model", action="append", choices=BASELINES, help="baseline (repeatable; default: both)")
    p.add_argument("--force", action="store_true", help="recompute even when up-to-date outputs exist")
    args = p.parse_args(argv)
    score_baselines(args.profile, args.model or BASELINES, args.task, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
