"""Multi-teacher soft targets, including teachers whose vocabulary differs from the student's.

**Same vocabulary**: the soft target is the weighted average of the teachers' *probabilities* (at
temperature T), uniform unless weights are given (:func:`ensemble_soft_targets`).

**Different vocabulary** (DistilMulti: the student uses the cased teacher's 50k vocabulary, the
uncased teacher has its own 38k one). The paper does not publish its mechanism; ours:

1. *Same words masked.* Masking happens in the student's tokenization, one whole word at a time. Both
   tokenizers split text into the same words (BERT pre-tokenizer: whitespace and punctuation), so the
   masked words are found in the other teacher's tokenization by their character span, and all of its
   sub-words of those words get its own ``[MASK]`` (:mod:`rokd.distill.batching`).
2. *Vocabulary map.* A masked student sub-word and a masked teacher sub-word *align* when they cover
   the same characters (a one-to-one position; e.g. both tokenizers keep ``casa`` whole, or both cut
   ``mașin|ile``). At aligned positions the teacher's distribution over its vocabulary is moved onto
   the student's with :class:`VocabularyMap`: each student token ``c`` takes the mass of the teacher
   token ``c`` (exact match) or else ``c.lower()`` (the uncased token it becomes). When several
   student tokens share one teacher token (``Casa``, ``casa``, ``CASA`` -> ``casa``) its mass is split in
   proportion to a *reference* distribution over the student vocabulary: the same-vocabulary teachers'
   prediction at that position (context decides between ``Casa`` and ``casa``), or uniformly when
   there is no such teacher. Teacher tokens without a student counterpart lose their mass; the mapped
   distribution is renormalised and the mapped share is reported.
3. *Fallback.* At masked positions that do not align, that teacher abstains; the ensemble weights are
   renormalised over the teachers that cover the position (:func:`ensemble_soft_targets` with
   ``covered``).
4. *Hidden states.* Cosine alignment uses word-level mean-pooled hidden states of words found in both
   tokenizations, through a learned linear projection when widths differ (:mod:`rokd.distill.adaptors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def ensemble_soft_targets(
    teacher_probs: Sequence[torch.Tensor],
    weights: Sequence[float] | None = None,
    covered: Sequence[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted average of teacher probability tensors ``(n, V)``, row by row.

    ``weights``: one non-negative number per teacher (default uniform); normalised to sum 1.
    ``covered``: per teacher a bool ``(n,)`` saying where it has a prediction (None = everywhere);
    at each row the weights are renormalised over the teachers that cover it.

    Returns ``(probs (n, V), any_covered (n,) bool)``; rows no teacher covers are all zero.
    """
    if not teacher_probs:
        raise ValueError("need at least one teacher")
    k = len(teacher_probs)
    shape = teacher_probs[0].shape
    for p in teacher_probs:
        if p.shape != shape:
            raise ValueError(f"teacher probability shapes differ: {[tuple(q.shape) for q in teacher_probs]}")
    w = torch.ones(k) if weights is None else torch.as_tensor(list(weights), dtype=torch.float32)
    if w.numel() != k:
        raise ValueError(f"{w.numel()} teacher weights for {k} teachers")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"teacher weights must be non-negative and not all zero, got {w.tolist()}")
    device = teacher_probs[0].device
    n = shape[0]
    cov = torch.stack(
        [torch.ones(n, dtype=torch.bool, device=device) if c is None else c.to(device).bool() for c in (covered or [None] * k)]
    )  # (k, n)
    if k == 1:  # one teacher: its own distribution where it covers a row (no weighted sum to build)
        p = teacher_probs[0].float()
        all_covered = bool(cov[0].all())
        return (p if all_covered else p * cov[0, :, None]), cov[0]
    row_w = w.to(device)[:, None] * cov.float()  # (k, n)
    total = row_w.sum(0)
    any_cov = total > 0
    row_w = row_w / total.clamp_min(1e-12)
    out = torch.zeros(shape, dtype=torch.float32, device=device)
    for i, p in enumerate(teacher_probs):
        out.addcmul_(row_w[i][:, None], p.float())
    return out, any_cov


class VocabularyMap:
    """Maps distributions over a teacher's vocabulary onto the student's (see module doc, step 2).

    ``target[c]`` is the teacher id whose mass student token ``c`` receives, or -1.
    """

    def __init__(
        self,
        student_vocab: Mapping[str, int],
        teacher_vocab: Mapping[str, int],
        student_size: int | None = None,
        teacher_size: int | None = None,
    ):
        # Sizes default to the vocabularies'; pass the models' (config.vocab_size) when their output
        # layers are padded beyond the tokenizer (extra rows never receive mass).
        vs = max(student_size or 0, max(student_vocab.values()) + 1)
        self.student_size = vs
        self.teacher_size = max(teacher_size or 0, max(teacher_vocab.values()) + 1)
        target = torch.full((vs,), -1, dtype=torch.long)
        for token, sid in student_vocab.items():
            tid = teacher_vocab.get(token)
            if tid is None:
                tid = teacher_vocab.get(token.lower())
            if tid is not None:
                target[sid] = tid
        self.target = target
        has = target >= 0
        self.mapped_columns = has.nonzero().squeeze(1)  # student ids that receive mass
        # Teacher tokens that at least one student token maps to: the mass that can move.
        self.teacher_mapped = torch.zeros(self.teacher_size, dtype=torch.bool)
        self.teacher_mapped[target[has]] = True
        # How many student tokens share each teacher token (for the uniform split).
        self.fan_out = torch.zeros(self.teacher_size).index_add_(0, target[has], torch.ones(int(has.sum())))

    @classmethod
    def from_tokenizers(cls, student_tokenizer, teacher_tokenizer, student_size: int | None = None, teacher_size: int | None = None) -> "VocabularyMap":
        return cls(student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab(), student_size, teacher_size)

    def stats(self) -> dict[str, float]:
        """Share of the student vocabulary reached and of the teacher vocabulary that moves."""
        return {
            "student_tokens_mapped": float((self.target >= 0).float().mean()),
            "teacher_tokens_mapped": float(self.teacher_mapped.float().mean()),
        }

    def to(self, device) -> "VocabularyMap":
        self.target = self.target.to(device)
        self.mapped_columns = self.mapped_columns.to(device)
        self.teacher_mapped = self.teacher_mapped.to(device)
        self.fan_out = self.fan_out.to(device)
        return self

    def map_probs(self, teacher_probs: torch.Tensor, reference: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(n, V_teacher)`` probabilities -> ``(n, V_student)`` probabilities and the mapped mass ``(n,)``.

        A teacher token's mass is split among the student tokens that map to it in proportion to
        ``reference`` ``(n, V_student)`` (uniformly when None, or where the reference gives them no mass).
        The result is renormalised to sum to 1 on rows with any mapped mass.
        """
        if teacher_probs.shape[-1] != self.teacher_size:
            raise ValueError(f"teacher probabilities have {teacher_probs.shape[-1]} columns, the map expects {self.teacher_size}")
        p = teacher_probs.float()
        n = p.shape[0]
        cols, tcols = self.mapped_columns, self.target[self.mapped_columns]  # student ids that map, their teacher ids
        # Per teacher token, the factor each of its student tokens multiplies its own share by: p / (the
        # reference mass of the group) -- or p / fan-out where the group has no reference mass (uniform split).
        if reference is None:
            mapped_cols = (p / self.fan_out.clamp_min(1)).index_select(1, tcols)
        else:
            ref = reference.float().index_select(1, cols)  # (n, mapped student tokens)
            denom = torch.zeros(n, self.teacher_size, device=p.device).index_add_(1, tcols, ref)
            has_ref = denom > 0
            factor = torch.where(has_ref, p / denom.clamp_min(1e-30), p / self.fan_out.clamp_min(1))
            mapped_cols = factor.index_select(1, tcols).mul_(torch.where(has_ref.index_select(1, tcols), ref, 1.0))
        mapped = torch.zeros(n, self.student_size, device=p.device).index_copy_(1, cols, mapped_cols)
        mass = p @ self.teacher_mapped.float()
        mapped.div_(mapped.sum(-1, keepdim=True).clamp_min(1e-30))
        return mapped, mass
