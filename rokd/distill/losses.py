"""The DistilBERT objective as pure functions of tensors.

``loss = alpha_ce * soft_target_kl + alpha_mlm * mlm_cross_entropy + alpha_cos * cosine_alignment``
(defaults 5 / 2 / 1, temperature T = 2; Sanh et al. 2019). Every function takes already-selected rows
(the distiller computes logits only where they are needed: the masked positions, or for the soft
targets every non-pad token when ``distill.soft_targets: all``, see :func:`soft_target_positions`),
softmaxes over the LAST dimension (the vocabulary), and averages over rows ("batchmean"), so the value
does not depend on batch shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SOFT_TARGETS = ("masked", "all")


def soft_target_positions(labels: torch.Tensor, attention_mask: torch.Tensor, mode: str = "masked") -> torch.Tensor:
    """Where the soft-target KL is computed: ``(batch, L)`` bool.

    ``masked``: the masked positions only (``labels != -100``; this project's default). ``all``: every
    non-pad token, special tokens included, as in the Hugging Face DistilBERT recipe (its ``mask`` is
    ``attention_mask`` expanded over the vocabulary). Rows are taken in row-major order of the result.
    """
    if mode == "masked":
        return labels != -100
    if mode == "all":
        return attention_mask.bool()
    raise ValueError(f"soft_targets must be one of {list(SOFT_TARGETS)}, got {mode!r}")


@dataclass
class LossWeights:
    """The weights of the paper's three terms (the distiller passes its run, whose objective has them too)."""

    alpha_ce: float = 5.0
    alpha_mlm: float = 2.0
    alpha_cos: float = 1.0


def soft_target_kl(
    student_logits: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float = 2.0,
    teacher_is_probs: bool = False,
) -> torch.Tensor:
    """``KL(p_teacher,T || p_student,T) * T^2`` averaged over rows.

    ``student_logits``: ``(n, V)`` logits at the masked positions. ``teacher``: ``(n, V)`` logits, or
    probabilities already at temperature T (``teacher_is_probs=True``, e.g. an ensemble's average).
    The ``T^2`` keeps gradient magnitudes comparable across temperatures (Hinton et al. 2015).
    Rows where the teacher puts zero mass on a token contribute ``0 * log 0 = 0`` for it.
    """
    if student_logits.shape != teacher.shape:
        raise ValueError(f"student {tuple(student_logits.shape)} and teacher {tuple(teacher.shape)} shapes differ")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = student_logits.shape[0]
    if n == 0:
        return student_logits.sum() * 0.0
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    if teacher_is_probs:
        p_teacher = teacher.float()
        # xlogy: 0 * log 0 = 0 where an (e.g. vocabulary-mapped) teacher has no mass.
        kl = torch.special.xlogy(p_teacher, p_teacher) - p_teacher * log_p_student
    else:
        log_p_teacher = F.log_softmax(teacher.float() / temperature, dim=-1)
        kl = log_p_teacher.exp() * (log_p_teacher - log_p_student)
    return kl.sum() / n * temperature**2


def mlm_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` ``(..., V)`` against ``labels`` ``(...)``; ``ignore_index`` rows skipped."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    labels = labels.reshape(-1)
    if (labels != ignore_index).sum() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=ignore_index)


class _SoftTargetKLAndMLM(torch.autograd.Function):
    """Both vocabulary terms from one pass over the ``(n, V)`` logits (see :func:`soft_target_kl_and_mlm`).

    Autograd of the two separate functions keeps ~15 temporaries of the logits' size alive and walks
    them again backwards; here the forward keeps two log-softmaxes and the backward writes the gradient
    in place: ``dKL/dz = T/m * (softmax(z/T) * sum(p) - p)`` and ``dCE/dz = (softmax(z) - onehot) / n``.
    """

    @staticmethod
    def forward(ctx, logits, soft, soft_rows, targets, temperature):
        z = logits.float()
        zs = z if soft_rows is None else z.index_select(0, soft_rows)
        m, n = soft.shape[0], z.shape[0]
        p = soft.float()
        lq_t = torch.log_softmax(zs / temperature, dim=-1)
        if m:
            # KL = sum p (log p - log q), element by element (summing the two sides apart loses float32 digits);
            # xlogy: 0 log 0 = 0 where a mapped teacher has no mass
            kl = torch.special.xlogy(p, p).sub_(p * lq_t).sum() / m * temperature**2  # soft_target_kl's operations
        else:
            kl = z.new_zeros(())
        lq_1 = torch.log_softmax(z, dim=-1)
        ce = -lq_1.gather(1, targets[:, None]).mean() if n else z.new_zeros(())
        ctx.soft = p  # not saved with save_for_backward: it may be an inference tensor, and needs no gradient
        ctx.save_for_backward(lq_t, lq_1, targets, soft_rows if soft_rows is not None else targets.new_empty(0))
        ctx.temperature, ctx.has_rows, ctx.dtype = temperature, soft_rows is not None, logits.dtype
        return kl, ce

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kl, grad_ce):
        lq_t, lq_1, targets, soft_rows = ctx.saved_tensors
        p, t = ctx.soft, ctx.temperature
        n, m = lq_1.shape[0], lq_t.shape[0]
        grad = lq_1.exp_()  # softmax(z), in place: the saved tensor is not needed again
        if n:
            grad[torch.arange(n, device=grad.device), targets] -= 1.0
            grad.mul_(grad_ce / n)
        else:
            grad.zero_()
        if m:
            q = lq_t.exp_()
            q.mul_(p.sum(-1, keepdim=True)).sub_(p).mul_(grad_kl * t / m)
            if ctx.has_rows:
                grad.index_add_(0, soft_rows, q)
            else:
                grad.add_(q)
        return grad.to(ctx.dtype), None, None, None, None


def soft_target_kl_and_mlm(
    student_logits: torch.Tensor,
    soft: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 2.0,
    soft_rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``soft_target_kl(student_logits[soft_rows], soft, T, teacher_is_probs=True)`` and
    ``mlm_cross_entropy(student_logits, targets)`` computed together, with the same values and gradients, in a
    fraction of the memory traffic.

    ``soft`` ``(m, V)``: teacher probabilities at temperature T for the rows ``soft_rows`` (a LongTensor of
    row indices; None = every row). ``targets`` ``(n,)``: the token ids at the masked positions (no ignored rows).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    rows = student_logits.shape[0] if soft_rows is None else soft_rows.shape[0]
    if soft.shape != (rows, student_logits.shape[-1]):
        raise ValueError(
            f"soft targets {tuple(soft.shape)} do not match {rows} rows of {student_logits.shape[-1]} logits"
        )
    if targets.shape != student_logits.shape[:1]:
        raise ValueError(f"targets {tuple(targets.shape)} do not match logits {tuple(student_logits.shape)}")
    return _SoftTargetKLAndMLM.apply(student_logits, soft, soft_rows, targets, temperature)


def cosine_alignment(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of ``1 - cos(student, teacher)`` over the rows selected by ``mask``.

    ``student_hidden`` / ``teacher_hidden``: ``(..., H)``; ``mask``: ``(...)`` bool/0-1 (non-pad
    positions, or valid words); None = all rows. Same value as ``torch.nn.CosineEmbeddingLoss`` with
    target 1 on the selected rows.
    """
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(
            f"student {tuple(student_hidden.shape)} and teacher {tuple(teacher_hidden.shape)} hidden shapes differ"
        )
    s = student_hidden.reshape(-1, student_hidden.shape[-1]).float()
    t = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]).float()
    if mask is not None:
        keep = mask.reshape(-1).bool()
        s, t = s[keep], t[keep]
    if s.shape[0] == 0:
        return student_hidden.sum() * 0.0
    return (1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)).mean()


def combine(terms: dict[str, torch.Tensor], weights) -> torch.Tensor:
    """Weighted sum of the terms present: term ``x`` weighs ``weights.alpha_x`` (``ce``: soft-target KL, ``mlm``,
    ``cos``; ``weights``: a :class:`LossWeights`, or a run's objective). A term of weight 0 is left out."""
    total = None
    for name, value in terms.items():
        alpha = getattr(weights, f"alpha_{name}", None)
        if alpha is None:
            raise KeyError(f"unknown loss term {name!r}: {type(weights).__name__} has no weight alpha_{name}")
        if alpha == 0:
            continue
        total = alpha * value if total is None else total + alpha * value
    if total is None:
        raise ValueError("every loss weight is zero: nothing to train")
    return total
