"""Distillation batches: the student's masked batch plus, for every teacher with another tokenizer, the
same text in that tokenizer with the same words masked and the alignments the ensemble needs.

Both tokenizations come from :func:`rokd.mlm.tokenize_lines` on the same corpus file, so example ``i``
is the same sentence in both. Words are matched by their character span (BERT tokenizers split text
into the same words; matching by span also survives different truncation). The student's per-word
masking decisions (``word_actions``: mask / random / keep) are applied to the matched words of the
other tokenization with :func:`rokd.mlm.apply_word_actions`, so the teacher sees the same corruption
in its own vocabulary.

Keys added to the batch for a cross-tokenizer teacher ``name`` (prefix ``f"{name}."``):

- ``input_ids``, ``attention_mask``, ``labels``: the teacher's masked input (labels != -100 at the
  sub-words of the masked words);
- ``row_of_student_row`` ``(n_student_masked,)``: for each student masked row (row-major order of
  ``labels != -100``), the teacher masked row covering exactly the same characters, or -1;
- ``student_unit`` ``(batch * L_student,)`` / ``teacher_unit`` ``(batch * L_teacher,)``: index of the
  word (among words found in both tokenizations, batch-wide) each position belongs to, or -1; ``n_units``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rokd import mlm


def _word_spans(word_ids: np.ndarray, char_spans: np.ndarray) -> dict[int, tuple[int, int]]:
    spans: dict[int, tuple[int, int]] = {}
    for w, (a, b) in zip(word_ids.tolist(), char_spans.tolist()):
        if w < 0:
            continue
        if w in spans:
            s = spans[w]
            spans[w] = (min(s[0], a), max(s[1], b))
        else:
            spans[w] = (a, b)
    return spans


def _clip_teacher_example(student_ex: Mapping[str, Any], teacher_ex: Mapping[str, Any], sep_id: int) -> dict[str, np.ndarray]:
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
            raise ValueError(f"teacher {name}: its tokenizer needs [MASK], [PAD] and [SEP] tokens")
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
        clipped = [_clip_teacher_example(s, t, self.sep_id) for s, t in zip(student_examples, teacher_examples)]
        # Teacher word ids renumbered to the student's word of the same span (-1: no such word).
        remapped = []
        n_units = 0
        s_units = torch.full((len(clipped), s_len), -1, dtype=torch.long)
        t_unit_lists = []
        for b, (s_ex, t_ex) in enumerate(zip(student_examples, clipped)):
            s_words = np.asarray(s_ex["word_ids"])[:s_len]
            s_spans = _word_spans(s_words, np.asarray(s_ex["char_spans"])[:s_len])
            t_spans = _word_spans(t_ex["word_ids"], t_ex["char_spans"])
            span_to_sword = {span: w for w, span in s_spans.items()}
            t_to_s = {tw: span_to_sword.get(span, -1) for tw, span in t_spans.items()}
            t_words = np.asarray([t_to_s.get(w, -1) if w >= 0 else -1 for w in t_ex["word_ids"].tolist()], dtype=np.int64)
            remapped.append({"input_ids": t_ex["input_ids"], "word_ids": t_words})
            # Units: the student words present in both tokenizations, numbered batch-wide.
            unit_of_sword = {}
            for sw in sorted(set(t_words[t_words >= 0].tolist())):
                unit_of_sword[sw] = n_units
                n_units += 1
            s_units[b, : len(s_words)] = torch.as_tensor([unit_of_sword.get(w, -1) for w in s_words.tolist()], dtype=torch.long)
            t_unit_lists.append([unit_of_sword.get(w, -1) for w in t_words.tolist()])
        t_batch = mlm.pad_examples(remapped, self.pad_id)
        t_input, t_labels = mlm.apply_word_actions(
            t_batch["input_ids"], t_batch["word_ids"], student_batch["word_actions"], self.mask_id, self.random_ids, generator
        )
        t_len = t_input.shape[1]
        t_units = torch.full((len(clipped), t_len), -1, dtype=torch.long)
        for b, units in enumerate(t_unit_lists):
            t_units[b, : len(units)] = torch.as_tensor(units, dtype=torch.long)
        # One-to-one aligned masked sub-words: same example, same character span.
        t_rows: dict[tuple[int, int, int], int] = {}
        t_mask = (t_labels != mlm.IGNORE_INDEX).nonzero().tolist()
        for j, (b, pos) in enumerate(t_mask):
            a, e = clipped[b]["char_spans"][pos].tolist()
            t_rows[(b, a, e)] = j
        s_mask = (student_batch["labels"] != mlm.IGNORE_INDEX).nonzero().tolist()
        row_of = [t_rows.get((b, *np.asarray(student_examples[b]["char_spans"])[pos].tolist()), -1) for b, pos in s_mask]
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
                raise ValueError(f"tokenization for teacher {name} does not line up with the student's (different corpus file?)")

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
            batch.update(view(examples, [ex["others"][view.name] for ex in examples], batch, self.student_collator.generator))
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
