"""Whole-word masking: the one masker of rokd, for pretraining, distillation and the held-out measures.

:func:`choose_word_actions` picks ``max(1, round(p * n_words))`` words per example and what happens to each
(80 % ``[MASK]``, 10 % random token, 10 % kept); :func:`apply_word_actions` applies those decisions to every
sub-word of a tokenization (also a second tokenization of the same text); :class:`WholeWordMaskCollator`
does both for training batches, :func:`whole_word_mask` for a padded batch and :func:`evaluation_mask` for
the held-out accuracy (every chosen word fully masked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

NOT_CHOSEN, ACTION_MASK, ACTION_RANDOM, ACTION_KEEP = 0, 1, 2, 3
IGNORE_INDEX = -100


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
    masked, labels = apply_word_actions(
        input_ids, word_ids, actions, int(tokenizer.mask_token_id), random_ids, generator
    )
    return masked, labels, actions


def evaluation_mask(
    word_ids: torch.Tensor,
    input_ids: torch.Tensor,
    mask_token_id: int,
    generator: torch.Generator,
    mlm_probability: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out measures' masking: the same choice of words as in training, every sub-word of a chosen
    word ``[MASK]``ed (no random or kept tokens). Returns ``(masked_input_ids, labels)``."""
    actions = choose_word_actions(word_ids, input_ids, generator, mlm_probability, mask_prob=1.0, random_prob=0.0)
    no_random = torch.zeros(0, dtype=torch.long)  # never drawn from: mask_prob is 1
    return apply_word_actions(input_ids, word_ids, actions, mask_token_id, no_random, generator)


def pad_examples(
    examples: Sequence[dict[str, Any]], pad_token_id: int, max_length: int | None = None
) -> dict[str, torch.Tensor]:
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


def batch_seed(seed: int, batch_number: int) -> int:
    """The masking seed of batch ``batch_number`` in per-batch mode: a hash of ``(seed, batch_number)``."""
    digest = hashlib.sha256(f"rokd-mask:{int(seed)}:{int(batch_number)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def masking_stamp(num_workers: int) -> dict[str, str]:
    """What a run records about its masking: ``{"masking_seeds": "per-batch"}`` when batches are masked in
    DataLoader workers, else nothing (the continuous in-process stream of the published runs).

    Per-batch masks depend on the seed and the batch number only, so the number of workers stays out of the
    record: a run started with six workers on a GPU resumes with one on a CPU."""
    return {"masking_seeds": "per-batch"} if num_workers > 0 else {}


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
                raise ValueError(
                    f"token_weights has {token_weights.numel()} entries, the tokenizer {vocab_size} tokens"
                )
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
            batch["word_ids"],
            batch["input_ids"],
            self.generator,
            self.mlm_probability,
            self.mask_prob,
            self.random_prob,
            self.token_weights,
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
