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


def encode_tagging(tokenizer, ids: list[str], tokens: list[list[str]], labels: list[list[int]], max_length: int) -> Encoded:
    """First-sub-word encoding of word-tokenised sentences; long sentences split into word chunks."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tagging needs a fast tokenizer (word_ids()); load it with AutoTokenizer(use_fast=True)")
    budget = max_length - _special_tokens_count(tokenizer)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for sub-words")
    # Sub-word count of every distinct word, in one batched call.
    vocab = sorted({w for sent in tokens for w in sent})
    counts = dict(zip(vocab, (len(x) for x in tokenizer(vocab, add_special_tokens=False)["input_ids"]))) if vocab else {}
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
    tokenizer, ids: list[str], text: list[str], text_pair: list[str] | None, labels: list, max_length: int, regression: bool
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
