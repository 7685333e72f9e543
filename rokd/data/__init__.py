"""Data layer: one loader per task, a uniform schema, split provenance, the raw corpus.

``load_task(task)`` returns a ``datasets.DatasetDict`` with splits ``train`` / ``validation`` / ``test``:

* tagging tasks (``upos``, ``xpos``, ``ner``): ``id: str``, ``tokens: Sequence(str)``,
  ``labels: Sequence(ClassLabel)``. UPOS: the 17 UD tags (RRT uses 16, no SYM). XPOS: the sorted union
  of the tags of all three splits. NER: the 31 BIO2 tags in RONEC's ``ner_ids`` order.
* sentence tasks (``sapn``, ``sar``, ``di``): ``id``, ``text``, ``text_pair`` ("" for single texts),
  ``label: ClassLabel``: SAPN ``negative/positive`` (stars 1,2 / 4,5), SAR ``1/2/4/5``, DI ``MD/RO``.
  LaRoSeDa's text is ``"<title>. <content>"``.
* ``sts``: ``id``, ``text``, ``text_pair``, ``label: float32`` (score 0-5).

Every split carries its **provenance** (``official`` / ``rebuilt`` / ``substitute``, the source and a
note) as JSON in ``Dataset.info.description``, which survives ``select``, ``map``, ``filter`` and
``save_to_disk``; read it with :func:`split_provenance`.

Sources: the local mirror ``ROKD_DATA_DIR`` (layout of MANIFEST.md) or the official URLs, downloaded
and checksum-verified into ``rokd.paths.cache_dir()`` (see ``rokd.data.sources``). Parsed
DatasetDicts are cached under ``cache_dir()/datasets/`` keyed by the sha256 of their input files.

Diacritics: cedilla ş ţ are mapped to comma-below ș ț in every loader (``normalize=True``).
**DI decision**: in MOROCO the diacritic style correlates with the dialect (RO texts are often
cedilla-only, MD texts comma-only or mixed), a typographic shortcut unrelated to the dialect itself. We
normalize DI too, by default, so that a model must identify the dialect from words and spelling, not from
which keyboard encoding a newspaper used. ``load_task("di", normalize=False)`` keeps the raw characters
to study the shortcut (the data chapter measures it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import datasets

from rokd import paths
from rokd.data.errors import ChecksumError, DataError, DataFormatError, MissingDataError
from rokd.data.loaders import DATASET_IO, DI_NAMES, NER_TAGS, SAPN_NAMES, SAR_NAMES, SPLITS, UPOS_TAGS, SplitData
from rokd.data.normalize import normalize_diacritics
from rokd.data.sources import Fetcher
from rokd.spec import TASKS as TASK_SPECS
from rokd.spec import tasks_of_kind

__all__ = [
    "TASKS",
    "DATASETS",
    "TASK_DATASET",
    "SPLITS",
    "PROVENANCE_KINDS",
    "load_task",
    "split_provenance",
    "label_names",
    "is_tagging",
    "normalize_diacritics",
    "DataError",
    "MissingDataError",
    "ChecksumError",
    "DataFormatError",
]

TASKS = tuple(TASK_SPECS)
DATASETS = tuple(dict.fromkeys(t.dataset for t in TASK_SPECS.values()))  # rrt, ronec, laroseda, moroco, rosts
TASK_DATASET = {k: t.dataset for k, t in TASK_SPECS.items()}
TAGGING_TASKS = tasks_of_kind("tagging")
PROVENANCE_KINDS = ("official", "rebuilt", "substitute")

# Bump when a loader's output changes, so cached DatasetDicts are rebuilt.
LOADER_VERSION = 1


def is_tagging(task: str) -> bool:
    """True for token-level tasks (upos, xpos, ner)."""
    _check_task(task)
    return task in TAGGING_TASKS


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")


def _features(task: str, names: list[str] | None) -> datasets.Features:
    if is_tagging(task):
        return datasets.Features(
            {
                "id": datasets.Value("string"),
                "tokens": datasets.Sequence(datasets.Value("string")),
                "labels": datasets.Sequence(datasets.ClassLabel(names=names)),
            }
        )
    label = datasets.Value("float32") if task == "sts" else datasets.ClassLabel(names=names)
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "text_pair": datasets.Value("string"),
            "label": label,
        }
    )


def _columns(task: str, records: list[dict], names: list[str] | None) -> dict[str, list]:
    ids = [r["id"] for r in records]
    if task in ("upos", "xpos", "ner"):
        key = {"upos": "upos", "xpos": "xpos", "ner": "ner"}[task]
        if task == "ner":
            labels = [r["ner"] for r in records]
        else:
            index = {n: i for i, n in enumerate(names)}
            labels = [[index[t] for t in r[key]] for r in records]
        return {"id": ids, "tokens": [r["tokens"] for r in records], "labels": labels}
    if task == "sts":
        return {
            "id": ids,
            "text": [r["text"] for r in records],
            "text_pair": [r["text_pair"] for r in records],
            "label": [r["score"] for r in records],
        }
    if task == "sapn":
        labels = [0 if r["star"] in ("1", "2") else 1 for r in records]
    elif task == "sar":
        labels = [SAR_NAMES.index(r["star"]) for r in records]
    else:  # di
        labels = [DI_NAMES.index(r["dialect"]) for r in records]
    return {"id": ids, "text": [r["text"] for r in records], "text_pair": [""] * len(records), "label": labels}


def _label_names(task: str, splits: dict[str, SplitData]) -> list[str] | None:
    if task == "upos":
        return list(UPOS_TAGS)
    if task == "xpos":
        return sorted({t for s in splits.values() for r in s.records for t in r["xpos"]})
    return {"ner": NER_TAGS, "sapn": SAPN_NAMES, "sar": SAR_NAMES, "di": DI_NAMES, "sts": None}[task]


def build_task(task: str, splits: dict[str, SplitData]) -> datasets.DatasetDict:
    """Records of a data set -> the task's DatasetDict with uniform schema and provenance."""
    names = _label_names(task, splits)
    feats = _features(task, names)
    out = {}
    for split in SPLITS:
        s = splits[split]
        prov = {
            "task": task,
            "dataset": TASK_DATASET[task],
            "split": split,
            "kind": s.kind,
            "source": s.source,
            "note": s.note,
        }
        out[split] = datasets.Dataset.from_dict(
            _columns(task, s.records, names),
            info=datasets.DatasetInfo(description=json.dumps(prov, ensure_ascii=False), features=feats),
        )
    return datasets.DatasetDict(out)


def _cache_key(task: str, normalize: bool, names: dict[str, str], digests: dict[str, str]) -> str:
    blob = json.dumps(
        {
            "v": LOADER_VERSION,
            "task": task,
            "normalize": normalize,
            "files": {role: [n, digests[n]] for role, n in sorted(names.items())},
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_task(
    task: str,
    data_dir: Path | str | None = None,
    source: str = "auto",
    *,
    normalize: bool = True,
    use_cache: bool = True,
) -> datasets.DatasetDict:
    """Load ``task`` as a DatasetDict (``train``/``validation``/``test``) with the uniform schema.

    ``source``: ``"mirror"`` (``data_dir`` or ``ROKD_DATA_DIR``), ``"download"`` (official URLs into the
    cache) or ``"auto"`` (mirror when one is given/set, else download). ``normalize`` maps cedilla ş ţ to
    comma-below ș ț (see the module docstring for DI). The parsed result is cached under
    ``cache_dir()/datasets`` keyed by the input files' sha256; ``use_cache=False`` re-parses.
    """
    _check_task(task)
    dataset = TASK_DATASET[task]
    resolve, build = DATASET_IO[dataset]
    fetcher = Fetcher(source, data_dir)
    names = resolve(fetcher)
    key = _cache_key(task, normalize, names, fetcher.digests)
    cache = paths.cache_dir() / "datasets" / f"{task}{'' if normalize else '-raw'}-{key}"
    if use_cache and (cache / "dataset_dict.json").exists():
        return _load_cached(cache)
    dd = build_task(task, build(names, fetcher, normalize=normalize))
    if use_cache:
        _save_atomically(dd, cache)
    return dd


def _load_cached(cache: Path) -> datasets.DatasetDict:
    """A parsed-data cache folder; a damaged one is an error naming it (it is safe to delete)."""
    from rokd.errors import CorruptFileError

    try:
        dd = datasets.load_from_disk(str(cache))
        for split in dd.values():  # touch both ends: a truncated table fails here, not deep in a later step
            if len(split):
                split[0], split[len(split) - 1]
        return dd
    except Exception as e:  # pyarrow, json and OS errors alike
        raise CorruptFileError(
            cache, "parsed-data cache", "delete that folder; it is rebuilt from the data files on the next run", e
        ) from e


def _save_atomically(dd: datasets.DatasetDict, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        dd.save_to_disk(str(tmp))
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race; its copy is identical
            pass
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def split_provenance(dd: datasets.DatasetDict) -> dict[str, dict[str, str]]:
    """Per split: ``{"kind": official|rebuilt|substitute, "source": ..., "note": ...}`` (plus task, dataset)."""
    out = {}
    for split, ds in dd.items():
        try:
            prov = json.loads(ds.info.description or "")
        except json.JSONDecodeError:
            prov = None
        if not isinstance(prov, dict) or prov.get("kind") not in PROVENANCE_KINDS:
            raise ValueError(f"split {split!r} carries no rokd provenance; was it made by rokd.data.load_task?")
        out[split] = prov
    return out


def label_names(dd: datasets.DatasetDict) -> list[str] | None:
    """Label names of a task DatasetDict (None for STS, whose label is a float)."""
    feats = next(iter(dd.values())).features
    feat = feats["labels"].feature if "labels" in feats else feats["label"]
    return list(feat.names) if isinstance(feat, datasets.ClassLabel) else None
