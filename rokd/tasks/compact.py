"""Compact test predictions: small enough to commit, and the form loyalty is computed from.

The full per-example files of :mod:`rokd.tasks.predictions` hold every label's probability in float32
(XPOS at ``mini`` size: ~30 MB per model x seed), too large to commit. ``rokd loyalty`` writes this
compact copy and computes ``loyalty.csv`` **from it** (never from the full files), so anyone with the
repository recomputes the committed numbers exactly::

    results/<profile>/predictions-compact/<task>/rows-<digest>.npz     ids, gold, label_names (shared)
    results/<profile>/predictions-compact/<task>/<model>/seed<k>.npz   one model x seed

A model file holds, for classification and tagging, ``topk_idx`` (N, k) uint16 and ``topk_p`` (N, k)
float16: the predicted label first (so ``pred = topk_idx[:, 0]`` is exact), then the ``k - 1`` most
probable other labels; ``k = min(n_labels, top_k)``. For STS it holds ``pred`` (float32, exact). The
distribution is rebuilt by :func:`expand`: the kept probabilities at their labels and the remaining mass
``1 - sum(topk_p)`` spread evenly over the other labels. Label loyalty, chance agreement and the
accuracy floor are therefore exact; probability loyalty is that of the rebuilt distributions, and
``rokd loyalty`` records its largest difference to the full-precision value when the full files exist.
The rows file is named by the digest of its content and every model file names the digest it needs, so
models and seeds that score the same test rows (the normal case: the subsets do not depend on the seed)
share one rows file, and a stale copy is an error, never a silent mismatch. Files are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rokd import io
from rokd.tasks.predictions import Predictions

FORMAT = "rokd-compact-predictions"
VERSION = 1
TOP_K = 4  # label columns kept per row; at mini size ~4 bytes per row and kept column after compression
COMPACT_DIR = "predictions-compact"


class StaleCompactError(ValueError):
    """A compact model file does not belong to its task's rows file (written from other test rows)."""


def rows_path(results: str | Path, task: str, digest: str) -> Path:
    return Path(results) / COMPACT_DIR / task / f"rows-{digest}.npz"


def compact_path(results: str | Path, model: str, task: str, seed: int) -> Path:
    return Path(results) / COMPACT_DIR / task / model / f"seed{int(seed)}.npz"


@dataclass
class CompactRows:
    """What every model of a task shares: row ids, gold labels (or scores), label names."""

    ids: np.ndarray
    gold: np.ndarray
    label_names: list[str] | None

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(np.asarray(self.ids, dtype=str).tobytes())
        h.update(np.ascontiguousarray(self.gold).tobytes())
        h.update(json.dumps(self.label_names).encode())
        return h.hexdigest()[:16]


@dataclass
class CompactPredictions:
    """One model x seed: top-k labels and probabilities (classification) or raw outputs (regression)."""

    pred: np.ndarray | None  # regression only (float32)
    topk_idx: np.ndarray | None  # (N, k) uint16, predicted label first
    topk_p: np.ndarray | None  # (N, k) float16
    n_labels: int
    meta: dict

    @property
    def is_regression(self) -> bool:
        return self.topk_idx is None


def compact(preds: Predictions, top_k: int = TOP_K) -> tuple[CompactRows, CompactPredictions]:
    """The compact form of full predictions (pure): shared rows and the model's top-k part."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    rows = CompactRows(np.asarray(preds.ids, dtype=str), np.asarray(preds.gold), preds.label_names)
    meta = dict(preds.meta)
    if preds.is_regression:
        return rows, CompactPredictions(np.asarray(preds.pred, dtype=np.float32), None, None, 0, meta)
    probs = np.asarray(preds.probs, dtype=np.float32)
    n, c = probs.shape
    if c > np.iinfo(np.uint16).max:
        raise ValueError(f"{c} labels do not fit the uint16 label index of the compact format")
    pred = np.asarray(preds.pred, dtype=np.int64)
    k = min(top_k, c)
    order = np.argsort(-probs, axis=1, kind="stable")
    others = order[order != pred[:, None]].reshape(n, c - 1)[:, : k - 1]
    idx = np.concatenate([pred[:, None], others], axis=1)
    p = np.take_along_axis(probs, idx, axis=1)
    return rows, CompactPredictions(None, idx.astype(np.uint16), p.astype(np.float16), c, meta)


def expand(rows: CompactRows, comp: CompactPredictions) -> Predictions:
    """Full :class:`Predictions` rebuilt from the compact form (pure; see the module docstring)."""
    if comp.is_regression:
        return Predictions(ids=rows.ids, gold=rows.gold, pred=comp.pred, meta=comp.meta)
    n, k = comp.topk_idx.shape
    c = comp.n_labels
    kept = comp.topk_p.astype(np.float64)
    rest = np.clip(1.0 - kept.sum(axis=1), 0.0, None) / (c - k) if c > k else np.zeros(n)
    probs = np.repeat(rest[:, None], c, axis=1)
    idx = comp.topk_idx.astype(np.int64)
    np.put_along_axis(probs, idx, kept, axis=1)
    return Predictions(
        ids=rows.ids, gold=rows.gold, pred=idx[:, 0], probs=probs, label_names=rows.label_names, meta=comp.meta
    )


def _arrays_equal(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    if not path.exists():
        return False
    with np.load(path, allow_pickle=False) as z:
        if set(z.files) != set(arrays):
            return False
        return all(np.array_equal(z[k], v) for k, v in arrays.items())


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` unless the file already holds exactly them (no churn in a committed folder)."""
    if _arrays_equal(path, arrays):
        return path
    with io.atomic_path(path, ".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def save_compact(results: str | Path, model: str, task: str, seed: int, preds: Predictions, top_k: int = TOP_K) -> Path:
    """Write the compact form of one model x seed (and its task's rows file when new or changed)."""
    rows, comp = compact(preds, top_k)
    digest = rows.digest
    row_arrays = {
        "ids": rows.ids,
        "gold": rows.gold,
        "meta": np.asarray(
            json.dumps({"format": FORMAT, "version": VERSION, "task": task, "rows_digest": digest}, sort_keys=True)
        ),
    }
    if rows.label_names is not None:
        row_arrays["label_names"] = np.asarray(rows.label_names, dtype=str)
    _write(rows_path(results, task, digest), row_arrays)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "rows_digest": digest,
        "n_labels": comp.n_labels,
        "top_k": top_k,
        "model": model,
        "task": task,
        "seed": int(seed),
        "source": {k: v for k, v in comp.meta.items() if isinstance(v, (str, int, float, bool)) or v is None},
    }
    arrays = {"meta": np.asarray(json.dumps(meta, sort_keys=True))}
    if comp.is_regression:
        arrays["pred"] = comp.pred
    else:
        arrays["topk_idx"], arrays["topk_p"] = comp.topk_idx, comp.topk_p
    return _write(compact_path(results, model, task, seed), arrays)


def load_rows(results: str | Path, task: str, digest: str) -> CompactRows:
    path = rows_path(results, task, digest)
    if not path.exists():
        raise FileNotFoundError(
            f"compact rows file not found: {path} (run `rokd loyalty` where the full predictions are)"
        )
    with np.load(path, allow_pickle=False) as z:
        names = [str(s) for s in z["label_names"]] if "label_names" in z.files else None
        rows = CompactRows(z["ids"], z["gold"], names)
    if rows.digest != digest:
        raise StaleCompactError(
            f"{path}: its content does not match its name (digest {rows.digest}); "
            "re-run `rokd loyalty` where the full predictions are"
        )
    return rows


def load_compact(
    results: str | Path, model: str, task: str, seed: int, rows_cache: dict[str, CompactRows] | None = None
) -> Predictions:
    """The rebuilt :class:`Predictions` of one model x seed from the compact files (see :func:`expand`).

    ``rows_cache`` (digest -> rows) saves re-reading a rows file shared by several models."""
    path = compact_path(results, model, task, seed)
    if not path.exists():
        raise FileNotFoundError(
            f"compact predictions not found: {path} (run `rokd loyalty` where the full predictions are)"
        )
    rows_cache = {} if rows_cache is None else rows_cache
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(
                f"{path}: not a {FORMAT} v{VERSION} file (meta {meta.get('format')!r} v{meta.get('version')})"
            )
        digest = meta["rows_digest"]
        if digest not in rows_cache:
            rows_cache[digest] = load_rows(results, task, digest)
        rows = rows_cache[digest]
        if "pred" in z.files:
            comp = CompactPredictions(z["pred"], None, None, 0, meta)
        else:
            comp = CompactPredictions(None, z["topk_idx"], z["topk_p"], int(meta["n_labels"]), meta)
    return expand(rows, comp)


def prune_rows(results: str | Path) -> list[Path]:
    """Delete the rows files no model file refers to any more (left by an earlier run); returns them."""
    root = Path(results) / COMPACT_DIR
    removed = []
    for task_dir in [d for d in root.iterdir() if d.is_dir()] if root.exists() else []:
        used = set()
        for f in task_dir.glob("*/seed*.npz"):
            with np.load(f, allow_pickle=False) as z:
                used.add(json.loads(str(z["meta"]))["rows_digest"])
        for rows_file in task_dir.glob("rows-*.npz"):
            if rows_file.stem.removeprefix("rows-") not in used:
                rows_file.unlink()
                removed.append(rows_file)
    return removed


def compact_size(results: str | Path) -> int:
    """Bytes of every compact predictions file under ``results``."""
    root = Path(results) / COMPACT_DIR
    return sum(p.stat().st_size for p in root.rglob("*.npz")) if root.exists() else 0
