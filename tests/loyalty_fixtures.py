"""Synthetic per-example prediction files for the loyalty tests (tests only: never written under results/).

Teachers draw random logits; each student is its teacher's logits (for the multi student, the mean of
both teachers') plus noise, so students are loyal but not perfectly. With ``controls``, also
``control-init-only`` (the cased teacher's logits plus more noise) and ``control-random-init`` (its own
logits, sharing only the gold signal). Files follow the real layout
``<results>/predictions/<model>/<task>/seed<k>.npz`` written with :func:`save_predictions`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rokd.models.registry import CONTROLS, MODEL_KEYS, STUDENT_TEACHERS
from rokd.tasks.predictions import Predictions, predictions_path, save_predictions

TAGGING = ("upos", "xpos", "ner")
LABELS = {"upos": 6, "xpos": 30, "ner": 5, "sapn": 2, "sar": 4, "di": 2}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def synthetic_ids(task: str, n: int) -> np.ndarray:
    if task in TAGGING:  # "<example>#<word>", a few words per sentence
        return np.array([f"{task}-{i // 4}#{i % 4}" for i in range(n)])
    return np.array([f"{task}-{i}" for i in range(n)])


def write_synthetic_predictions(
    results: str | Path,
    tasks=("upos", "xpos", "ner", "sapn", "sar", "di", "sts"),
    seeds=(1,),
    n: int = 40,
    noise: float = 0.7,
    controls: bool = True,
) -> list[Path]:
    """Write prediction files for every model key (and control), task and seed under ``results``; returns the paths."""
    written = []
    models = MODEL_KEYS + (CONTROLS if controls else ())
    for task in tasks:
        for seed in seeds:
            rng = np.random.default_rng(1000 * seed + sum(map(ord, task)))
            gold_rng = np.random.default_rng(sum(map(ord, task)))  # the test rows do not depend on the seed
            ids = synthetic_ids(task, n)
            logits: dict[str, np.ndarray] = {}
            if task == "sts":
                gold = gold_rng.uniform(0, 5, n).astype(np.float32)
                for t in ("bert-base-ro", "robert-base"):
                    logits[t] = gold + rng.normal(0, 0.8, n)
                for s, ts in STUDENT_TEACHERS.items():
                    logits[s] = np.mean([logits[t] for t in ts], axis=0) + rng.normal(0, noise, n)
                logits["control-init-only"] = logits["bert-base-ro"] + rng.normal(0, 2 * noise, n)
                logits["control-random-init"] = gold + rng.normal(0, 1.5, n)
                for m in models:
                    p = Predictions(
                        ids=ids,
                        gold=gold,
                        pred=logits[m].astype(np.float32),
                        meta={"model": m, "task": task, "seed": seed, "synthetic": True},
                    )
                    written.append(save_predictions(p, predictions_path(results, m, task, seed)))
                continue
            c = LABELS[task]
            names = (
                ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"] if task == "ner" else [f"{task.upper()}{k}" for k in range(c)]
            )
            gold = gold_rng.integers(0, c, n)
            # Skewed class prior so top-k agreement matrices have a clear head.
            prior = np.log(np.linspace(3.0, 0.2, c))
            for t in ("bert-base-ro", "robert-base"):
                logits[t] = 2.0 * np.eye(c)[gold] + prior + rng.normal(0, 1.0, (n, c))
            for s, ts in STUDENT_TEACHERS.items():
                logits[s] = np.mean([logits[t] for t in ts], axis=0) + rng.normal(0, noise, (n, c))
            logits["control-init-only"] = logits["bert-base-ro"] + rng.normal(0, 2 * noise, (n, c))
            logits["control-random-init"] = 2.0 * np.eye(c)[gold] + prior + rng.normal(0, 1.5, (n, c))
            for m in models:
                probs = _softmax(logits[m]).astype(np.float32)
                p = Predictions(
                    ids=ids,
                    gold=gold,
                    pred=probs.argmax(axis=1),
                    probs=probs,
                    label_names=names,
                    meta={"model": m, "task": task, "seed": seed, "synthetic": True},
                )
                written.append(save_predictions(p, predictions_path(results, m, task, seed)))
    return written


def write_synthetic_scores(
    results: str | Path, tasks=("upos", "xpos", "ner", "sapn", "sar", "di", "sts"), seeds=(1,)
) -> Path:
    """A ``scores.csv`` scoring the synthetic predictions with the real metrics of :mod:`rokd.tasks`."""
    from rokd.tasks.metrics import score_predictions
    from rokd.tasks.predictions import load_predictions
    from rokd.tasks.scores import merge_scores, scores_path

    path = scores_path(results)
    for m in MODEL_KEYS + CONTROLS:
        for task in tasks:
            for seed in seeds:
                if not predictions_path(results, m, task, seed).exists():
                    continue
                preds = load_predictions(predictions_path(results, m, task, seed))
                merge_scores(path, m, task, seed, score_predictions(task, preds))
    return path
