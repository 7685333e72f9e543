"""Teacher adaptors: each teacher is plugged into the distiller by a small function that turns a batch
into what the distiller needs (TextBrewer's idea, extended to teachers with another vocabulary).

An adaptor is called as ``adaptor(batch, temperature, reference)`` inside ``torch.inference_mode`` and
returns a :class:`TeacherTargets`:

- ``probs`` ``(n, V_student)``: the teacher's distribution at temperature T at the student's ``n``
  soft-target positions (the masked ones, or every non-pad token when the batch carries
  :data:`SOFT_POSITIONS`), on the student's vocabulary; ``covered`` ``(n,)``: where it has one (a
  cross-tokenizer teacher only at aligned *masked* positions);
- ``hidden`` ``(m, H_teacher)`` and ``student_unit`` ``(batch * L_student,)``: the teacher's final
  hidden states for ``m`` alignment units and, for each student position, the unit it pools into
  (-1: none) -- tokens for a same-tokenizer teacher, whole words for another tokenizer;
- ``stats``: numbers for the training log, per cross-tokenizer teacher: ``stat_aligned`` (share of the
  student's masked positions with a one-to-one teacher position), ``stat_coverage`` (of those, where
  some teacher mass maps: the teacher contributes there), ``stat_label_mapped`` (where the teacher's
  original token maps onto the student's: the vocabulary map's coverage of masked positions) and
  ``stat_mapped_mass`` (share of the teacher's probability that moves, at aligned positions);
- ``own_probs`` (cross-tokenizer adaptors built with ``keep_own_probs``): the teacher's distribution in
  its own vocabulary at all of its masked rows, for the strategies of :mod:`rokd.distill.strategies`.

Two adaptors exist, chosen once by comparing vocabularies (:func:`make_adaptor`), never by model class:
:func:`same_vocab_adaptor` and :func:`cross_tokenizer_adaptor` (mechanism: :mod:`rokd.distill.ensemble`).
A cross-tokenizer adaptor has ``needs_reference = True``: it receives the same-vocabulary teachers'
ensemble at the same positions to split a lowercase token's mass among its cased variants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rokd import mlm
from rokd.distill.ensemble import VocabularyMap

# Batch key (``(batch, L)`` bool) set by the distiller when soft targets are wanted at other positions
# than the masked ones (``distill.soft_targets: all``); absent: the masked positions.
SOFT_POSITIONS = "soft_positions"


def soft_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The student positions that get a soft target, ``(batch, L)`` bool."""
    found = batch.get(SOFT_POSITIONS)
    return found if found is not None else batch["labels"] != mlm.IGNORE_INDEX


@dataclass
class TeacherTargets:
    probs: torch.Tensor
    covered: torch.Tensor
    hidden: torch.Tensor
    student_unit: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    own_probs: torch.Tensor | None = None
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
    context: Any = None  # rokd.distill.strategies.CrossContext of a cross-tokenizer teacher (set by build_setup)

    def __call__(
        self, batch: dict[str, torch.Tensor], temperature: float, reference: torch.Tensor | None = None
    ) -> TeacherTargets:
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
    count = torch.zeros(n_units, dtype=flat.dtype, device=flat.device).index_add_(
        0, unit[keep], torch.ones_like(unit[keep], dtype=flat.dtype)
    )
    return out / count.clamp_min(1)[:, None]


def same_vocab_fn(
    model: nn.Module, batch: dict[str, torch.Tensor], temperature: float, reference=None
) -> TeacherTargets:
    """Teacher reads the student's own masked input: token-level targets at every soft-target position."""
    enc = mlm.encoder_hidden_states(model, batch["input_ids"], batch["attention_mask"], output_hidden_states=False)
    logits = mlm.mlm_head(model)(enc.last_hidden_state[soft_positions(batch)])
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


def make_cross_tokenizer_fn(
    name: str, vocab_map: VocabularyMap, keep_own_probs: bool = False
) -> Callable[..., TeacherTargets]:
    """Adaptor body for a teacher with its own tokenizer; batch keys from
    :class:`rokd.distill.batching.CrossTokenizerView`.

    ``keep_own_probs``: also return the teacher's distribution (temperature T, its own vocabulary) at
    every one of its masked rows (``TeacherTargets.own_probs``).
    """
    p = f"{name}."

    def fn(
        model: nn.Module, batch: dict[str, torch.Tensor], temperature: float, reference: torch.Tensor | None
    ) -> TeacherTargets:
        enc = mlm.encoder_hidden_states(
            model, batch[p + "input_ids"], batch[p + "attention_mask"], output_hidden_states=False
        )
        row_of = batch[p + "row_of_student_row"]
        aligned = row_of >= 0
        n_student = row_of.shape[0]
        device = row_of.device
        vm = vocab_map.to(device)
        # Soft targets at more positions than the masked ones: this teacher still has a prediction only at
        # the aligned masked positions; find where those rows sit among the soft-target rows.
        wider = batch.get(SOFT_POSITIONS)
        masked_rows = None
        if wider is not None:
            masked_rows = (batch["labels"] != mlm.IGNORE_INDEX)[wider].nonzero().squeeze(1)
            if reference is not None:
                reference = reference[masked_rows]
        # Logits only where a student masked row aligns (a subset of the teacher's masked positions).
        t_labels = batch[p + "labels"]
        t_hidden_masked = enc.last_hidden_state[t_labels != mlm.IGNORE_INDEX]
        rows = row_of[aligned]
        probs = torch.zeros(n_student, vm.student_size, device=device)
        covered = torch.zeros(n_student, dtype=torch.bool, device=device)
        label_mapped = torch.zeros(n_student, dtype=torch.bool, device=device)
        mass = torch.zeros((), device=device)
        own_probs = None
        if keep_own_probs:
            own_probs = torch.softmax(mlm.mlm_head(model)(t_hidden_masked).float() / temperature, dim=-1)
        if rows.numel():
            # The original tokens on both sides decide each position's form (word start or not).
            s_tokens = batch["labels"][batch["labels"] != mlm.IGNORE_INDEX][aligned]
            t_tokens = t_labels[t_labels != mlm.IGNORE_INDEX][rows]
            if own_probs is not None:
                t_probs = own_probs[rows]
            else:  # the default path: logits only where a student row aligns
                t_logits = mlm.mlm_head(model)(t_hidden_masked[rows])
                t_probs = torch.softmax(t_logits.float() / temperature, dim=-1)
            ref = reference[aligned] if reference is not None else None
            mapped, row_mass = vm.map_probs(t_probs, ref, forms=vm.row_forms(s_tokens, t_tokens))
            has_mass = row_mass > 0  # a position where nothing maps: the teacher abstains there
            probs[aligned] = mapped * has_mass[:, None]
            covered[aligned] = has_mass
            label_mapped[aligned] = vm.label_mapped(s_tokens, t_tokens)
            mass = row_mass.mean()
        n_units = int(batch[p + "n_units"])
        hidden = pool_units(enc.last_hidden_state, batch[p + "teacher_unit"], n_units)
        n_masked_teacher = (t_labels != mlm.IGNORE_INDEX).sum()
        zero = torch.zeros((), device=device)
        stats = {
            f"stat_coverage.{name}": covered.float().mean() if n_student else zero,  # of the masked positions
            f"stat_aligned.{name}": aligned.float().mean() if n_student else zero,
            f"stat_label_mapped.{name}": label_mapped.float().mean() if n_student else zero,
            f"stat_mapped_mass.{name}": mass,
            f"stat_teacher_masked_per_student_masked.{name}": n_masked_teacher.float() / max(n_student, 1),
        }
        if masked_rows is not None:
            n_soft = int(wider.sum())
            all_probs = torch.zeros(n_soft, vm.student_size, device=device)
            all_covered = torch.zeros(n_soft, dtype=torch.bool, device=device)
            all_probs[masked_rows] = probs
            all_covered[masked_rows] = covered
            probs, covered = all_probs, all_covered
        return TeacherTargets(
            probs=probs,
            covered=covered,
            hidden=hidden,
            student_unit=batch[p + "student_unit"],
            stats=stats,
            own_probs=own_probs,
        )

    return fn


def make_adaptor(
    name: str,
    model: nn.Module,
    teacher_tokenizer,
    student_tokenizer,
    weight: float = 1.0,
    student_vocab_size: int | None = None,
    keep_own_probs: bool = False,
) -> TeacherAdaptor:
    """The adaptor for ``model``: same-vocabulary when its tokenizer's vocabulary is the student's, else
    cross-tokenizer.

    ``student_vocab_size``: the student's output size (``config.vocab_size``), when larger than its tokenizer's.
    ``keep_own_probs``: see :func:`make_cross_tokenizer_fn` (ignored for a same-vocabulary teacher).
    """
    hidden = int(model.config.hidden_size)
    if teacher_tokenizer.get_vocab() == student_tokenizer.get_vocab():
        return TeacherAdaptor(name, model, weight, same_vocab_fn, needs_reference=False, hidden_size=hidden)
    vm = VocabularyMap.from_tokenizers(
        student_tokenizer, teacher_tokenizer, student_vocab_size, int(model.config.vocab_size)
    )
    return TeacherAdaptor(
        name,
        model,
        weight,
        make_cross_tokenizer_fn(name, vm, keep_own_probs),
        needs_reference=True,
        hidden_size=hidden,
        vocab_map=vm,
    )
