"""Masked-language-model utilities shared by teacher pretraining (``rokd.models``) and distillation
(``rokd.distill``).

The pieces, from text to logits:

1. :func:`tokenize_lines` reads a one-sentence-per-line file (``artifacts/<profile>/corpus/train.txt``)
   and tokenizes it once with a *fast* tokenizer into a :class:`TokenizedLines` (flat numpy arrays:
   token ids, word ids, character spans). ``cache_path=`` stores it as ``.npz`` (no pickle) and reuses it
   while the file, tokenizer and ``max_length`` are unchanged. Example ``i`` always comes from
   ``line_index[i]`` of the file (empty lines are skipped), so two tokenizations of the same file line
   up example by example -- what cross-tokenizer distillation needs.
2. :class:`LengthGroupedBatchSampler` yields batches of example indices of similar length, shuffled by a
   seed, endlessly (epoch after epoch). Its position is a cursor ``(epoch, position)``: ``state_dict()`` /
   ``load_state_dict()`` make a resumed run see exactly the same batches.
3. :class:`WholeWordMaskCollator` pads a list of examples and masks whole *words*: it chooses
   ``max(1, round(p * n_words))`` words per example (uniformly, or weighted by smoothed token frequency,
   the DistilBERT recipe ``count ** -0.7``), and for each chosen word decides once: 80 % all its subwords
   become ``[MASK]``, 10 % each subword becomes a random (non-special) token, 10 % it is kept. Special
   tokens and padding are never chosen. All randomness comes from the collator's own
   ``torch.Generator``, whose state is part of ``state_dict()``. The per-word decisions are returned as
   ``word_actions`` so another tokenization of the same text can be masked identically with
   :func:`apply_word_actions`; :func:`whole_word_mask` is the same masking as a plain function of a
   padded batch (for evaluation). (Word indices of two tokenizers agree only when their pre-tokenizers
   split the text the same way -- two BERT pre-tokenizers do, a SentencePiece one (whitespace only:
   ``mere.`` is one word) does not; :mod:`rokd.distill.batching` therefore maps the other tokenization's
   tokens onto the student's words by ``char_spans``.)
4. :class:`BatchStream` = dataset + sampler + collator, an endless iterator of ready batches with one
   ``state_dict()`` (sampler cursor + collator generator). ``rokd.trainer.train`` checkpoints it. With
   ``num_workers`` > 0 (a GPU run) it collates and masks in DataLoader worker processes; the collator then
   masks batch ``n`` with a seed derived from ``(seed, n)`` (``per_batch_seed=True``), so the state stays
   a cursor and resume stays exact.
5. :class:`SparseMLM` wraps a ``*ForMaskedLM`` model: encoder forward, then the MLM head **only at masked
   positions** (``labels != -100``). Head adaptors (:func:`bert_mlm_head`, :func:`distilbert_mlm_head`,
   :func:`roberta_mlm_head`) are looked up by ``config.model_type`` in :data:`MLM_HEADS`, so callers
   never branch on the model class. :func:`masked_positions_logits` and :func:`encoder_hidden_states`
   are the functional forms (for frozen teachers).

Usage (teacher pretraining)::

    from rokd import mlm, trainer
    corpus = mlm.tokenize_lines(train_txt, tokenizer, max_length=128, cache_path=out / "train_ids.npz")
    sampler = mlm.LengthGroupedBatchSampler(corpus.lengths, batch_size=32, seed=13)
    collator = mlm.WholeWordMaskCollator(tokenizer, mlm_probability=0.15, seed=13)
    batches = mlm.BatchStream(corpus, sampler, collator)
    net = mlm.SparseMLM(BertForMaskedLM(config))          # trainable module given to the trainer

    def step_fn(net, batch):
        out = net(batch["input_ids"], batch["attention_mask"], batch["labels"])
        return {"loss": torch.nn.functional.cross_entropy(out.logits.float(), out.targets)}

    result = trainer.train(net, step_fn, batches, trainer.TrainerConfig(output_dir=out, steps=1000))
    net.model.save_pretrained(out)

Batch keys: ``input_ids``, ``attention_mask``, ``labels`` (``-100`` where not predicted), ``word_ids``
(``-1`` for special tokens and padding), ``word_actions`` (``(batch, max_words)`` int8: 0 = not
chosen, 1 = ``[MASK]``, 2 = random token, 3 = kept), ``example_index`` (dataset indices).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rokd import io
from torch import nn
from transformers.modeling_outputs import BaseModelOutput, ModelOutput
from transformers.trainer_pt_utils import get_length_grouped_indices

NOT_CHOSEN, ACTION_MASK, ACTION_RANDOM, ACTION_KEEP = 0, 1, 2, 3
IGNORE_INDEX = -100
_CACHE_VERSION = 2  # 2: char_spans are visible spans (markers and spaces excluded)


# --------------------------------------------------------------------------------------------------
# 1. Tokenized corpus
# --------------------------------------------------------------------------------------------------


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
            np.savez(tmp, input_ids=self.input_ids, word_ids=self.word_ids, char_spans=self.char_spans,
                     offsets=self.offsets, line_index=self.line_index, fingerprint=np.array(fingerprint))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> tuple[TokenizedLines, str]:
        """Read a ``.npz`` written by :meth:`save`; returns the corpus and its fingerprint."""
        with np.load(path, allow_pickle=False) as z:
            missing = {"input_ids", "word_ids", "char_spans", "offsets", "line_index", "fingerprint"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: not a rokd tokenized corpus (missing arrays {sorted(missing)}); delete it to rebuild")
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
        enc = tokenizer(chunk, truncation=True, max_length=max_length, return_offsets_mapping=True)
        for j in range(len(chunk)):
            ids = np.asarray(enc["input_ids"][j], dtype=np.int32)
            spans = np.asarray(enc["offset_mapping"][j], dtype=np.int32).reshape(-1, 2)
            if blank is not None:
                spans = visible_spans(chunk[j], ids, spans, blank)
            ids_parts.append(ids)
            word_parts.append(np.asarray([-1 if w is None else w for w in enc.word_ids(j)], dtype=np.int32))
            span_parts.append(spans)
            lengths.append(len(ids))
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


def smoothed_token_weights(counts: np.ndarray | torch.Tensor, special_ids: Sequence[int] = (), exponent: float = 0.7) -> torch.Tensor:
    """Masking weights ``max(count, 1) ** -exponent`` (HF DistilBERT recipe), 0 for special tokens.

    Rare tokens get chosen more often than uniform masking would choose them.
    """
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64).clamp(min=1.0)
    weights = counts.pow(-exponent)
    if len(special_ids):
        weights[torch.as_tensor(list(special_ids), dtype=torch.long)] = 0.0
    return weights.float()


# --------------------------------------------------------------------------------------------------
# 2. Length-grouped batches with a resumable cursor
# --------------------------------------------------------------------------------------------------


class LengthGroupedBatchSampler:
    """Endless batches of example indices of similar length, reshuffled each epoch.

    Each epoch's order is a pure function of ``(seed, epoch)``: indices are grouped by length with
    ``transformers``' ``get_length_grouped_indices`` (random mega-batches sorted by length), cut into
    batches, and the batch order is shuffled. The cursor ``(epoch, position)`` is the whole state.

    With several processes (``num_shards`` > 1), shard ``shard_index`` takes every ``num_shards``-th
    batch, and all shards get the same number of batches per epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int = 0,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        mega_batch_mult: int | None = None,
        num_shards: int = 1,
        shard_index: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index {shard_index} not in [0, {num_shards})")
        self.lengths = [int(x) for x in lengths]
        if not self.lengths:
            raise ValueError("cannot sample batches from an empty dataset")
        self.batch_size, self.seed, self.shuffle, self.drop_last = batch_size, seed, shuffle, drop_last
        self.mega_batch_mult, self.num_shards, self.shard_index = mega_batch_mult, num_shards, shard_index
        self.epoch, self.position = 0, 0
        self._cache: tuple[int, list[list[int]]] | None = None
        if self.batches_per_epoch() == 0:
            raise ValueError(
                f"{len(self.lengths)} examples give no batch of {batch_size} per shard ({num_shards} shards, drop_last={drop_last})"
            )

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This shard's batches of ``epoch`` (deterministic)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.shuffle:
            order = get_length_grouped_indices(self.lengths, self.batch_size, self.mega_batch_mult, generator=g)
        else:
            order = list(range(len(self.lengths)))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        per_shard = len(batches) // self.num_shards
        batches = batches[self.shard_index :: self.num_shards][:per_shard]
        self._cache = (epoch, batches)
        return batches

    def batches_per_epoch(self) -> int:
        return len(self.epoch_batches(0))

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            batches = self.epoch_batches(self.epoch)
            if self.position >= len(batches):
                self.epoch, self.position = self.epoch + 1, 0
                continue
            batch = batches[self.position]
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "batch_size"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(f"sampler state was saved with {key}={int(state[key])}, this sampler has {getattr(self, key)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


# --------------------------------------------------------------------------------------------------
# 3. Whole-word masking
# --------------------------------------------------------------------------------------------------


def choose_word_actions(
    word_ids: torch.Tensor,
    input_ids: torch.Tensor,
    generator: torch.Generator,
    mlm_probability: float = 0.15,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Choose the words to predict in each example and what to do with each.

    ``word_ids`` (batch, length) holds -1 for special tokens/padding. Returns ``(batch, max_words)``
    int8: 0 not chosen, 1 ``[MASK]``, 2 random token, 3 kept. ``max(1, round(p * n_words))`` words are
    chosen per example (none if it has no word), uniformly or with probability proportional to the
    mean ``token_weights`` of their subwords.
    """
    batch = word_ids.shape[0]
    n_words = (word_ids.max(dim=1).values + 1).clamp(min=0)
    actions = torch.zeros(batch, max(int(n_words.max()), 1), dtype=torch.int8)
    for b in range(batch):
        n = int(n_words[b])
        if n == 0:
            continue
        k = max(1, int(round(mlm_probability * n)))
        if token_weights is None:
            chosen = torch.randperm(n, generator=generator)[:k]
        else:
            valid = word_ids[b] >= 0
            w = torch.zeros(n, dtype=torch.float64)
            cnt = torch.zeros(n, dtype=torch.float64)
            w.index_add_(0, word_ids[b][valid].long(), token_weights[input_ids[b][valid].long()].double())
            cnt.index_add_(0, word_ids[b][valid].long(), torch.ones(int(valid.sum()), dtype=torch.float64))
            w = w / cnt.clamp(min=1)
            w = torch.where(w > 0, w, torch.full_like(w, 1e-12))  # words made only of zero-weight tokens: rarely chosen
            chosen = torch.multinomial(w, min(k, n), replacement=False, generator=generator)
        u = torch.rand(len(chosen), generator=generator)
        act = torch.full((len(chosen),), ACTION_KEEP, dtype=torch.int8)
        act[u < mask_prob + random_prob] = ACTION_RANDOM
        act[u < mask_prob] = ACTION_MASK
        actions[b, chosen] = act
    return actions


def apply_word_actions(
    input_ids: torch.Tensor,
    word_ids: torch.Tensor,
    word_actions: torch.Tensor,
    mask_token_id: int,
    random_token_ids: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply per-word decisions to every subword of the chosen words.

    Returns ``(masked_input_ids, labels)``; labels hold the original id at every subword of a chosen
    word and -100 elsewhere. Random replacements are drawn from ``random_token_ids``.
    Usable on a second tokenization of the same text (cross-tokenizer distillation), as long as its
    ``word_ids`` index the same words; words beyond ``word_actions.shape[1]`` are left unmasked.
    """
    # words the actions do not cover (e.g. the other tokenization was truncated earlier) stay unmasked
    valid = (word_ids >= 0) & (word_ids < word_actions.shape[1])
    safe = torch.where(valid, word_ids, torch.zeros_like(word_ids)).long()
    token_action = torch.where(valid, torch.gather(word_actions.long(), 1, safe), torch.zeros_like(safe))
    labels = torch.where(token_action > 0, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    out = input_ids.clone()
    out[token_action == ACTION_MASK] = mask_token_id
    is_random = token_action == ACTION_RANDOM
    n_random = int(is_random.sum())
    if n_random:
        pick = torch.randint(len(random_token_ids), (n_random,), generator=generator)
        out[is_random] = random_token_ids[pick].to(out.dtype)
    return out, labels


def whole_word_mask(
    input_ids: torch.Tensor,
    word_ids: torch.Tensor,
    tokenizer: Any,
    generator: torch.Generator,
    mlm_probability: float = 0.15,
    token_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Functional whole-word masking of a padded batch: ``(masked_input_ids, labels, word_actions)``.

    The same draws, in the same order, as :class:`WholeWordMaskCollator` with this ``generator``.
    """
    special = {int(i) for i in tokenizer.all_special_ids}
    random_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special], dtype=torch.long)
    actions = choose_word_actions(word_ids, input_ids, generator, mlm_probability, token_weights=token_weights)
    masked, labels = apply_word_actions(input_ids, word_ids, actions, int(tokenizer.mask_token_id), random_ids, generator)
    return masked, labels, actions


def pad_examples(examples: Sequence[dict[str, Any]], pad_token_id: int, max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad ``input_ids``/``word_ids`` of tokenized examples into tensors (+ ``attention_mask``).

    Examples longer than ``max_length`` are cut (keeping the final special token is the tokenizer's job
    at tokenization time; here it is a plain cut).
    """
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    for i, ex in enumerate(examples):
        if "input_ids" not in ex or "word_ids" not in ex:
            raise KeyError(f"example {i} lacks 'input_ids' or 'word_ids' (tokenize with rokd.mlm.tokenize_lines)")
    seqs = [np.asarray(ex["input_ids"])[:max_length] for ex in examples]
    words = [np.asarray([-1 if w is None else w for w in ex["word_ids"]])[:max_length] for ex in examples]
    length = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), length), pad_token_id, dtype=torch.long)
    word_ids = torch.full((len(seqs), length), -1, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for b, (s, w) in enumerate(zip(seqs, words)):
        if len(s) != len(w):
            raise ValueError(f"example {b}: {len(s)} input_ids but {len(w)} word_ids")
        input_ids[b, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        word_ids[b, : len(w)] = torch.as_tensor(w, dtype=torch.long)
        attention_mask[b, : len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "word_ids": word_ids}


class WholeWordMaskCollator:
    """Pad tokenized examples and apply whole-word masking (80 % mask / 10 % random / 10 % keep per word).

    Input: a list of examples with ``input_ids`` and ``word_ids`` (as from :class:`TokenizedLines`, or a
    fast tokenizer's ``word_ids()`` with ``None`` for special tokens). Output keys: ``input_ids``,
    ``attention_mask``, ``labels``, ``word_ids``, ``word_actions``, ``example_index`` (if given).

    ``token_weights`` (vocab-sized, see :func:`smoothed_token_weights`) switches on frequency-smoothed
    word choice; off by default. ``seed`` seeds the collator's own generator; ``state_dict()`` holds it.
    ``per_batch_seed=True``: the generator is reseeded for every batch from ``(seed, batch number)``
    (:meth:`reseed_for`, called by :class:`BatchStream`), so batches can be masked in any order, in
    DataLoader workers; the masks differ from the default continuous stream's (same distribution).
    """

    def __init__(
        self,
        tokenizer: Any,
        mlm_probability: float = 0.15,
        max_length: int | None = None,
        seed: int = 0,
        *,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
        token_weights: torch.Tensor | None = None,
        per_batch_seed: bool = False,
    ):
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        if mask_prob < 0 or random_prob < 0 or mask_prob + random_prob > 1:
            raise ValueError(f"mask_prob + random_prob must be within [0, 1], got {mask_prob} + {random_prob}")
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError(f"tokenizer {type(tokenizer).__name__} needs a mask and a pad token for masked-LM batches")
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)
        special = set(int(i) for i in tokenizer.all_special_ids)
        vocab_size = len(tokenizer)
        self.random_token_ids = torch.tensor([i for i in range(vocab_size) if i not in special], dtype=torch.long)
        if token_weights is not None:
            token_weights = torch.as_tensor(token_weights, dtype=torch.float32)
            if token_weights.numel() < vocab_size:
                raise ValueError(f"token_weights has {token_weights.numel()} entries, the tokenizer {vocab_size} tokens")
        self.token_weights = token_weights
        self.mlm_probability, self.max_length = mlm_probability, max_length
        self.mask_prob, self.random_prob = mask_prob, random_prob
        self.seed, self.per_batch_seed = seed, per_batch_seed
        self.generator = torch.Generator().manual_seed(seed)

    def reseed_for(self, batch_number: int) -> None:
        """Per-batch mode: seed the generator from ``(seed, batch_number)`` alone (see :func:`batch_seed`)."""
        self.generator.manual_seed(batch_seed(self.seed, batch_number))

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_examples(examples, self.pad_token_id, self.max_length)
        actions = choose_word_actions(
            batch["word_ids"], batch["input_ids"], self.generator, self.mlm_probability, self.mask_prob, self.random_prob, self.token_weights
        )
        masked, labels = apply_word_actions(
            batch["input_ids"], batch["word_ids"], actions, self.mask_token_id, self.random_token_ids, self.generator
        )
        batch.update(input_ids=masked, labels=labels, word_actions=actions)
        if all("example_index" in ex for ex in examples):
            batch["example_index"] = torch.tensor([int(ex["example_index"]) for ex in examples], dtype=torch.long)
        return batch

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


# --------------------------------------------------------------------------------------------------
# 4. Batch stream
# --------------------------------------------------------------------------------------------------


def batch_seed(seed: int, batch_number: int) -> int:
    """The masking seed of batch ``batch_number`` in per-batch mode: a hash of ``(seed, batch_number)``."""
    digest = hashlib.sha256(f"rokd-mask:{int(seed)}:{int(batch_number)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class _NumberedBatches(torch.utils.data.Dataset):
    """DataLoader view of a stream: item ``(number, indices, cursor)`` -> ``(cursor, collated batch)``."""

    def __init__(self, dataset: Any, collate_fn: Callable):
        self.dataset, self.collate_fn = dataset, collate_fn

    def __len__(self) -> int:  # endless; DataLoader only needs the items the sampler names
        return 2**62

    def __getitem__(self, job):
        number, idx, cursor = job
        self.collate_fn.reseed_for(number)
        return cursor, self.collate_fn([self.dataset[i] for i in idx])


class BatchStream:
    """Endless iterator of collated batches: ``collate([dataset[i] for i in batch_indices])``.

    ``state_dict()`` holds the sampler cursor, the number of batches drawn and (in the default continuous
    mode) the collator's generator, so that a resumed run continues with exactly the batches -- and masks --
    an uninterrupted run would draw.

    ``num_workers`` > 0 collates and masks in that many ``torch.utils.data.DataLoader`` worker processes
    (prefetching ``prefetch`` batches each) -- what keeps a GPU fed. It needs a collator in per-batch mode
    (``per_batch_seed=True``: batch ``n`` is masked with a generator seeded from ``(seed, n)``, see
    :func:`batch_seed`), so no generator state has to travel between processes: the state is the cursor of
    the last batch handed out and the batch count, and a resumed run (with or without workers) draws the
    same batches. With ``num_workers=0`` and the default continuous collator, batches are produced in the
    training process exactly as before per-batch mode existed (the published runs' stream).
    """

    def __init__(self, dataset: Any, batch_sampler: Any, collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]],
                 *, num_workers: int = 0, prefetch: int = 2):
        self.dataset, self.batch_sampler, self.collate_fn = dataset, batch_sampler, collate_fn
        self.per_batch = bool(getattr(collate_fn, "per_batch_seed", False))
        if num_workers > 0 and not self.per_batch:
            raise ValueError("DataLoader workers need a collator in per-batch mode (per_batch_seed=True): a continuous "
                             "generator cannot be shared between processes")
        self.num_workers, self.prefetch = num_workers, prefetch
        self.drawn = 0  # batches handed out so far (the next batch's number)
        self._cursor = batch_sampler.state_dict() if hasattr(batch_sampler, "state_dict") else None
        self._indices: Iterator[list[int]] | None = None
        self._loader: Iterator | None = None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def _jobs(self) -> Iterator[tuple[int, list[int], Any]]:
        number = self.drawn
        for idx in self.batch_sampler:
            cursor = self.batch_sampler.state_dict() if hasattr(self.batch_sampler, "state_dict") else None
            yield number, idx, cursor
            number += 1

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.num_workers > 0:
            if self._loader is None:
                loader = torch.utils.data.DataLoader(
                    _NumberedBatches(self.dataset, self.collate_fn), sampler=self._jobs(), batch_size=None,
                    num_workers=self.num_workers, prefetch_factor=self.prefetch, persistent_workers=False,
                    pin_memory=torch.cuda.is_available())
                self._loader = iter(loader)
            cursor, batch = next(self._loader)
        else:
            if self._indices is None:
                self._indices = self._jobs()
            number, idx, cursor = next(self._indices)
            if self.per_batch:
                self.collate_fn.reseed_for(number)
            batch = self.collate_fn([self.dataset[i] for i in idx])
        self._cursor = cursor
        self.drawn += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        cursor = self._cursor if self._cursor is not None else self.batch_sampler.state_dict()
        state: dict[str, Any] = {"sampler": cursor, "drawn": self.drawn}
        if hasattr(self.collate_fn, "state_dict") and not self.per_batch:
            state["collator"] = self.collate_fn.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_sampler.load_state_dict(state["sampler"])
        self._cursor = state["sampler"]
        self.drawn = int(state.get("drawn", 0))
        self._indices = self._loader = None  # restart from the restored cursor (workers are started afresh)
        if "collator" in state:
            if not hasattr(self.collate_fn, "load_state_dict"):
                raise ValueError("saved stream state has a collator state but this collate_fn cannot load one")
            self.collate_fn.load_state_dict(state["collator"])


# --------------------------------------------------------------------------------------------------
# 5. Logits at masked positions only
# --------------------------------------------------------------------------------------------------


def bert_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``BertForMaskedLM``: hidden -> logits through ``model.cls``."""
    return lambda hidden: model.cls(hidden)


def distilbert_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``DistilBertForMaskedLM``: vocab_transform -> activation -> vocab_layer_norm -> vocab_projector."""
    return lambda hidden: model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(hidden))))


def roberta_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``RobertaForMaskedLM`` / XLM-R: ``model.lm_head``."""
    return lambda hidden: model.lm_head(hidden)


def electra_mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``ElectraForMaskedLM`` (the generator): generator_predictions -> generator_lm_head."""
    return lambda hidden: model.generator_lm_head(model.generator_predictions(hidden))


#: ``config.model_type`` -> adaptor returning the model's MLM head as a callable hidden -> logits.
MLM_HEADS: dict[str, Callable[[nn.Module], Callable[[torch.Tensor], torch.Tensor]]] = {
    "bert": bert_mlm_head,
    "distilbert": distilbert_mlm_head,
    "roberta": roberta_mlm_head,
    "xlm-roberta": roberta_mlm_head,
    "camembert": roberta_mlm_head,
    "electra": electra_mlm_head,
}


def mlm_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The MLM head of a ``*ForMaskedLM`` model, found by ``config.model_type`` in :data:`MLM_HEADS`."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in MLM_HEADS:
        raise KeyError(f"no MLM head adaptor for model_type {model_type!r}; known: {sorted(MLM_HEADS)} (add one to rokd.mlm.MLM_HEADS)")
    return MLM_HEADS[model_type](model)


def encoder_hidden_states(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, output_hidden_states: bool = True
) -> BaseModelOutput:
    """Run only the encoder (``model.base_model``) of a ``*ForMaskedLM`` model.

    ``last_hidden_state`` is (batch, length, hidden); ``hidden_states`` (embeddings + every layer) when
    asked for. No vocabulary projection is computed.
    """
    return model.base_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True)


def masked_positions_logits(
    hidden_states: torch.Tensor, labels: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``head`` only where ``labels != -100``.

    Returns ``(logits, targets)``: ``(n_masked, vocab)`` and ``(n_masked,)``, rows in row-major order of
    the masked positions (the order of ``hidden_states[labels != -100]``).
    """
    if hidden_states.shape[:2] != labels.shape:
        raise ValueError(f"hidden_states {tuple(hidden_states.shape)} and labels {tuple(labels.shape)} disagree on (batch, length)")
    positions = labels != IGNORE_INDEX
    return head(hidden_states[positions]), labels[positions]


@dataclass
class SparseMLMOutput(ModelOutput):
    """Output of :class:`SparseMLM`: logits/targets at masked positions, plus encoder states."""

    logits: torch.Tensor | None = None  # (n_masked, vocab)
    targets: torch.Tensor | None = None  # (n_masked,)
    last_hidden_state: torch.Tensor | None = None  # (batch, length, hidden)
    hidden_states: tuple[torch.Tensor, ...] | None = None


class SparseMLM(nn.Module):
    """A ``*ForMaskedLM`` model whose forward computes vocabulary logits only at masked positions.

    Give this module (not the bare model) to ``rokd.trainer.train`` so that, under DDP, the forward
    goes through the wrapper. Save with ``sparse.model.save_pretrained(...)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self._head = mlm_head(model)  # a plain function over model's own modules: nothing registered twice

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor, output_hidden_states: bool = False
    ) -> SparseMLMOutput:
        enc = encoder_hidden_states(self.model, input_ids, attention_mask, output_hidden_states)
        logits, targets = masked_positions_logits(enc.last_hidden_state, labels, self._head)
        return SparseMLMOutput(logits=logits, targets=targets, last_hidden_state=enc.last_hidden_state, hidden_states=enc.hidden_states)


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-padding input tokens of a batch (``attention_mask`` sum, else ``input_ids`` size)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


__all__ = [
    "TokenizedLines",
    "tokenize_lines",
    "token_counts",
    "smoothed_token_weights",
    "LengthGroupedBatchSampler",
    "choose_word_actions",
    "apply_word_actions",
    "whole_word_mask",
    "pad_examples",
    "WholeWordMaskCollator",
    "BatchStream",
    "batch_seed",
    "bert_mlm_head",
    "distilbert_mlm_head",
    "roberta_mlm_head",
    "electra_mlm_head",
    "MLM_HEADS",
    "mlm_head",
    "encoder_hidden_states",
    "masked_positions_logits",
    "SparseMLM",
    "SparseMLMOutput",
    "count_tokens",
]
