"""Teacher adaptors: each teacher is plugged into the distiller by a small function that turns a batch
into what the distiller needs (TextBrewer's idea, extended to teachers with another vocabulary).

An adaptor is called as ``adaptor(batch, temperature, reference)`` inside ``torch.inference_mode`` and
returns a :class:`TeacherTargets`:

- ``probs`` ``(n, V_student)``: the teacher's distribution at temperature T at the student's ``n``
  masked positions, on the student's vocabulary; ``covered`` ``(n,)``: where it has one;
- ``hidden`` ``(m, H_teacher)`` and ``student_unit`` ``(batch * L_student,)``: the teacher's final
  hidden states for ``m`` alignment units and, for each student position, the unit it pools into
  (-1: none) -- tokens for a same-tokenizer teacher, whole words for another tokenizer;
- ``stats``: numbers for the training log (coverage, mapped probability mass).

Two adaptors exist, chosen once by comparing vocabularies (:func:`make_adaptor`), never by model class:
:func:`same_vocab_adaptor` and :func:`cross_tokenizer_adaptor` (mechanism: :mod:`rokd.distill.ensemble`).
A cross-tokenizer adaptor has ``needs_reference = True``: it receives the same-vocabulary teachers'
ensemble at the same positions to split a lowercase token's mass among its cased variants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from rokd import mlm
from rokd.distill.ensemble import VocabularyMap


@dataclass
class TeacherTargets:
    probs: torch.Tensor
    covered: torch.Tensor
    hidden: torch.Tensor
    student_unit: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    units_are_tokens: bool = False  # every non-pad student position is its own unit, in order (pooling = selecting)


@dataclass
class TeacherAdaptor:
    """A frozen teacher plus the function that adapts its outputs; ``weight`` is its ensemble weight."""

    name: str
    model: nn.Module
    weight: float
    fn: Callable[..., TeacherTargets]
    needs_reference: bool = False
    hidden_size: int = 0
    vocab_map: VocabularyMap | None = None

    def __call__(self, batch: dict[str, torch.Tensor], temperature: float, reference: torch.Tensor | None = None) -> TeacherTargets:
        return self.fn(self.model, batch, temperature, reference)


def token_units(attention_mask: torch.Tensor) -> torch.Tensor:
    """Unit index of every position when each non-pad token is its own unit (-1 on padding)."""
    flat = attention_mask.reshape(-1).bool()
    return torch.where(flat, flat.long().cumsum(0) - 1, torch.full_like(flat, -1, dtype=torch.long))


def pool_units(hidden: torch.Tensor, unit: torch.Tensor, n_units: int, units_are_tokens: bool = False) -> torch.Tensor:
    """Mean of the rows of ``hidden`` ``(batch, L, H)`` over each unit (``unit``: ``(batch*L,)``, -1 ignored).

    ``units_are_tokens``: each unit is one position, numbered in order (:func:`token_units`); the mean of
    one row is the row, so the rows are selected instead (the same values, without the scatter).
    """
    flat = hidden.reshape(-1, hidden.shape[-1])
    if units_are_tokens:
        return flat[unit >= 0]
    keep = unit >= 0
    out = torch.zeros(n_units, flat.shape[-1], dtype=flat.dtype, device=flat.device)
    out.index_add_(0, unit[keep], flat[keep])
    count = torch.zeros(n_units, dtype=flat.dtype, device=flat.device).index_add_(0, unit[keep], torch.ones_like(unit[keep], dtype=flat.dtype))
    return out / count.clamp_min(1)[:, None]


def same_vocab_fn(model: nn.Module, batch: dict[str, torch.Tensor], temperature: float, reference=None) -> TeacherTargets:
    """Teacher reads the student's own masked input: token-level targets at every position."""
    enc = mlm.encoder_hidden_states(model, batch["input_ids"], batch["attention_mask"], output_hidden_states=False)
    logits, _ = mlm.masked_positions_logits(enc.last_hidden_state, batch["labels"], mlm.mlm_head(model))
    probs = torch.softmax(logits.float().div_(temperature), dim=-1)  # in place: inference tensors, used once
    mask = batch["attention_mask"].reshape(-1).bool()
    hidden = enc.last_hidden_state.reshape(-1, enc.last_hidden_state.shape[-1])[mask]
    n = probs.shape[0]
    return TeacherTargets(
        probs=probs,
        covered=torch.ones(n, dtype=torch.bool, device=probs.device),
        hidden=hidden,
        student_unit=token_units(batch["attention_mask"]),
        units_are_tokens=True,
    )


def make_cross_tokenizer_fn(name: str, vocab_map: VocabularyMap) -> Callable[..., TeacherTargets]:
    """Adaptor body for a teacher with its own tokenizer; batch keys from :class:`rokd.distill.batching.CrossTokenizerView`."""
    p = f"{name}."

    def fn(model: nn.Module, batch: dict[str, torch.Tensor], temperature: float, reference: torch.Tensor | None) -> TeacherTargets:
        enc = mlm.encoder_hidden_states(model, batch[p + "input_ids"], batch[p + "attention_mask"], output_hidden_states=False)
        row_of = batch[p + "row_of_student_row"]
        covered = row_of >= 0
        n_student = row_of.shape[0]
        vm = vocab_map.to(row_of.device)
        # Logits only where a student masked row aligns (a subset of the teacher's masked positions).
        t_labels = batch[p + "labels"]
        t_hidden_masked = enc.last_hidden_state[t_labels != mlm.IGNORE_INDEX]
        rows = row_of[covered]
        mass = torch.zeros((), device=row_of.device)
        if rows.numel() < n_student:
            probs = torch.zeros(n_student, vm.student_size, device=row_of.device)
        if rows.numel():
            t_logits = mlm.mlm_head(model)(t_hidden_masked[rows])
            t_probs = torch.softmax(t_logits.float().div_(temperature), dim=-1)
            ref = reference[covered] if reference is not None else None
            mapped, row_mass = vm.map_probs(t_probs, ref)
            if rows.numel() == n_student:  # every masked row aligns: no scatter into zeros
                probs = mapped
            else:
                probs[covered] = mapped
            mass = row_mass.mean()
        n_units = int(batch[p + "n_units"])
        hidden = pool_units(enc.last_hidden_state, batch[p + "teacher_unit"], n_units)
        n_masked_teacher = (t_labels != mlm.IGNORE_INDEX).sum()
        return TeacherTargets(
            probs=probs,
            covered=covered,
            hidden=hidden,
            student_unit=batch[p + "student_unit"],
            stats={
                f"stat_coverage.{name}": covered.float().mean() if n_student else torch.zeros((), device=row_of.device),
                f"stat_mapped_mass.{name}": mass,
                f"stat_teacher_masked_per_student_masked.{name}": n_masked_teacher.float() / max(n_student, 1),
            },
        )

    return fn


def make_adaptor(
    name: str, model: nn.Module, teacher_tokenizer, student_tokenizer, weight: float = 1.0, student_vocab_size: int | None = None
) -> TeacherAdaptor:
    """The adaptor for ``model``: same-vocabulary when its tokenizer's vocabulary is the student's, else cross-tokenizer.

    ``student_vocab_size``: the student's output size (``config.vocab_size``), when larger than its tokenizer's.
    """
    hidden = int(model.config.hidden_size)
    if teacher_tokenizer.get_vocab() == student_tokenizer.get_vocab():
        return TeacherAdaptor(name, model, weight, same_vocab_fn, needs_reference=False, hidden_size=hidden)
    vm = VocabularyMap.from_tokenizers(student_tokenizer, teacher_tokenizer, student_vocab_size, int(model.config.vocab_size))
    return TeacherAdaptor(name, model, weight, make_cross_tokenizer_fn(name, vm), needs_reference=True, hidden_size=hidden, vocab_map=vm)
