"""Multi-teacher soft targets, including teachers whose vocabulary differs from the student's.

**Same vocabulary**: the soft target is the weighted average of the teachers' *probabilities* (at
temperature T), uniform unless weights are given (:func:`ensemble_soft_targets`).

**Different vocabulary** (DistilMulti: the student uses the cased teacher's 50k vocabulary, the
uncased teacher has its own 38k one; or any two tokenizer families: WordPiece, SentencePiece, byte-level
BPE). The paper does not publish its mechanism; ours:

1. *Same characters masked.* Masking happens in the student's tokenization, one whole word at a time.
   Each token of the other tokenization takes the decision of the student word its characters fall in
   (the most-masked one if it straddles two), so that teacher sees the same corruption in its own
   vocabulary whatever its pre-tokenizer calls a word (:mod:`rokd.distill.batching`).
2. *Vocabulary map.* A masked student sub-word and a masked teacher sub-word *align* when they cover
   the same visible characters (markers and spaces excluded) and no other sub-word of either side does
   (e.g. both keep ``casa`` whole, or both cut ``mașin|ile``). At aligned positions the teacher's
   distribution over its vocabulary is moved onto the student's with :class:`VocabularyMap`: tokens
   correspond when their normalised surface forms agree (:mod:`rokd.distill.vocab`: ``▁casa`` / ``Ġcasa``
   / ``casa`` and ``sa`` / ``##sa``, byte alphabet decoded, NFC, ş -> ș; case folded only when one side
   is uncased, so ``Casa`` takes the mass of an uncased ``casa``). When several student tokens share one
   teacher token (``Casa``, ``casa``, ``CASA`` -> ``casa``) its mass is split in proportion to a
   *reference* distribution over the student vocabulary: the same-vocabulary teachers' prediction at
   that position (context decides between ``Casa`` and ``casa``), or uniformly when there is no such
   teacher. Teacher tokens without a student counterpart lose their mass; the mapped distribution is
   renormalised and the mapped share is reported.
3. *Fallback.* At masked positions that do not align (or where no mass maps), that teacher abstains;
   the ensemble weights are renormalised over the teachers that cover the position
   (:func:`ensemble_soft_targets` with ``covered``).
4. *Hidden states.* Cosine alignment uses word-level mean-pooled hidden states of the student's words
   found in both tokenizations, through a learned linear projection when widths differ
   (:mod:`rokd.distill.adaptors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rokd.distill.vocab import WORDPIECE, TokenizerFamily, looks_uncased, special_roles, surface_table, tokenizer_family


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
        [
            torch.ones(n, dtype=torch.bool, device=device) if c is None else c.to(device).bool()
            for c in (covered or [None] * k)
        ]
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

    An *edge* ``(s, t)`` joins student token ``s`` and teacher token ``t`` whose surface forms
    (:func:`rokd.distill.vocab.surface_form`) have the same text, or special tokens of the same role.
    Case is folded (and accents stripped) on both sides only when one tokenizer is uncased (strips
    accents). Each edge joins a word-start or word-internal teacher token to a word-start or
    word-internal student token: its *form* is ``2 * teacher_starts + student_starts``. At a masked
    position the map uses only the edges of that position's form (the forms of the original tokens
    there, see :meth:`row_forms`), so ``▁casa`` feeds ``casa`` at a word start and ``sa`` feeds
    ``##sa`` inside a word, whatever the families' conventions for punctuation or a line's first word.

    ``target[c]``: the teacher id whose mass student token ``c`` receives among same-form edges (the
    smallest if several), or -1 (kept for callers that want one counterpart per token).
    """

    def __init__(
        self,
        student_vocab: Mapping[str, int],
        teacher_vocab: Mapping[str, int],
        student_size: int | None = None,
        teacher_size: int | None = None,
        *,
        student_family: TokenizerFamily | None = None,
        teacher_family: TokenizerFamily | None = None,
        student_special: Mapping[int, str] | None = None,
        teacher_special: Mapping[int, str] | None = None,
    ):
        # Sizes default to the vocabularies'; pass the models' (config.vocab_size) when their output
        # layers are padded beyond the tokenizer (extra rows never receive mass).
        vs = max(student_size or 0, max(student_vocab.values()) + 1)
        self.student_size = vs
        self.teacher_size = vt = max(teacher_size or 0, max(teacher_vocab.values()) + 1)
        bare = student_family is None and teacher_family is None
        s_fam, t_fam = student_family or WORDPIECE, teacher_family or WORDPIECE
        if bare:  # bare vocabularies: a side without upper-case letters is taken as uncased
            self.fold_case = looks_uncased(dict(student_vocab)) or looks_uncased(dict(teacher_vocab))
        else:
            self.fold_case = s_fam.uncased or t_fam.uncased
        self.strip_accents = s_fam.strips_accents or t_fam.strips_accents
        self.student_family, self.teacher_family = s_fam, t_fam
        norm = dict(fold_case=self.fold_case, strip_accents=self.strip_accents)
        s_tab = surface_table(dict(student_vocab), s_fam, vs, special=student_special, **norm)
        t_tab = surface_table(dict(teacher_vocab), t_fam, vt, special=teacher_special, **norm)
        by_text: dict[str, list[int]] = {}
        for tid, text in enumerate(t_tab.texts):
            if text is not None:
                by_text.setdefault(text, []).append(tid)
        t_by_role = {role: tid for tid, role in t_tab.special.items()}
        edges: list[tuple[int, int]] = []
        for sid, text in enumerate(s_tab.texts):
            if sid in s_tab.special:
                if s_tab.special[sid] in t_by_role:
                    edges.append((sid, t_by_role[s_tab.special[sid]]))
            elif text is not None:
                edges.extend((sid, tid) for tid in by_text.get(text, ()))
        e = torch.tensor(edges, dtype=torch.long).reshape(-1, 2)
        self.edge_student, self.edge_teacher = e[:, 0].contiguous(), e[:, 1].contiguous()
        self.student_starts = torch.tensor(s_tab.starts, dtype=torch.bool)
        self.teacher_starts = torch.tensor(t_tab.starts, dtype=torch.bool)
        self.edge_form = self.row_forms(self.edge_student, self.edge_teacher)
        self._edge_keys = torch.sort(self.edge_student * vt + self.edge_teacher).values
        same = (self.edge_form == 0) | (self.edge_form == 3)
        target = torch.full((vs,), vt, dtype=torch.long)
        target.scatter_reduce_(0, self.edge_student[same], self.edge_teacher[same], reduce="amin")
        self.target = torch.where(target == vt, torch.full_like(target, -1), target)
        self._groups: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_tokenizers(
        cls, student_tokenizer, teacher_tokenizer, student_size: int | None = None, teacher_size: int | None = None
    ) -> "VocabularyMap":
        """The map between two fast tokenizers of any family (families and casing read from the tokenizers)."""
        return cls(
            student_tokenizer.get_vocab(),
            teacher_tokenizer.get_vocab(),
            student_size,
            teacher_size,
            student_family=tokenizer_family(student_tokenizer),
            teacher_family=tokenizer_family(teacher_tokenizer),
            student_special=special_roles(student_tokenizer),
            teacher_special=special_roles(teacher_tokenizer),
        )

    def stats(self) -> dict[str, float]:
        """Share of the student vocabulary reached and of the teacher vocabulary that moves (any form)."""
        s = torch.zeros(self.student_size, dtype=torch.bool)
        s[self.edge_student] = True
        t = torch.zeros(self.teacher_size, dtype=torch.bool)
        t[self.edge_teacher] = True
        return {"student_tokens_mapped": float(s.float().mean()), "teacher_tokens_mapped": float(t.float().mean())}

    def describe(self) -> dict[str, Any]:
        """The map's settings and reach, for logs and summaries."""
        return {
            "student_family": self.student_family.kind,
            "teacher_family": self.teacher_family.kind,
            "case_folded": self.fold_case,
            "accents_stripped": self.strip_accents,
            **self.stats(),
        }

    def to(self, device) -> "VocabularyMap":
        names = (
            "target",
            "edge_student",
            "edge_teacher",
            "edge_form",
            "student_starts",
            "teacher_starts",
            "_edge_keys",
        )
        for name in names:
            setattr(self, name, getattr(self, name).to(device))
        self._groups = {k: tuple(x.to(device) for x in v) for k, v in self._groups.items()}
        return self

    def row_forms(self, student_ids: torch.Tensor, teacher_ids: torch.Tensor) -> torch.Tensor:
        """Form of each position from its original student and teacher tokens: ``2 * t_starts + s_starts``."""
        return 2 * self.teacher_starts[teacher_ids].long() + self.student_starts[student_ids].long()

    def label_mapped(self, student_ids: torch.Tensor, teacher_ids: torch.Tensor) -> torch.Tensor:
        """Whether each teacher token maps onto the student token beside it (an edge joins them)."""
        keys = student_ids.long() * self.teacher_size + teacher_ids.long()
        return torch.isin(keys, self._edge_keys)

    def _group(self, form: int):
        """Edges of one form (``-1``: the two same-form groups), with each teacher token's fan-out."""
        if form not in self._groups:
            keep = ((self.edge_form == 0) | (self.edge_form == 3)) if form < 0 else self.edge_form == form
            es, et = self.edge_student[keep], self.edge_teacher[keep]
            fan = torch.zeros(self.teacher_size, device=es.device)
            fan.index_add_(0, et, torch.ones(et.shape[0], device=es.device))
            self._groups[form] = (es, et, fan, fan > 0)
        return self._groups[form]

    def map_probs(
        self, teacher_probs: torch.Tensor, reference: torch.Tensor | None = None, forms: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(n, V_teacher)`` probabilities -> ``(n, V_student)`` probabilities and the mapped mass ``(n,)``.

        ``forms`` ``(n,)``: each row's form (:meth:`row_forms`); None uses the same-form edges everywhere.
        A teacher token's mass is split among the student tokens it joins in proportion to ``reference``
        ``(n, V_student)`` (uniformly when None, or where the reference gives them no mass); a student
        token joined to several teacher tokens sums their shares. Rows with any mapped mass are
        renormalised to sum to 1.
        """
        if teacher_probs.shape[-1] != self.teacher_size:
            raise ValueError(
                f"teacher probabilities have {teacher_probs.shape[-1]} columns, the map expects {self.teacher_size}"
            )
        p = teacher_probs.float()
        n = p.shape[0]
        out = torch.zeros(n, self.student_size, device=p.device)
        mass = torch.zeros(n, device=p.device)
        if forms is None:
            row_sets = [(-1, None)]
        else:
            row_sets = [(int(f), (forms == f).nonzero().flatten()) for f in torch.unique(forms).tolist()]
        for form, rows in row_sets:
            es, et, fan, has = self._group(form)
            pr = p if rows is None else p[rows]
            ref = None if reference is None else (reference if rows is None else reference[rows]).float()
            if ref is None:
                share = (1.0 / fan[et].clamp_min(1))[None, :].expand(pr.shape[0], -1)
            else:
                r = ref[:, es]
                denom = torch.zeros(pr.shape[0], self.teacher_size, device=p.device).index_add_(1, et, r)[:, et]
                # Where the reference gives a whole group no mass, split that group uniformly.
                share = torch.where(denom > 0, r / denom.clamp_min(1e-30), 1.0 / fan[et].clamp_min(1)[None, :])
            mapped = torch.zeros(pr.shape[0], self.student_size, device=p.device).index_add_(1, es, pr[:, et] * share)
            row_mass = (pr * has.float()[None, :]).sum(-1)
            if rows is None:
                out, mass = mapped, row_mass
            else:
                out[rows], mass[rows] = mapped, row_mass
        out = out / out.sum(-1, keepdim=True).clamp_min(1e-30)
        return out, mass
