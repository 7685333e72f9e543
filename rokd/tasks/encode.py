"""Turn task examples into model inputs: first-sub-word labels for tagging, (pair) encodings for sentences.

Tagging sentences longer than ``max_length`` sub-words are split into consecutive word chunks that
each fit, so every word of every sentence gets a prediction whatever the tokenizer (rows then align
across models). Sentence tasks are truncated to ``max_length`` (``longest_first`` for pairs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

IGNORE_INDEX = -100  # positions the loss and the metrics skip (special tokens, non-first sub-words)


def align_labels(word_ids: list[int | None], word_labels: list[int]) -> list[int]:
    """Label of each token: the word's label on its FIRST sub-word, ``IGNORE_INDEX`` elsewhere.

    ``word_ids`` is a fast tokenizer's ``encoding.word_ids()`` (None for special tokens).
    """
    labels: list[int] = []
    previous: int | None = None
    for wid in word_ids:
        if wid is None:
            labels.append(IGNORE_INDEX)
        elif wid != previous:
            labels.append(int(word_labels[wid]))
        else:
            labels.append(IGNORE_INDEX)
        previous = wid
    return labels


def stable_subset(ids: list[str], n: int | None) -> list[int]:
    """Indices of ``n`` examples chosen by a hash of their id: the same subset for every model and seed.

    Hashing ids (not shuffling positions) keeps the choice stable if a split's order changes; the
    chosen examples are returned in their original order.
    """
    if n is None or n >= len(ids):
        return list(range(len(ids)))
    keys = sorted(range(len(ids)), key=lambda i: hashlib.sha1(str(ids[i]).encode("utf-8")).hexdigest())
    return sorted(keys[:n])


@dataclass
class Encoded:
    """Model inputs of one split plus the scored rows they produce.

    ``features[i]`` holds ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
    tokenizer makes them) and ``labels``; ``row_ids`` / ``gold`` list the scored rows (one per word
    for tagging, one per example otherwise) in the order the features produce them.
    """

    features: list[dict]
    row_ids: list[str]
    gold: np.ndarray
    n_examples: int
    n_truncated: int = 0  # sentence tasks: examples cut at max_length; tagging: sentences split in chunks
    extra: dict = field(default_factory=dict)

    @property
    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]


def _special_tokens_count(tokenizer, pair: bool = False) -> int:
    return tokenizer.num_special_tokens_to_add(pair=pair)


def encode_tagging(
    tokenizer, ids: list[str], tokens: list[list[str]], labels: list[list[int]], max_length: int
) -> Encoded:
    """First-sub-word encoding of word-tokenised sentences; long sentences split into word chunks."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tagging needs a fast tokenizer (word_ids()); load it with AutoTokenizer(use_fast=True)")
    budget = max_length - _special_tokens_count(tokenizer)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for sub-words")
    # Sub-word count of every distinct word, in one batched call.
    vocab = sorted({w for sent in tokens for w in sent})
    counts = (
        dict(zip(vocab, (len(x) for x in tokenizer(vocab, add_special_tokens=False)["input_ids"]))) if vocab else {}
    )
    unk = tokenizer.unk_token or "[UNK]"

    chunk_words: list[list[str]] = []
    chunk_labels: list[list[int]] = []
    chunk_rows: list[list[str]] = []
    n_split = 0
    for ex_id, sent, labs in zip(ids, tokens, labels):
        if len(sent) != len(labs):
            raise ValueError(f"example {ex_id!r}: {len(sent)} tokens but {len(labs)} labels")
        # A word the tokenizer maps to nothing (e.g. a zero-width space) would get no first sub-word:
        # feed the unknown token instead so every word is scored.
        words = [w if counts.get(w, 0) > 0 else unk for w in sent]
        sizes = [max(1, counts.get(w, 0)) for w in sent]
        start, used = 0, 0
        pieces = []
        for i, size in enumerate(sizes):
            if used + size > budget and i > start:
                pieces.append((start, i))
                start, used = i, 0
            used += size
        pieces.append((start, len(words)))
        n_split += len(pieces) > 1
        for a, b in pieces:
            chunk_words.append(words[a:b])
            chunk_labels.append([int(x) for x in labs[a:b]])
            chunk_rows.append([f"{ex_id}#{w}" for w in range(a, b)])

    features: list[dict] = []
    row_ids: list[str] = []
    gold: list[int] = []
    if chunk_words:
        enc = tokenizer(chunk_words, is_split_into_words=True, truncation=True, max_length=max_length)
        for k in range(len(chunk_words)):
            word_ids = enc.word_ids(k)
            lab = align_labels(word_ids, chunk_labels[k])
            scored = [word_ids[p] for p, v in enumerate(lab) if v != IGNORE_INDEX]
            if scored != list(range(len(chunk_words[k]))):
                # Only possible when one word alone is longer than max_length: say so plainly.
                raise ValueError(
                    f"{chunk_rows[k][0]}: not every word kept a first sub-word within max_length={max_length}"
                )
            feat = {name: enc[name][k] for name in enc.keys()}
            feat["labels"] = lab
            features.append(feat)
            row_ids.extend(chunk_rows[k])
            gold.extend(chunk_labels[k])
    return Encoded(features, row_ids, np.asarray(gold, dtype=np.int64), n_examples=len(ids), n_truncated=n_split)


def encode_sentences(
    tokenizer,
    ids: list[str],
    text: list[str],
    text_pair: list[str] | None,
    labels: list,
    max_length: int,
    regression: bool,
) -> Encoded:
    """Single sentences or sentence pairs, truncated to ``max_length`` sub-words."""
    if text_pair is not None and not any(text_pair):
        text_pair = None
    enc = tokenizer(text, text_pair, truncation=True, max_length=max_length)
    full = tokenizer(text, text_pair, truncation=False, verbose=False)["input_ids"]  # only to count truncations
    n_trunc = sum(len(x) > max_length for x in full)
    features = []
    for k in range(len(text)):
        feat = {name: enc[name][k] for name in enc.keys()}
        feat["labels"] = float(labels[k]) if regression else int(labels[k])
        features.append(feat)
    gold = np.asarray(labels, dtype=np.float32 if regression else np.int64)
    return Encoded(features, [str(i) for i in ids], gold, n_examples=len(ids), n_truncated=n_trunc)


def select_split(ds, limit: int | None):
    """The hash-selected subset of a split that every model (and baseline) is trained / scored on."""
    ids = [str(i) for i in ds["id"]]
    keep = stable_subset(ids, limit)
    return ds.select(keep) if len(keep) < len(ids) else ds


# Tasks whose label set is built from the data the model learns from (see :class:`LabelInventory`).
INVENTORY_TASKS = ("upos", "xpos")


@dataclass(frozen=True)
class LabelInventory:
    """The classes a tagger can output: the tags seen in the (selected) train and validation splits.

    The dataset's ``ClassLabel`` lists every tag of every split, test included (RRT's XPOS: the union of
    the three). A model must not be given an output for a tag that only the test split holds: it would
    never be trained and its presence leaks the test inventory. The model's classes are
    ``source_ids`` (dataset label ids, in dataset order); predictions are mapped back to dataset ids, so
    gold labels, ``label_names`` and prediction files keep the dataset's ids, and a test word whose gold
    tag is outside the inventory can never be predicted right: it counts as an error.

    For NER and the sentence tasks the inventory is every dataset label (their label sets are fixed by
    the annotation scheme, not by which tags a sample happens to contain).
    """

    source_names: tuple[str, ...]
    source_ids: tuple[int, ...]

    @classmethod
    def build(cls, task: str, source_names, label_sources=()) -> "LabelInventory":
        """``label_sources``: iterables of per-example label lists (tagging) used to collect the tags."""
        names = tuple(str(n) for n in source_names)
        if task not in INVENTORY_TASKS:
            return cls(names, tuple(range(len(names))))
        seen: set[int] = set()
        for labels in label_sources:
            for sent in labels:
                seen.update(int(x) for x in sent)
        if not seen:
            raise ValueError(f"task {task!r}: no tags in the training / validation data to build the label set from")
        bad = sorted(i for i in seen if not 0 <= i < len(names))
        if bad:
            raise ValueError(f"task {task!r}: label ids {bad[:5]} outside the {len(names)} dataset labels")
        return cls(names, tuple(sorted(seen)))

    @property
    def model_names(self) -> list[str]:
        """Names of the model's output classes, in order."""
        return [self.source_names[i] for i in self.source_ids]

    @property
    def left_out(self) -> list[str]:
        """Dataset labels the model has no output for (never seen in train / validation)."""
        kept = set(self.source_ids)
        return [n for i, n in enumerate(self.source_names) if i not in kept]

    def to_model(self, source_labels) -> list[list[int]]:
        """Dataset label ids -> model class ids, per example (every label must be in the inventory)."""
        index = {s: m for m, s in enumerate(self.source_ids)}
        try:
            return [[index[int(x)] for x in sent] for sent in source_labels]
        except KeyError as e:
            name = self.source_names[e.args[0]]
            raise ValueError(f"label id {e.args[0]} ({name!r}) is not in the label inventory") from None

    def to_source(self, pred: np.ndarray, probs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Model class ids (and ``(N, K)`` probabilities) -> dataset ids (and ``(N, C)``, zero for left-out labels)."""
        ids = np.asarray(self.source_ids, dtype=np.int64)
        pred = ids[np.asarray(pred, dtype=np.int64)]
        if probs is not None:
            full = np.zeros((probs.shape[0], len(self.source_names)), dtype=probs.dtype)
            full[:, ids] = probs
            probs = full
        return pred, probs

    def record(self, test_gold: np.ndarray | None = None) -> dict:
        """What the run record says about the label set (and how many test rows it cannot get right)."""
        out = {"classes": len(self.source_ids), "dataset_labels": len(self.source_names), "left_out": self.left_out}
        if test_gold is not None:
            out["test_rows_outside"] = int((~np.isin(np.asarray(test_gold), self.source_ids)).sum())
        return out
