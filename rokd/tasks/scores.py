"""``results/<profile>/scores.csv``: one row per number, ``model,task,metric,seed,value``.

Rows of one model x task x seed are written together: a new run replaces all earlier rows of the same
model/task/seed and the file is rewritten atomically (temp file, then rename) under a lock file, so
the pipeline and a user running ``rokd evaluate`` at the same time cannot lose each other's rows.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

from rokd import io

SCORE_COLUMNS = ("model", "task", "metric", "seed", "value")


def scores_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "scores.csv"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_scores(path: str | Path) -> list[dict]:
    """Rows of a scores file (``seed`` int, ``value`` float); [] when the file does not exist.

    The file is checked whole: the header, five non-empty fields per row, an integer seed, a number as
    value, and a final newline (a file cut mid-row, e.g. by a full disk, is an error, not a short value).
    """
    from rokd.errors import CorruptFileError

    path = Path(path)
    if not path.exists():
        return []
    fix = "delete the file to have it rebuilt by the evaluation step (`rokd pipeline` re-runs it)"
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise CorruptFileError(path, "scores file", f"its last row is cut short (no final newline); {fix}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFileError(path, "scores file", fix, e) from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    if tuple(reader.fieldnames or ()) != SCORE_COLUMNS:
        raise CorruptFileError(
            path, "scores file", f"expected the header {','.join(SCORE_COLUMNS)}, got {reader.fieldnames}; {fix}"
        )
    rows = []
    for line, row in enumerate(reader, start=2):
        if None in row or any(not row[c] for c in SCORE_COLUMNS):
            raise CorruptFileError(
                path, "scores file", f"line {line} does not have the 5 fields {','.join(SCORE_COLUMNS)} ({row}); {fix}"
            )
        try:
            rows.append({**row, "seed": int(row["seed"]), "value": float(row["value"])})
        except ValueError as e:
            raise CorruptFileError(path, "scores file", f"line {line}: bad seed/value in {row} ({e}); {fix}") from None
    return rows


def merge_scores(path: str | Path, model: str, task: str, seed: int, metrics: Mapping[str, float]) -> Path:
    """Replace the rows of ``model``/``task``/``seed`` in ``path`` by ``metrics`` (atomic rewrite)."""
    path = Path(path)
    for name, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"metric {name!r} of {model}/{task}/seed {seed} is not a number: {value!r}")
    with _locked(path):
        rows = [
            r for r in read_scores(path) if not (r["model"] == model and r["task"] == task and r["seed"] == int(seed))
        ]
        rows += [
            {"model": model, "task": task, "metric": name, "seed": int(seed), "value": float(value)}
            for name, value in sorted(metrics.items())
        ]
        rows.sort(key=lambda r: (r["model"], r["task"], r["seed"], r["metric"]))
        with io.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SCORE_COLUMNS)
            writer.writeheader()
            for r in rows:
                v = r["value"]
                writer.writerow({**r, "value": "nan" if math.isnan(v) else repr(v)})
    return path
