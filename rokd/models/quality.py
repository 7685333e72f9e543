"""How good is a masked LM? Measured on held-out text, next to a unigram-frequency baseline.

Two measures, both restricted to ordinary tokens (special tokens are never targets):

- **MLM accuracy**: whole words are masked as in pretraining (15 % of words, every subword of a chosen
  word replaced by ``[MASK]``; fixed seed so every model sees the same masks for the same tokenizer);
  top-1 accuracy of recovering the original subwords.
- **Pseudo-perplexity** (Salazar et al., 2020, *Masked Language Model Scoring*): each token of a
  sentence is masked in turn, alone; PPPL = exp(−mean log p(token | rest)). Its single-mask top-1
  accuracy is reported too.
- **Whole-word pseudo-perplexity**: the same, but each *word* is masked in turn with all its subwords,
  as in whole-word-masking pretraining; exp(−mean log p(subword | rest)) over the same subwords. A model
  pretrained with whole-word masks never sees a word with only some of its pieces masked, so the
  single-token PPPL puts it out of its training distribution; this variant does not.

The **unigram baseline** predicts from token frequencies of the training text under the same tokenizer:
its accuracy is the held-out share of the most frequent training token, its PPPL is
exp(−mean log p_unigram) with add-one smoothing. Numbers compare a model with its own baseline; PPPL
is not comparable across tokenizers with different vocabularies.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from rokd.mlm import IGNORE_INDEX, evaluation_mask


def read_lines(path: str | Path, limit: int | None = None, seed: int = 0) -> list[str]:
    """Non-empty lines of a text file; a seeded random sample of ``limit`` of them when given."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text file not found: {path}")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if limit is not None and len(lines) > limit:
        lines = random.Random(seed).sample(lines, limit)
    return lines


def _special_ids(tokenizer) -> set[int]:
    return set(tokenizer.all_special_ids)


def masked_logits(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, precision=None
) -> torch.Tensor:
    """Vocabulary logits only at ``positions`` (a bool mask shaped like ``input_ids``): (n_masked, vocab).

    Encoder, then the model's MLM head (found by ``rokd.mlm.mlm_head``) on the selected states only.
    ``precision`` (:class:`rokd.precision.Precision`, None = fp32): the forward runs under its autocast;
    the logits come back as float32.
    """
    from rokd.mlm import encoder_hidden_states, mlm_head

    with precision.autocast() if precision is not None else contextlib.nullcontext():
        hidden = encoder_hidden_states(model, input_ids, attention_mask, output_hidden_states=False).last_hidden_state
        return mlm_head(model)(hidden[positions]).float()


def unigram_counts(tokenizer, lines: Sequence[str], max_length: int = 128) -> Counter:
    """Subword frequencies (specials excluded) of ``lines`` under ``tokenizer``."""
    special = _special_ids(tokenizer)
    counts: Counter = Counter()
    for i in range(0, len(lines), 512):
        enc = tokenizer(list(lines[i : i + 512]), truncation=True, max_length=max_length, add_special_tokens=False)
        for ids in enc["input_ids"]:
            counts.update(t for t in ids if t not in special)
    return counts


class UnigramBaseline:
    """Frequency baseline: top-1 = the most frequent training token; probabilities add-one smoothed."""

    def __init__(self, counts: Counter, vocab_size: int):
        if not counts:
            raise ValueError("unigram baseline needs a non-empty training text")
        self.counts = counts
        self.total = sum(counts.values())
        self.vocab_size = vocab_size
        self.top = counts.most_common(1)[0][0]

    def log_prob(self, token_id: int) -> float:
        return math.log((self.counts.get(token_id, 0) + 1) / (self.total + self.vocab_size))


@torch.no_grad()
def mlm_accuracy(
    model,
    tokenizer,
    lines: Sequence[str],
    *,
    baseline: UnigramBaseline | None = None,
    mlm_probability: float = 0.15,
    max_length: int = 128,
    batch_size: int = 32,
    seed: int = 0,
    precision=None,
) -> dict:
    """Whole-word-masked top-1 accuracy (all chosen subwords -> ``[MASK]``); baseline on the same masks."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    correct = total = base_correct = 0
    for i in range(0, len(lines), batch_size):
        enc = tokenizer(
            list(lines[i : i + batch_size]),
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        words = torch.tensor([[-1 if w is None else w for w in enc.word_ids(b)] for b in range(len(enc["input_ids"]))])
        words[enc["special_tokens_mask"].bool() | ~enc["attention_mask"].bool()] = -1
        input_ids, targets = evaluation_mask(
            words, enc["input_ids"], tokenizer.mask_token_id, generator, mlm_probability
        )
        mask = targets != IGNORE_INDEX
        if not mask.any():
            continue
        labels = targets[mask]
        logits = masked_logits(
            model, input_ids.to(device), enc["attention_mask"].to(device), mask.to(device), precision
        )
        correct += int((logits.argmax(-1).cpu() == labels).sum())
        total += int(labels.numel())
        if baseline is not None:
            base_correct += int((labels == baseline.top).sum())
    out = {"mlm_accuracy": correct / total if total else float("nan"), "mlm_masked_tokens": total}
    if baseline is not None:
        out["unigram_mlm_accuracy"] = base_correct / total if total else float("nan")
    return out


@torch.no_grad()
def pseudo_perplexity(
    model,
    tokenizer,
    lines: Sequence[str],
    *,
    baseline: UnigramBaseline | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    precision=None,
) -> dict:
    """Pseudo-perplexity (Salazar et al. 2020): every token masked alone, in turn; single-mask accuracy too."""
    model.eval()
    device = next(model.parameters()).device
    special = _special_ids(tokenizer)
    nll = 0.0
    n = correct = base_correct = 0
    base_nll = 0.0
    for line in lines:
        ids = tokenizer(line, truncation=True, max_length=max_length)["input_ids"]
        targets = [j for j, t in enumerate(ids) if t not in special]
        for k in range(0, len(targets), batch_size):
            chunk = targets[k : k + batch_size]
            batch = torch.tensor([ids] * len(chunk))
            pos = torch.zeros_like(batch, dtype=torch.bool)
            pos[torch.arange(len(chunk)), torch.tensor(chunk)] = True
            labels = batch[pos]
            batch[pos] = tokenizer.mask_token_id
            logits = masked_logits(
                model, batch.to(device), torch.ones_like(batch).to(device), pos.to(device), precision
            )
            logp = torch.log_softmax(logits, -1).cpu()
            nll -= float(logp[torch.arange(len(chunk)), labels].sum())
            correct += int((logp.argmax(-1) == labels).sum())
            n += len(chunk)
            if baseline is not None:
                base_nll -= sum(baseline.log_prob(int(t)) for t in labels)
                base_correct += int((labels == baseline.top).sum())
    out = {
        "pseudo_perplexity": math.exp(nll / n) if n else float("nan"),
        "single_mask_accuracy": correct / n if n else float("nan"),
        "pppl_tokens": n,
        "pppl_lines": len(lines),
    }
    if baseline is not None:
        out["unigram_pseudo_perplexity"] = math.exp(base_nll / n) if n else float("nan")
        out["unigram_single_mask_accuracy"] = base_correct / n if n else float("nan")
    return out


@torch.no_grad()
def whole_word_pseudo_perplexity(
    model, tokenizer, lines: Sequence[str], *, max_length: int = 128, batch_size: int = 64, precision=None
) -> dict:
    """Pseudo-perplexity with each word (all its subwords) masked in turn; per subword, like
    :func:`pseudo_perplexity`."""
    model.eval()
    device = next(model.parameters()).device
    special = _special_ids(tokenizer)
    nll, n = 0.0, 0
    for line in lines:
        enc = tokenizer(line, truncation=True, max_length=max_length)
        ids, word_ids = enc["input_ids"], enc.word_ids()
        words: dict[int, list[int]] = {}
        for j, (t, w) in enumerate(zip(ids, word_ids)):
            if w is not None and t not in special:
                words.setdefault(w, []).append(j)
        groups = list(words.values())
        for k in range(0, len(groups), batch_size):
            chunk = groups[k : k + batch_size]
            batch = torch.tensor([ids] * len(chunk))
            pos = torch.zeros_like(batch, dtype=torch.bool)
            for r, positions in enumerate(chunk):
                pos[r, positions] = True
            labels = batch[pos]
            batch[pos] = tokenizer.mask_token_id
            logits = masked_logits(
                model, batch.to(device), torch.ones_like(batch).to(device), pos.to(device), precision
            )
            nll -= float(torch.log_softmax(logits, -1).cpu()[torch.arange(labels.numel()), labels].sum())
            n += int(labels.numel())
    return {"whole_word_pseudo_perplexity": math.exp(nll / n) if n else float("nan"), "whole_word_pppl_tokens": n}


def measure_quality(
    model,
    tokenizer,
    heldout_lines: Sequence[str],
    train_lines: Sequence[str],
    *,
    pppl_lines: int = 100,
    max_length: int = 128,
    mlm_probability: float = 0.15,
    seed: int = 0,
    precision=None,
) -> dict:
    """MLM accuracy on ``heldout_lines`` and pseudo-perplexity on the first ``pppl_lines`` of them, each
    next to the unigram baseline estimated on ``train_lines`` (same tokenizer).
    ``precision``: see :func:`masked_logits`."""
    baseline = UnigramBaseline(unigram_counts(tokenizer, train_lines, max_length), len(tokenizer))
    out = {"heldout_lines": len(heldout_lines), "unigram_train_tokens": baseline.total}
    out.update(
        mlm_accuracy(
            model,
            tokenizer,
            heldout_lines,
            baseline=baseline,
            mlm_probability=mlm_probability,
            max_length=max_length,
            seed=seed,
            precision=precision,
        )
    )
    out.update(
        pseudo_perplexity(
            model,
            tokenizer,
            list(heldout_lines[:pppl_lines]),
            baseline=baseline,
            max_length=max_length,
            precision=precision,
        )
    )
    # The same subwords as the PPPL above, so the unigram PPPL is its baseline too.
    out.update(
        whole_word_pseudo_perplexity(
            model, tokenizer, list(heldout_lines[:pppl_lines]), max_length=max_length, precision=precision
        )
    )
    return out
