"""The tokenized corpus: a one-sentence-per-line file tokenized once into flat numpy arrays (token ids, word
ids, character spans), cached as ``.npz``; token counts and the smoothed masking weights drawn from them."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rokd import io

_CACHE_VERSION = 2  # 2: char_spans are visible spans (markers and spaces excluded)


@dataclass
class TokenizedLines:
    """A tokenized one-sentence-per-line corpus held as flat numpy arrays.

    Example ``i`` spans ``offsets[i]:offsets[i + 1]`` of ``input_ids`` / ``word_ids`` / ``char_spans``
    and comes from line ``line_index[i]`` (0-based) of the source file. ``word_ids`` is -1 for special
    tokens; ``char_spans`` are ``(start, end)`` character offsets into that line of the token's *visible*
    characters: (0, 0) for specials, whitespace excluded (a SentencePiece ``▁casa`` covers ``casa``,
    not the space before it) and empty for a token that stands only for a space (a lone ``▁``).
    """

    input_ids: np.ndarray  # int32, (n_tokens,)
    word_ids: np.ndarray  # int32, (n_tokens,)
    char_spans: np.ndarray  # int32, (n_tokens, 2)
    offsets: np.ndarray  # int64, (n_examples + 1,)
    line_index: np.ndarray  # int64, (n_examples,)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Number of tokens (special tokens included) of every example."""
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"example {i} out of range for a corpus of {len(self)} examples")
        i = i % len(self)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return {
            "input_ids": self.input_ids[a:b],
            "word_ids": self.word_ids[a:b],
            "char_spans": self.char_spans[a:b],
            "line_index": int(self.line_index[i]),
            "example_index": i,
        }

    def save(self, path: str | Path, fingerprint: str = "") -> Path:
        """Write as ``.npz`` (temp file, then rename). Loaded again without pickle."""
        with io.atomic_path(path, ".npz") as tmp:
            np.savez(
                tmp,
                input_ids=self.input_ids,
                word_ids=self.word_ids,
                char_spans=self.char_spans,
                offsets=self.offsets,
                line_index=self.line_index,
                fingerprint=np.array(fingerprint),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> tuple[TokenizedLines, str]:
        """Read a ``.npz`` written by :meth:`save`; returns the corpus and its fingerprint."""
        with np.load(path, allow_pickle=False) as z:
            missing = {"input_ids", "word_ids", "char_spans", "offsets", "line_index", "fingerprint"} - set(z.files)
            if missing:
                raise ValueError(
                    f"{path}: not a rokd tokenized corpus (missing arrays {sorted(missing)}); delete it to rebuild"
                )
            corpus = cls(**{k: z[k] for k in ("input_ids", "word_ids", "char_spans", "offsets", "line_index")})
            return corpus, str(z["fingerprint"])


def _require_fast(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; word ids and offsets need one "
            "(load it with AutoTokenizer.from_pretrained(..., use_fast=True))"
        )


def _fingerprint(path: Path, tokenizer: Any, max_length: int) -> str:
    st = path.stat()
    h = hashlib.sha256()
    h.update(json.dumps([_CACHE_VERSION, str(path.resolve()), st.st_size, st.st_mtime_ns, max_length]).encode())
    # truncation/padding are call-time settings that the tokenizer object remembers: leave them out
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    h.update(json.dumps(spec, sort_keys=True).encode())
    return h.hexdigest()


def _spans_include_spaces(tokenizer: Any) -> bool:
    """Whether the tokenizer's offsets can cover a space (SentencePiece's ``▁word`` does, BERT's and a
    byte-level BPE's with ``trim_offsets`` do not): probed on a two-word text."""
    text = "a b"
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return any(text[a:b] != text[a:b].strip() for a, b in enc["offset_mapping"])


def _blank_token_ids(tokenizer: Any) -> np.ndarray:
    """Bool over the vocabulary: tokens that decode to nothing but whitespace (a lone ``▁``)."""
    size = len(tokenizer)
    texts = tokenizer.backend_tokenizer.decode_batch([[i] for i in range(size)], skip_special_tokens=True)
    return np.asarray([not t.strip() for t in texts], dtype=bool)


def visible_spans(text: str, ids: np.ndarray, spans: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """Character spans without surrounding whitespace; a whitespace-only token gets an empty span."""
    out = spans.copy()
    for k, (a, b) in enumerate(spans.tolist()):
        if a == b:
            continue
        if blank[ids[k]]:
            out[k] = (b, b)
            continue
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        out[k] = (a, b)
    return out


def _encode_chunk(tokenizer: Any, texts: list[str], max_length: int):
    """``tokenizer(texts, truncation=True, max_length=...)`` with offsets, read straight from the Rust
    encodings into flat arrays: ``(input_ids, word_ids (-1 for special tokens), char spans (n, 2), lengths)``.
    The same encodings as the Python call (which converts every encoding to lists first: half the time)."""
    backend = tokenizer.backend_tokenizer
    truncation, padding = backend.truncation, backend.padding
    backend.enable_truncation(max_length, direction=getattr(tokenizer, "truncation_side", "right"))
    backend.no_padding()
    try:
        encodings = backend.encode_batch(texts, add_special_tokens=True)
    finally:  # the tokenizer object remembers call-time settings: give it back as it was
        if truncation is None:
            backend.no_truncation()
        else:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    n = int(lengths.sum())
    chain = itertools.chain.from_iterable
    ids = np.fromiter(chain(e.ids for e in encodings), dtype=np.int32, count=n)
    words = np.fromiter((-1 if w is None else w for w in chain(e.word_ids for e in encodings)), dtype=np.int32, count=n)
    spans = np.fromiter(chain(chain(e.offsets for e in encodings)), dtype=np.int32, count=2 * n).reshape(n, 2)
    return ids, words, spans, lengths


def tokenize_lines(
    source: str | Path | Sequence[str],
    tokenizer: Any,
    max_length: int,
    *,
    cache_path: str | Path | None = None,
    chunk_size: int = 2000,
) -> TokenizedLines:
    """Tokenize a one-sentence-per-line text file (or a list of lines) with a fast tokenizer.

    Lines are truncated to ``max_length`` tokens (special tokens included); blank lines are skipped
    (``line_index`` keeps the mapping to file lines). With ``cache_path`` (a file source only) the
    result is stored as ``.npz`` and reused while the file, the tokenizer and ``max_length`` are unchanged.
    """
    _require_fast(tokenizer)
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3 (two special tokens + one word), got {max_length}")
    fingerprint = ""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"corpus file not found: {path} (build the corpus first: `rokd data corpus`)")
        fingerprint = _fingerprint(path, tokenizer, max_length)
        if cache_path is not None and Path(cache_path).is_file():
            cached, fp = TokenizedLines.load(cache_path)
            if fp == fingerprint:
                return cached
        with path.open(encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
    else:
        lines = list(source)
        if cache_path is not None:
            raise ValueError("cache_path needs a file source (a list of lines has no fingerprint)")

    kept = [(i, line.strip()) for i, line in enumerate(lines) if line.strip()]
    if not kept:
        raise ValueError(f"{source if isinstance(source, (str, Path)) else 'lines'}: no non-empty line to tokenize")
    ids_parts, word_parts, span_parts, lengths = [], [], [], []
    blank = _blank_token_ids(tokenizer) if _spans_include_spaces(tokenizer) else None
    for start in range(0, len(kept), chunk_size):
        chunk = [text for _, text in kept[start : start + chunk_size]]
        ids, words, spans, chunk_lengths = _encode_chunk(tokenizer, chunk, max_length)
        if blank is not None:
            ends = np.cumsum(chunk_lengths)
            for j, (a, b) in enumerate(zip(ends - chunk_lengths, ends)):
                spans[a:b] = visible_spans(chunk[j], ids[a:b], spans[a:b], blank)
        ids_parts.append(ids)
        word_parts.append(words)
        span_parts.append(spans)
        lengths.extend(chunk_lengths.tolist())
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    corpus = TokenizedLines(
        input_ids=np.concatenate(ids_parts),
        word_ids=np.concatenate(word_parts),
        char_spans=np.concatenate(span_parts),
        offsets=offsets,
        line_index=np.asarray([i for i, _ in kept], dtype=np.int64),
    )
    if cache_path is not None:
        corpus.save(cache_path, fingerprint)
    return corpus


def token_counts(corpus: TokenizedLines, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in the corpus (int64, length ``vocab_size``)."""
    return np.bincount(corpus.input_ids, minlength=vocab_size).astype(np.int64)


def smoothed_token_weights(
    counts: np.ndarray | torch.Tensor, special_ids: Sequence[int] = (), exponent: float = 0.7
) -> torch.Tensor:
    """Masking weights ``max(count, 1) ** -exponent`` (HF DistilBERT recipe), 0 for special tokens.

    Rare tokens get chosen more often than uniform masking would choose them.
    """
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64).clamp(min=1.0)
    weights = counts.pow(-exponent)
    if len(special_ids):
        weights[torch.as_tensor(list(special_ids), dtype=torch.long)] = 0.0
    return weights.float()
