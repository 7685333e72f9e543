"""Distillation batches: the student's masked batch plus, for every teacher with another tokenizer, the
same text in that tokenizer with the same characters masked and the alignments the ensemble needs.

Both tokenizations come from :func:`rokd.mlm.tokenize_lines` on the same corpus file, so example ``i``
is the same sentence in both, and their ``char_spans`` are *visible* spans (a SentencePiece ``▁casa``
covers ``casa``, not the space before it). The two tokenizers need not agree on what a word is (a
BERT pre-tokenizer splits ``mere.`` into two words, a SentencePiece one keeps one): every token of the
other tokenization is given the student word its characters fall in (:func:`assign_student_words`;
the most-masked word when it straddles two, so that teacher never sees characters the student had
masked), and the student's per-word masking decisions (``word_actions``: mask / random / keep) are
applied through that assignment with :func:`rokd.mlm.apply_word_actions`.

Keys added to the batch for a cross-tokenizer teacher ``name`` (prefix ``f"{name}."``):

- ``input_ids``, ``attention_mask``, ``labels``: the teacher's masked input (labels != -100 at its
  tokens of the masked student words);
- ``row_of_student_row`` ``(n_student_masked,)``: for each student masked row (row-major order of
  ``labels != -100``), the teacher masked row covering exactly the same visible characters, or -1 --
  also when the span is empty or more than one token of either side has it (a byte-level BPE cuts
  ``Ş`` into two byte tokens of the same span: abstain rather than guess, :func:`one_to_one_rows`);
- ``student_unit`` ``(batch * L_student,)`` / ``teacher_unit`` ``(batch * L_teacher,)``: index of the
  student word (among words with tokens on both sides, batch-wide) each position belongs to, or -1;
  ``n_units``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rokd import mlm

# Which decision wins when a teacher token straddles student words: the most hiding one.
_ACTION_RANK = {mlm.NOT_CHOSEN: 0, mlm.ACTION_KEEP: 1, mlm.ACTION_RANDOM: 2, mlm.ACTION_MASK: 3}


def assign_student_words(
    s_words: np.ndarray,
    s_spans: np.ndarray,
    t_words: np.ndarray,
    t_spans: np.ndarray,
    s_actions: np.ndarray | None = None,
) -> np.ndarray:
    """The student word each teacher token belongs to (-1: none), by character overlap.

    A token overlapping several student words takes the one with the strongest masking decision in
    ``s_actions`` (indexed by student word; mask > random > keep > not chosen), then the largest
    overlap. A token with an empty span (a lone ``▁``) follows the other tokens of its own word.
    """
    s_words, t_words = np.asarray(s_words), np.asarray(t_words)
    s_spans, t_spans = np.asarray(s_spans).reshape(-1, 2), np.asarray(t_spans).reshape(-1, 2)
    out = np.full(len(t_words), -1, dtype=np.int64)
    valid_s = (s_words >= 0) & (s_spans[:, 1] > s_spans[:, 0])
    if not valid_s.any() or not len(t_words):
        return out
    n_words = int(s_words[valid_s].max()) + 1
    lo = np.maximum(t_spans[:, None, 0], s_spans[None, valid_s, 0])
    hi = np.minimum(t_spans[:, None, 1], s_spans[None, valid_s, 1])
    overlap = np.clip(hi - lo, 0, None)  # (L_t, valid student tokens)
    per_word = np.zeros((len(t_words), n_words), dtype=np.int64)
    np.add.at(per_word.T, s_words[valid_s], overlap.T)
    rank = np.zeros(n_words, dtype=np.int64)
    if s_actions is not None:
        acts = np.asarray(s_actions)[:n_words]
        rank[: len(acts)] = [_ACTION_RANK.get(int(x), 0) for x in acts]
    score = np.where(per_word > 0, rank[None, :] * (1 << 30) + per_word, -1)
    best = score.argmax(1)
    found = (score.max(1) >= 0) & (t_words >= 0)
    out[found] = best[found]
    # Tokens without characters (a lone word-start marker) join the student word of their own word.
    for k in np.flatnonzero((t_words >= 0) & (out < 0) & (t_spans[:, 1] == t_spans[:, 0])):
        same = (t_words == t_words[k]) & (out >= 0)
        if same.any():
            out[k] = out[np.flatnonzero(same)[0]]
    return out


def unique_spans(spans: np.ndarray) -> dict[tuple[int, int], int]:
    """Non-empty span -> position, for spans that exactly one position of the example has."""
    seen: dict[tuple[int, int], int] = {}
    dup: set[tuple[int, int]] = set()
    for k, (a, e) in enumerate(np.asarray(spans).reshape(-1, 2).tolist()):
        if e <= a:
            continue
        if (a, e) in seen:
            dup.add((a, e))
        seen[(a, e)] = k
    return {span: k for span, k in seen.items() if span not in dup}


def one_to_one_rows(
    s_positions: Sequence[tuple[int, int]],
    t_positions: Sequence[tuple[int, int]],
    s_spans: Sequence[np.ndarray],
    t_spans: Sequence[np.ndarray],
) -> list[int]:
    """For each student masked ``(example, position)``, the index of the teacher masked position with the
    same span (unique on both sides, non-empty), or -1."""
    s_unique = [unique_spans(x) for x in s_spans]
    t_unique = [unique_spans(x) for x in t_spans]
    t_row = {(b, pos): j for j, (b, pos) in enumerate(t_positions)}
    rows = []
    for b, pos in s_positions:
        a, e = np.asarray(s_spans[b])[pos].tolist()
        k = t_unique[b].get((a, e)) if s_unique[b].get((a, e)) == pos else None
        rows.append(t_row.get((b, k), -1) if k is not None else -1)
    return rows


def _clip_teacher_example(
    student_ex: Mapping[str, Any], teacher_ex: Mapping[str, Any], sep_id: int
) -> dict[str, np.ndarray]:
    """Drop the teacher's tokens past the student's last character (its truncation point), keep [SEP]."""
    s_valid = np.asarray(student_ex["word_ids"]) >= 0
    s_end = int(np.asarray(student_ex["char_spans"])[s_valid, 1].max()) if s_valid.any() else 0
    ids = np.asarray(teacher_ex["input_ids"])
    words = np.asarray(teacher_ex["word_ids"])
    spans = np.asarray(teacher_ex["char_spans"]).reshape(-1, 2)
    keep = (words < 0) | (spans[:, 1] <= s_end)
    keep[-1] = False  # re-added below: the final special token
    keep[0] = True
    ids, words, spans = ids[keep], words[keep], spans[keep]
    if ids[-1] != sep_id:
        ids = np.append(ids, sep_id)
        words = np.append(words, -1)
        spans = np.vstack([spans, [[0, 0]]])
    return {"input_ids": ids, "word_ids": words, "char_spans": spans}


class CrossTokenizerView:
    """Builds one cross-tokenizer teacher's part of a distillation batch (see module doc)."""

    def __init__(self, name: str, tokenizer: Any):
        self.name = name
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None or tokenizer.sep_token_id is None:
            raise ValueError(f"teacher {name}: its tokenizer needs mask, pad and separator (end) tokens")
        self.mask_id = int(tokenizer.mask_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        self.sep_id = int(tokenizer.sep_token_id)
        special = set(int(i) for i in tokenizer.all_special_ids)
        self.random_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special], dtype=torch.long)

    def __call__(
        self,
        student_examples: Sequence[Mapping[str, Any]],
        teacher_examples: Sequence[Mapping[str, Any]],
        student_batch: Mapping[str, torch.Tensor],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        s_len = student_batch["input_ids"].shape[1]
        actions = student_batch["word_actions"].numpy()
        clipped = [_clip_teacher_example(s, t, self.sep_id) for s, t in zip(student_examples, teacher_examples)]
        remapped = []
        n_units = 0
        s_units = torch.full((len(clipped), s_len), -1, dtype=torch.long)
        t_unit_lists = []
        for b, (s_ex, t_ex) in enumerate(zip(student_examples, clipped)):
            s_words = np.asarray(s_ex["word_ids"])[:s_len]
            s_spans = np.asarray(s_ex["char_spans"])[:s_len]
            # Teacher tokens renumbered to the student word they belong to (-1: none).
            t_words = assign_student_words(s_words, s_spans, t_ex["word_ids"], t_ex["char_spans"], actions[b])
            remapped.append({"input_ids": t_ex["input_ids"], "word_ids": t_words})
            # Units: the student words with tokens on both sides, numbered batch-wide.
            both = set(t_words[t_words >= 0].tolist()) & set(s_words[s_words >= 0].tolist())
            unit_of_sword = {sw: n_units + i for i, sw in enumerate(sorted(both))}
            n_units += len(both)
            s_units[b, : len(s_words)] = torch.as_tensor(
                [unit_of_sword.get(w, -1) for w in s_words.tolist()], dtype=torch.long
            )
            t_unit_lists.append([unit_of_sword.get(w, -1) for w in t_words.tolist()])
        t_batch = mlm.pad_examples(remapped, self.pad_id)
        t_input, t_labels = mlm.apply_word_actions(
            t_batch["input_ids"],
            t_batch["word_ids"],
            student_batch["word_actions"],
            self.mask_id,
            self.random_ids,
            generator,
        )
        t_len = t_input.shape[1]
        t_units = torch.full((len(clipped), t_len), -1, dtype=torch.long)
        for b, units in enumerate(t_unit_lists):
            t_units[b, : len(units)] = torch.as_tensor(units, dtype=torch.long)
        # One-to-one aligned masked sub-words: same example, same (unique) visible span.
        row_of = one_to_one_rows(
            [tuple(x) for x in (student_batch["labels"] != mlm.IGNORE_INDEX).nonzero().tolist()],
            [tuple(x) for x in (t_labels != mlm.IGNORE_INDEX).nonzero().tolist()],
            [np.asarray(ex["char_spans"])[:s_len] for ex in student_examples],
            [ex["char_spans"] for ex in clipped],
        )
        p = f"{self.name}."
        return {
            p + "input_ids": t_input,
            p + "attention_mask": t_batch["attention_mask"],
            p + "labels": t_labels,
            p + "row_of_student_row": torch.as_tensor(row_of, dtype=torch.long),
            p + "student_unit": s_units.reshape(-1),
            p + "teacher_unit": t_units.reshape(-1),
            p + "n_units": torch.tensor(n_units),
        }


class PairedLines:
    """Example ``i`` of the student's tokenized corpus together with the same line in other tokenizations."""

    def __init__(self, student: mlm.TokenizedLines, others: Mapping[str, mlm.TokenizedLines] | None = None):
        self.student = student
        self.others = dict(others or {})
        for name, other in self.others.items():
            if len(other) != len(student) or not np.array_equal(other.line_index, student.line_index):
                raise ValueError(
                    f"tokenization for teacher {name} does not line up with the student's (different corpus file?)"
                )

    def __len__(self) -> int:
        return len(self.student)

    @property
    def lengths(self) -> np.ndarray:
        return self.student.lengths

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = dict(self.student[i])
        ex["others"] = {name: other[i] for name, other in self.others.items()}
        return ex


class DistillCollator:
    """Whole-word masking in the student's tokenization (:class:`rokd.mlm.WholeWordMaskCollator`) plus a
    :class:`CrossTokenizerView` per other-tokenizer teacher. Its state is the masking generator's."""

    def __init__(self, student_collator: mlm.WholeWordMaskCollator, views: Sequence[CrossTokenizerView] = ()):
        self.student_collator = student_collator
        self.views = list(views)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.student_collator([{k: v for k, v in ex.items() if k != "others"} for ex in examples])
        for view in self.views:
            batch.update(
                view(examples, [ex["others"][view.name] for ex in examples], batch, self.student_collator.generator)
            )
        return batch

    @property
    def per_batch_seed(self) -> bool:
        return self.student_collator.per_batch_seed

    def reseed_for(self, batch_number: int) -> None:
        """Per-batch mode (see :class:`rokd.mlm.BatchStream`): the student's masks and the teachers' random tokens."""
        self.student_collator.reseed_for(batch_number)

    def state_dict(self) -> dict[str, Any]:
        return self.student_collator.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student_collator.load_state_dict(state)
