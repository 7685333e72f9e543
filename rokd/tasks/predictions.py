"""Per-example test predictions: the contract between ``rokd.tasks`` (writer) and ``rokd.loyalty`` (reader).

One file per model x task x seed::

    results/<profile>/predictions/<model>/<task>/seed<k>.npz

An ``.npz`` (read with ``allow_pickle=False``) holding

- ``ids``: (N,) unicode; one row per scored unit, stable across models. For sentence tasks the
  example id; for tagging tasks ``"<example id>#<word index>"`` (one row per *word*, predictions
  taken at its first sub-word), so rows of two models with different tokenizers still align.
- ``gold``: (N,) int64 gold label ids, or float32 gold scores for STS.
- ``pred``: (N,) int64 predicted label ids (classification/tagging) or float32 raw output (STS).
- ``probs``: (N, C) float32 softmax probabilities (classification/tagging only; absent for STS).
- ``label_names``: (C,) unicode (classification/tagging only).
- ``meta``: 0-d unicode JSON string: model, task, seed, profile, label scheme, max_length, ...

These full files are not committed; :mod:`rokd.tasks.compact` is the small copy that is (written by
``rokd loyalty``, which computes loyalty from it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rokd import io


@dataclass
class Predictions:
    ids: np.ndarray
    gold: np.ndarray
    pred: np.ndarray
    probs: np.ndarray | None = None
    label_names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_regression(self) -> bool:
        return self.probs is None

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("gold", "pred"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Predictions.{name} has {len(getattr(self, name))} rows, ids has {n}")
        if self.probs is not None:
            if self.probs.ndim != 2 or self.probs.shape[0] != n:
                raise ValueError(f"Predictions.probs must be (N={n}, C), got {self.probs.shape}")
            if self.label_names is not None and len(self.label_names) != self.probs.shape[1]:
                raise ValueError(
                    f"Predictions.label_names has {len(self.label_names)} names, probs has {self.probs.shape[1]} "
                    "columns"
                )


def predictions_path(results_dir: Path, model: str, task: str, seed: int) -> Path:
    from rokd.paths import check_name

    check_name(model, "model name")  # it becomes a folder: never a path out of the results folder
    check_name(task, "task")
    return Path(results_dir) / "predictions" / model / task / f"seed{int(seed)}.npz"


def save_predictions(preds: Predictions, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "ids": np.asarray(preds.ids, dtype=str),
        "gold": np.asarray(preds.gold),
        "pred": np.asarray(preds.pred),
        "meta": np.asarray(json.dumps(preds.meta, sort_keys=True)),
    }
    if preds.probs is not None:
        arrays["probs"] = np.asarray(preds.probs, dtype=np.float32)
        arrays["label_names"] = np.asarray(preds.label_names if preds.label_names is not None else [], dtype=str)
    with io.atomic_path(path, ".npz") as tmp:  # never leave a half-written predictions file
        np.savez_compressed(tmp, **arrays)
    return path


def load_predictions(path: str | Path) -> Predictions:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"predictions file not found: {path} (run the evaluation step for this model/task/seed)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            probs = z["probs"] if "probs" in z.files else None
            names = [str(s) for s in z["label_names"]] if "label_names" in z.files else None
            return Predictions(
                ids=z["ids"],
                gold=z["gold"],
                pred=z["pred"],
                probs=probs,
                label_names=names or None,
                meta=json.loads(str(z["meta"])),
            )
    except Exception as e:  # a truncated zip, a missing array, a bad meta string
        from rokd.errors import CorruptFileError

        raise CorruptFileError(
            path,
            "predictions file",
            "delete it and re-run the evaluation of that model/task/seed "
            "(`rokd pipeline` or `rokd evaluate ... --force`)",
            e,
        ) from None
