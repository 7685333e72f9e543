"""Tables for the data chapter: split sizes with provenance, label distributions, lengths, diacritics.

All counts are subword-free (whitespace words and characters), so they do not depend on any tokenizer.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from rokd import io, paths
from rokd.data import TASK_DATASET, TASKS, is_tagging, label_names, load_task, split_provenance
from rokd.data.normalize import CEDILLA_LETTERS, COMMA_LETTERS, diacritic_style

# The task whose DatasetDict stands for each data set in per-data-set tables.
DATASET_TASK = {"rrt": "upos", "ronec": "ner", "laroseda": "sar", "moroco": "di", "rosts": "sts"}


def split_table(data_dir=None, source: str = "auto") -> pd.DataFrame:
    """One row per task and split: data set, examples, provenance kind, source, note."""
    rows = []
    for task in TASKS:
        dd = load_task(task, data_dir=data_dir, source=source)
        for split, prov in split_provenance(dd).items():
            rows.append(
                {
                    "task": task,
                    "dataset": TASK_DATASET[task],
                    "split": split,
                    "examples": len(dd[split]),
                    "provenance": prov["kind"],
                    "source": prov["source"],
                    "note": prov["note"],
                }
            )
    return pd.DataFrame(rows)


def label_table(task: str, data_dir=None, source: str = "auto") -> pd.DataFrame:
    """Label counts per split (tokens for tagging tasks; for NER, entity spans by type). Not for STS."""
    dd = load_task(task, data_dir=data_dir, source=source)
    names = label_names(dd)
    if names is None:
        raise ValueError("STS has a numeric label; use score_table")
    rows = []
    for split, ds in dd.items():
        if is_tagging(task):
            labels = ds.with_format("arrow")["labels"].combine_chunks().flatten().to_pylist()
            if task == "ner":  # count entity spans (B- tags) by type
                counts = Counter(names[i][2:] for i in labels if names[i].startswith("B-"))
            else:
                counts = Counter(names[i] for i in labels)
        else:
            counts = Counter(names[i] for i in ds["label"])
        rows += [{"split": split, "label": lab, "count": n} for lab, n in counts.items()]
    return pd.DataFrame(rows)


def score_table(data_dir=None, source: str = "auto") -> pd.DataFrame:
    """RO-STS similarity scores, one row per pair."""
    dd = load_task("sts", data_dir=data_dir, source=source)
    return pd.DataFrame([{"split": s, "score": float(v)} for s, ds in dd.items() for v in ds["label"]])


def length_table(data_dir=None, source: str = "auto") -> pd.DataFrame:
    """Length of every example in whitespace words and in characters, per task's data set and split."""
    rows = []
    for dataset, task in DATASET_TASK.items():
        dd = load_task(task, data_dir=data_dir, source=source)
        for split, ds in dd.items():
            if is_tagging(task):
                texts = [" ".join(t) for t in ds["tokens"]]
                words = [len(t) for t in ds["tokens"]]
            else:
                texts = [a + (" " + b if b else "") for a, b in zip(ds["text"], ds["text_pair"])]
                words = [len(t.split()) for t in texts]
            rows += [{"dataset": dataset, "split": split, "words": w, "chars": len(t)} for w, t in zip(words, texts)]
    return pd.DataFrame(rows)


def _letter_counts(text: str) -> tuple[int, int]:
    return sum(text.count(c) for c in COMMA_LETTERS), sum(text.count(c) for c in CEDILLA_LETTERS)


def diacritics_table(data_dir=None, source: str = "auto", include_corpus: bool = True) -> pd.DataFrame:
    """Comma-below vs cedilla s/t letters per data set, in the RAW text (``normalize=False``)."""
    rows = []
    for dataset, task in DATASET_TASK.items():
        dd = load_task(task, data_dir=data_dir, source=source, normalize=False)
        comma = cedilla = 0
        for ds in dd.values():
            texts = (
                [" ".join(t) for t in ds["tokens"]] if is_tagging(task) else list(ds["text"]) + list(ds["text_pair"])
            )
            for t in texts:
                a, b = _letter_counts(t)
                comma, cedilla = comma + a, cedilla + b
        rows.append({"source": dataset, "comma-below (ș ț)": comma, "cedilla (ş ţ)": cedilla})
    mirror = Path(data_dir) if data_dir is not None else paths.data_dir()
    if include_corpus and mirror is not None:
        from rokd.data.corpus import CORPUS_DIRS

        for sub in CORPUS_DIRS:
            comma = cedilla = 0
            for p in sorted((mirror / sub).glob("*.txt")):
                a, b = _letter_counts(p.read_text(encoding="utf-8"))
                comma, cedilla = comma + a, cedilla + b
            rows.append({"source": sub, "comma-below (ș ț)": comma, "cedilla (ş ţ)": cedilla})
    return pd.DataFrame(rows)


def di_style_table(data_dir=None, source: str = "auto", normalize: bool = False) -> pd.DataFrame:
    """DI examples by dialect and diacritic style (comma / cedilla / mixed / none)."""
    dd = load_task("di", data_dir=data_dir, source=source, normalize=normalize)
    names = label_names(dd)
    rows = [
        {"dialect": names[lab], "style": diacritic_style(text)}
        for ds in dd.values()
        for text, lab in zip(ds["text"], ds["label"])
    ]
    return pd.crosstab(pd.DataFrame(rows)["dialect"], pd.DataFrame(rows)["style"]).reindex(
        columns=["comma", "cedilla", "mixed", "none"], fill_value=0
    )


def save_summary(profile: str, data_dir=None, source: str = "auto") -> Path:
    """Write ``results/<profile>/data_summary.json`` (the split table) for later chapters."""
    table = split_table(data_dir, source)
    out = paths.results_dir(profile) / "data_summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_write_json(out, table.to_dict(orient="records"), ensure_ascii=False)
    return out
