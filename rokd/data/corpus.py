"""The raw-text corpus for MLM pretraining and distillation.

``build_corpus`` streams every source line by line, splits paragraphs into sentences, normalizes
diacritics, drops short lines, duplicates and any line that is a validation/test sentence of a task, and
writes one sentence per line to ``train.txt`` and ``heldout.txt`` (the held-out slice for MLM
evaluation) plus ``stats.json``.

Sources (read in a round-robin over files, so that a ``max_chars`` cap still samples every source):

* ``corpus/eltec-rom/*.txt`` and ``corpus/romaniancorpus/*.txt`` of the mirror (README, INDEX and
  metadata files are skipped);
* the **train** splits of the five task data sets (one task per data set), never validation/test.

No-leakage rule: every validation and test text of every task is split into sentences the same way and its
keys go into a block set; a corpus line whose key is in the set is dropped (counted in ``stats.json``).
The key of a line (used for deduplication too) is its lower-cased letters and digits only, so a sentence
written with different spacing or punctuation around tokens (``Într- o`` vs ``Într-o``) is still caught.

Memory: only 8-byte hashes of keys are kept; lines go to a temporary file in a first pass, and a second
pass splits it into train / held-out (seeded random choice of line numbers). Outputs are written to
temporary files and renamed, ``stats.json`` last.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from rokd import paths
from rokd.data.errors import utf8_text
from rokd.data.normalize import normalize_diacritics

CORPUS_DIRS = ("corpus/eltec-rom", "corpus/romaniancorpus")
# The task whose DatasetDict supplies each data set's text (tasks sharing a data set share text).
DATASET_TEXT_TASK = {"rrt": "upos", "ronec": "ner", "laroseda": "sapn", "moroco": "di", "rosts": "sts"}
MIN_WORDS = 3
FILES = ("train.txt", "heldout.txt", "stats.json")

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"„“«(\[\-—–]?\s*[A-ZĂÂÎȘȚŞŢ0-9])")
_NON_WORD = re.compile(r"[\W_]+")
_TITLE_HEADER = re.compile(r"^(TITLE|AUTHOR|TITLU|AUTOR)\s*:", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences at . ! ? … followed by space and an upper-case letter/digit/quote."""
    text = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(text) if s] if text else []


def line_key(line: str) -> int:
    """64-bit hash of a line's lower-cased letters and digits (deduplication and leakage check)."""
    key = _NON_WORD.sub("", line.lower())
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def iter_lines(path: Path | str) -> Iterator[str]:
    """Lines of a corpus file, without newlines (streaming)."""
    with utf8_text(path), open(path, encoding="utf-8") as f:
        for line in f:
            yield line.rstrip("\n")


def corpus_files(data_dir: Path | None) -> list[Path]:
    """The raw-text files of the mirror's ``corpus/`` folder (``*.txt`` only), in sorted order."""
    if data_dir is None:
        return []
    out = []
    for sub in CORPUS_DIRS:
        d = Path(data_dir) / sub
        if d.is_dir():
            out += sorted(p for p in d.glob("*.txt") if p.is_file())
    return out


def _file_sentences(path: Path) -> Iterator[str]:
    for line in iter_lines(path):
        if _TITLE_HEADER.match(line):
            continue
        yield from split_sentences(line)


def _example_texts(ds) -> Iterator[str]:
    if "tokens" in ds.column_names:
        for toks in ds["tokens"]:
            yield " ".join(toks)
    else:
        for a, b in zip(ds["text"], ds["text_pair"]):
            yield a
            if b:
                yield b


def _task_sentences(dd) -> Iterator[str]:
    for text in _example_texts(dd["train"]):
        yield from split_sentences(text)


def _round_robin(sources: list[tuple[str, Iterable[str]]]) -> Iterator[tuple[str, str]]:
    iters = [(name, iter(it)) for name, it in sources]
    while iters:
        alive = []
        for name, it in iters:
            line = next(it, None)
            if line is not None:
                yield name, line
                alive.append((name, it))
        iters = alive


def build_corpus(
    out_dir: Path | str,
    data_dir: Path | str | None = None,
    max_chars: int | None = None,
    heldout_lines: int = 2000,
    include_task_train_text: bool = True,
    seed: int = 13,
    breve_i: bool = True,
    source: str = "auto",
) -> dict:
    """Build ``train.txt``, ``heldout.txt`` and ``stats.json`` in ``out_dir``; return the stats.

    ``data_dir`` (default ``ROKD_DATA_DIR``) is the mirror whose ``corpus/`` folder is read; without a
    mirror only the task train texts (downloaded) are used and ``stats.json`` says so. ``max_chars``
    caps the characters written (None = everything). ``heldout_lines`` lines (at most half the corpus)
    are chosen with ``random.Random(seed)`` for the held-out slice. ``breve_i`` maps ĭ→i (old orthography).
    """
    from rokd.data import DATASETS, load_task

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mirror = Path(data_dir).expanduser().resolve() if data_dir is not None else paths.data_dir()

    sources: list[tuple[str, Iterable[str]]] = [
        (f"{p.parent.name}/{p.name}", _file_sentences(p)) for p in corpus_files(mirror)
    ]
    blocked: set[int] = set()
    for dataset in DATASETS:
        dd = load_task(DATASET_TEXT_TASK[dataset], data_dir=mirror, source=source)
        for split in ("validation", "test"):
            for text in _example_texts(dd[split]):
                blocked.add(line_key(normalize_diacritics(text, breve_i=breve_i)))
                for sent in split_sentences(text):
                    blocked.add(line_key(normalize_diacritics(sent, breve_i=breve_i)))
        if include_task_train_text:
            sources.append((f"task:{dataset}/train", _task_sentences(dd)))
    blocked.discard(line_key(""))

    pid = os.getpid()  # temp names per process: two concurrent builds never write the same file
    all_tmp = out_dir / f".all.{pid}.tmp"
    tmp_train, tmp_held, tmp_stats = (out_dir / f"{n}.{pid}.tmp" for n in FILES)
    try:
        kept = _keep_unique_lines(sources, blocked, all_tmp, max_chars, breve_i)
        del blocked
        split = _split_heldout(all_tmp, tmp_train, tmp_held, kept["lines"], heldout_lines, seed)
        stats = {
            "train_lines": kept["lines"] - split["heldout_lines"],
            "heldout_lines": split["heldout_lines"],
            "train_words": split["words"]["train"],
            "heldout_words": split["words"]["heldout"],
            "train_chars": split["chars"]["train"],
            "heldout_chars": split["chars"]["heldout"],
            "dropped": kept["dropped"],
            "sources": kept["sources"],
            "mirror": str(mirror) if mirror else None,
            "raw_corpus": str(mirror / "corpus")
            if corpus_files(mirror)
            else "absent (no data mirror: task train text only)",
            "config": {
                "max_chars": max_chars,
                "heldout_lines": heldout_lines,
                "include_task_train_text": include_task_train_text,
                "seed": seed,
                "breve_i": breve_i,
                "min_words": MIN_WORDS,
            },
        }
        (out_dir / "stats.json").unlink(missing_ok=True)  # outputs without stats.json are never taken as up to date
        os.replace(tmp_train, out_dir / "train.txt")
        os.replace(tmp_held, out_dir / "heldout.txt")
        tmp_stats.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp_stats, out_dir / "stats.json")
        return stats
    finally:  # nothing half-written survives a failure
        for tmp in (all_tmp, tmp_train, tmp_held, tmp_stats):
            tmp.unlink(missing_ok=True)


def _keep_unique_lines(
    sources: list[tuple[str, Iterable[str]]], blocked: set[int], out: Path, max_chars: int | None, breve_i: bool
) -> dict:
    """Write the sources' sentences, round robin and normalised, to ``out``: each once, none of ``blocked``
    (evaluation text), none shorter than ``MIN_WORDS``, up to ``max_chars``. Returns the counts."""
    seen: set[int] = set()
    dropped = {"duplicates": 0, "blocked_eval_sentences": 0, "too_short": 0}
    per_source: dict[str, dict[str, int]] = {}
    n_lines = n_chars = 0
    with open(out, "w", encoding="utf-8") as f:
        for name, sent in _round_robin(sources):
            sent = normalize_diacritics(sent, breve_i=breve_i).strip()
            if len(sent.split()) < MIN_WORDS:
                dropped["too_short"] += 1
                continue
            key = line_key(sent)
            if key in blocked:
                dropped["blocked_eval_sentences"] += 1
                continue
            if key in seen:
                dropped["duplicates"] += 1
                continue
            if max_chars is not None and n_chars + len(sent) > max_chars:
                break
            seen.add(key)
            f.write(sent + "\n")
            n_lines += 1
            n_chars += len(sent)
            src = per_source.setdefault(name, {"lines": 0, "chars": 0})
            src["lines"] += 1
            src["chars"] += len(sent)
    return {"lines": n_lines, "dropped": dropped, "sources": per_source}


def _split_heldout(all_lines: Path, train: Path, heldout: Path, n_lines: int, heldout_lines: int, seed: int) -> dict:
    """Copy ``all_lines`` into ``train`` and ``heldout``: ``heldout_lines`` lines (at most half) drawn with
    ``random.Random(seed)``, in corpus order. Returns their number and the words and characters of each part."""
    n_heldout = min(heldout_lines, n_lines // 2)
    heldout_idx = set(random.Random(seed).sample(range(n_lines), n_heldout))
    words = {"train": 0, "heldout": 0}
    chars = {"train": 0, "heldout": 0}
    with open(train, "w", encoding="utf-8") as tr, open(heldout, "w", encoding="utf-8") as ho:
        for i, line in enumerate(iter_lines(all_lines)):
            part = "heldout" if i in heldout_idx else "train"
            (ho if part == "heldout" else tr).write(line + "\n")
            words[part] += len(line.split())
            chars[part] += len(line)
    return {"heldout_lines": n_heldout, "words": words, "chars": chars}


def corpus_dir(profile: str) -> Path:
    """``artifacts/<profile>/corpus``."""
    return paths.artifacts_dir(profile) / "corpus"


def ensure_corpus(profile) -> Path:
    """Build ``artifacts/<profile>/corpus/`` unless it exists with the same config; return the folder.

    ``profile`` is a profile name or a ``rokd.profiles.Profile``. The config (the profile's
    ``DataConfig`` and the mirror path) is compared with the ``config`` recorded in ``stats.json``.
    """
    from rokd.profiles import load_profile

    prof = load_profile(profile) if isinstance(profile, (str, Path)) else profile
    cfg = prof.data
    out = corpus_dir(prof.name)
    mirror = paths.data_dir()
    wanted = {
        "max_chars": cfg.corpus_max_chars,
        "heldout_lines": cfg.corpus_heldout_lines,
        "include_task_train_text": cfg.include_task_train_text,
        "seed": cfg.seed,
        "breve_i": cfg.corpus_breve_i,
        "min_words": MIN_WORDS,
    }
    stats_path = out / "stats.json"
    if stats_path.exists() and all((out / f).exists() for f in FILES):
        try:
            old = json.loads(stats_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if old.get("config") == wanted and old.get("mirror") == (str(mirror) if mirror else None):
            return out
    build_corpus(
        out,
        data_dir=mirror,
        max_chars=cfg.corpus_max_chars,
        heldout_lines=cfg.corpus_heldout_lines,
        include_task_train_text=cfg.include_task_train_text,
        seed=cfg.seed,
        breve_i=cfg.corpus_breve_i,
    )
    return out
