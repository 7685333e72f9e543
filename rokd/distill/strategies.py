"""Cross-tokenizer strategies of the multi-teacher objective, and their diagnostics.

A *strategy* decides how a teacher whose vocabulary differs from the student's (DistilMulti: the uncased
teacher) enters the soft-target term ``alpha_ce * ...`` of :mod:`rokd.distill.distiller`. Teachers that
share the student's vocabulary always enter as in DistilBERT: ``T^2 KL(p_teacher,T || q_student,T)``.
Seven strategies, chosen by name from :data:`STRATEGIES` (``distill.strategy`` / ``--strategy``):

``span-map`` (rokd's mechanism, :mod:`rokd.distill.ensemble`; alias ``ensemble``)
    Sub-words aligned by identical character spans; the teacher's distribution is moved onto the
    student's vocabulary by exact / lower-cased token match (:class:`VocabularyMap`), averaged with the
    same-vocabulary teacher into one target; abstains where nothing aligns.
``uld`` (Universal Logit Distillation, Boizard et al. 2024; ``songmzhang/DSKD``
    ``universal_logit_distillation.py``)
    No token map: ``sum_i |sort(q)_i - sort(p)_i|`` over both probability vectors sorted in decreasing
    order and zero-padded to one length (the closed-form Wasserstein-1 distance between the two sorted
    distributions under a uniform cost). Positions are paired as ULD pairs them, by index: within each
    masked word, the k-th student sub-word with the k-th teacher sub-word (the shorter one decides).
``gold-hybrid`` (TRL ``trl/experimental/gold``, ``ULDLoss._compute_hybrid_uld_loss``)
    Tokens whose string is in both vocabularies (exact, case-sensitive) are compared directly by
    ``sum_t p_t log(p_t / q_t)`` on the un-renormalised sub-vectors (GOLD's generalised JSD with
    ``beta = 0``); the unmatched remainders of both vectors by sorted L1 (ULD). Weights are GOLD's
    adaptive default: ``w_matched = |matched| / |V_teacher|``, ``w_unmatched = 1 - w_matched``.
    Positions: one-to-one span alignment (GOLD's byte-offset groups of one token on each side).
``projection`` (X-Token P-KL, arXiv 2605.21699; NeMo RL ``x_token``)
    The student's distribution is projected into the teacher's vocabulary through a sparse
    row-stochastic matrix ``M`` (``V_student x V_teacher``) initialised from string rules, and
    ``T^2 KL(p_teacher || q M)`` is taken there. Every student token has a row, so a student token
    without a teacher counterpart still receives the mass of the teacher pieces it is made of instead
    of being pushed to zero. Positions: one-to-one span alignment.
``min-edit`` (MinED, FuseLLM, ICLR 2024; ``songmzhang/DSKD`` ``min_edit_dis_kld.py``)
    Positions aligned by dynamic time warping over the tokens of each masked word with the edit
    distance between token strings as cost (a student sub-word is covered when it aligns with exactly
    one teacher sub-word); each teacher token's mass goes to the student token nearest in edit
    distance. The result joins the soft target as in ``span-map``.
``hidden-only``
    The other-vocabulary teacher contributes only the cosine term.
``cased-only``
    Only the same-vocabulary teacher (the other one runs for the diagnostics only): Distil-BERT-base-ro.

Deviations from the references, all forced by the setting (masked-LM students, not causal decoders):
ULD / GOLD / X-Token were written for next-token prediction, where a group of several tokens is merged
by the chain rule (GOLD) or chunk-averaged (X-Token); an MLM's predictions at the masked sub-words of a
word are not conditionals of each other, so such groups abstain here. FuseLLM trains on the one-hot gold
token where the alignment is not one-to-one, and also drops a one-to-one pair whose tokens differ after
the vocabulary map; rokd abstains there (the MLM term already fits the gold token) and keeps every
one-to-one pair (with an uncased teacher the check would reject every capitalised word). All strategies
use the run's temperature T on both sides; KL-type terms carry the ``T^2`` factor (DistilBERT, X-Token),
the L1 terms of ULD / GOLD do not (as in their references).

Every function in the first part is a pure function of tensors with a hand-computed test
(``tests/test_distill_strategies.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from rokd.distill.ensemble import VocabularyMap

IGNORE_INDEX = -100
LOG_EPS = 1e-10  # X-Token's epsilon inside log of the projected distribution
GOLD_LOG_EPS = 1e-8  # GOLD's clamp before log of (un-renormalised) probabilities

# --------------------------------------------------------------------------------------------------
# Loss functions: one value per row (the distiller averages rows)
# --------------------------------------------------------------------------------------------------


def kl_rows(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 KL(p || softmax(z / T))`` per row; ``teacher_probs`` already at temperature T (zeros allowed).

    The row-wise form of :func:`rokd.distill.losses.soft_target_kl` (whose value is the mean of these).
    """
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    p = teacher_probs.float()
    return (torch.special.xlogy(p, p) - p * log_q).sum(-1) * temperature**2


def sorted_l1_rows(student_probs: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """ULD per row: ``sum_i |sort(q)_i - sort(p)_i|``, both sorted decreasingly, the shorter zero-padded.

    ``student_probs`` ``(n, Vs)`` and ``teacher_probs`` ``(n, Vt)`` need not have the same width.
    """
    s = student_probs.float().sort(dim=-1, descending=True).values
    t = teacher_probs.float().sort(dim=-1, descending=True).values
    width = max(s.shape[-1], t.shape[-1])
    s = F.pad(s, (0, width - s.shape[-1]))
    t = F.pad(t, (0, width - t.shape[-1]))
    return (s - t).abs().sum(-1)


def gold_hybrid_rows(
    student_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
    student_matched: torch.Tensor,
    teacher_matched: torch.Tensor,
    matched_weight: float | None = None,
    unmatched_weight: float | None = None,
    beta: float = 0.0,
) -> torch.Tensor:
    """GOLD's hybrid loss per row (TRL ``ULDLoss._compute_hybrid_uld_loss``).

    ``student_matched[k]`` / ``teacher_matched[k]``: the ids of the k-th token present in both
    vocabularies. Matched part: generalised JSD (``beta = 0``: ``sum p log(p/q)``, forward KL;
    ``beta = 1``: reverse KL) on the un-renormalised matched sub-vectors, logs clamped at 1e-8 as in
    GOLD. Unmatched part: :func:`sorted_l1_rows` on the remaining columns of each side. Weights default
    to GOLD's adaptive rule ``w_m = |matched| / V_teacher``, ``w_u = 1 - w_m``.
    """
    if (matched_weight is None) != (unmatched_weight is None):
        raise ValueError("matched_weight and unmatched_weight: give both or neither (GOLD's rule)")
    vt, vs = teacher_probs.shape[-1], student_probs.shape[-1]
    if matched_weight is None:
        matched_weight = student_matched.numel() / max(1, vt)
        unmatched_weight = 1.0 - matched_weight
    s, t = student_probs.float(), teacher_probs.float()
    matched = torch.zeros(s.shape[0], device=s.device)
    if student_matched.numel():
        log_s = s[:, student_matched].clamp_min(GOLD_LOG_EPS).log()
        log_t = t[:, teacher_matched].clamp_min(GOLD_LOG_EPS).log()
        if beta == 0:
            matched = (log_t.exp() * (log_t - log_s)).sum(-1)
        elif beta == 1:
            matched = (log_s.exp() * (log_s - log_t)).sum(-1)
        else:
            b = torch.tensor(beta, device=s.device)
            log_m = torch.logsumexp(torch.stack([log_s + torch.log1p(-b), log_t + torch.log(b)]), dim=0)
            kl_t = (log_t.exp() * (log_t - log_m)).sum(-1)
            kl_s = (log_s.exp() * (log_s - log_m)).sum(-1)
            matched = beta * kl_t + (1 - beta) * kl_s
    s_rest = torch.ones(vs, dtype=torch.bool, device=s.device)
    s_rest[student_matched] = False
    t_rest = torch.ones(vt, dtype=torch.bool, device=s.device)
    t_rest[teacher_matched] = False
    unmatched = torch.zeros_like(matched)
    if s_rest.any() and t_rest.any():
        unmatched = sorted_l1_rows(s[:, s_rest], t[:, t_rest])
    return matched_weight * matched + unmatched_weight * unmatched


def reachable_columns(projection: torch.Tensor) -> torch.Tensor:
    """``(V_teacher,)`` bool: the teacher tokens that at least one student token projects onto."""
    if projection.is_sparse:
        m = projection.coalesce()
        out = torch.zeros(m.shape[1], dtype=torch.bool, device=m.device)
        out[m.indices()[1][m.values() != 0]] = True
        return out
    return (projection != 0).any(0)


def projected_kl_rows(
    student_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
    projection: torch.Tensor,
    temperature: float,
    reachable: torch.Tensor | None = None,
) -> torch.Tensor:
    """X-Token P-KL per row: ``T^2 KL(p_teacher || normalise(q_student M))`` in the teacher's vocabulary.

    ``projection`` ``M``: ``(V_student, V_teacher)``, dense or sparse COO, rows summing to 1. Both
    distributions are at temperature T already. As in NeMo RL, ``qM`` is renormalised and 1e-10 is added
    inside the log. NeMo RL compares within a top-k subset of teacher columns; here the subset is every
    column some student token reaches (``reachable``, default :func:`reachable_columns`): an unreachable
    teacher token would add ``p_t * ln(1e10)``, a constant without gradient, so it is left out and the
    teacher renormalised over the rest (the share left out is logged as the strategy's carried mass).
    """
    q = student_probs.float()
    # in fp32 under a bf16/fp16 autocast too: autocast would cast one operand of the (sparse) matmul only,
    # and the backward then meets a bf16 gradient against fp32 values
    with torch.autocast(q.device.type, enabled=False):
        proj = torch.sparse.mm(projection.t().float(), q.t()).t() if projection.is_sparse else q @ projection.float()
    keep = (reachable_columns(projection) if reachable is None else reachable).to(q.device).float()[None, :]
    proj = proj * keep
    proj = proj / (proj.sum(-1, keepdim=True) + LOG_EPS)
    p = teacher_probs.float() * keep
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-30)
    return (torch.special.xlogy(p, p) - p * (proj + LOG_EPS).log()).sum(-1) * temperature**2


# --------------------------------------------------------------------------------------------------
# Vocabulary treatments
# --------------------------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _code_matrix(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(s) for s in strings], dtype=np.int64)
    codes = np.full((len(strings), max(1, int(lengths.max(initial=0)))), -1, dtype=np.int64)
    for i, s in enumerate(strings):
        codes[i, : len(s)] = [ord(c) for c in s]
    return codes, lengths


def nearest_by_edit_distance(queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """For every query, the index of the candidate with the smallest edit distance (ties: lowest index).

    Levenshtein's dynamic programme run for all candidates at once (numpy, one row per candidate).
    """
    codes, lengths = _code_matrix(candidates)
    n, width = codes.shape
    rows = np.arange(n)
    out = np.empty(len(queries), dtype=np.int64)
    base = np.broadcast_to(np.arange(width + 1), (n, width + 1))
    for k, q in enumerate(queries):
        prev = base.copy()
        for i, ch in enumerate(q, 1):
            cur = np.empty_like(prev)
            cur[:, 0] = i
            sub = prev[:, :-1] + (codes != ord(ch))
            dele = prev[:, 1:] + 1
            best = np.minimum(sub, dele)
            for j in range(1, width + 1):  # insertion depends on the cell to the left
                cur[:, j] = np.minimum(best[:, j - 1], cur[:, j - 1] + 1)
            prev = cur
        out[k] = int(np.argmin(prev[rows, lengths]))
    return out


def min_edit_vocab_map(
    student_vocab: Mapping[str, int], teacher_vocab: Mapping[str, int], teacher_size: int | None = None
) -> torch.Tensor:
    """FuseLLM's vocabulary map: teacher id -> the student id whose token string is nearest in edit distance.

    An exact match is taken first (distance 0); otherwise the whole student vocabulary is searched
    (ties: the lowest student id). Teacher rows beyond the tokenizer (padded output layers) map to -1.
    """
    size = max(teacher_size or 0, max(teacher_vocab.values()) + 1)
    out = torch.full((size,), -1, dtype=torch.long)
    s_items = sorted(student_vocab.items(), key=lambda kv: kv[1])
    s_tokens = [t for t, _ in s_items]
    s_ids = np.array([i for _, i in s_items])
    missing = []
    for token, tid in teacher_vocab.items():
        sid = student_vocab.get(token)
        if sid is None:
            missing.append((token, tid))
        else:
            out[tid] = sid
    if missing:
        nearest = nearest_by_edit_distance([t for t, _ in missing], s_tokens)
        for (_, tid), k in zip(missing, nearest.tolist()):
            out[tid] = int(s_ids[k])
    return out


def move_mass(teacher_probs: torch.Tensor, teacher_to_student: torch.Tensor, student_size: int) -> torch.Tensor:
    """``(n, V_t)`` -> ``(n, V_s)``: each teacher token's mass added to the student token it maps to (-1: lost)."""
    has = teacher_to_student >= 0
    out = torch.zeros(teacher_probs.shape[0], student_size, device=teacher_probs.device)
    return out.index_add_(1, teacher_to_student[has], teacher_probs.float()[:, has])


def wordpiece_pieces(
    text: str, vocab: Mapping[str, int], continuation: bool = False, prefix: str = "##"
) -> list[int] | None:
    """Greedy longest-match-first WordPiece split of one word (or word piece) with ``vocab``; None if impossible.

    ``continuation``: the text continues a word (its first piece carries ``prefix`` too).
    """
    ids, start = [], 0
    while start < len(text):
        end, found = len(text), None
        while end > start:
            piece = text[start:end]
            if start > 0 or continuation:
                piece = prefix + piece
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return None
        ids.append(found)
        start = end
    return ids or None


def piece_weights(n: int) -> list[float]:
    """X-Token's weights for a token made of ``n`` teacher pieces: 0.9, 0.09, 0.009, ... normalised."""
    w = [0.9 * 0.1**i for i in range(n)]
    return [x / sum(w) for x in w]


def projection_matrix(
    student_vocab: Mapping[str, int],
    teacher_vocab: Mapping[str, int],
    vocab_map: VocabularyMap,
    normalize: Callable[[str], str] = lambda s: s,
    prefix: str = "##",
    unk_token: str | None = "[UNK]",
) -> torch.Tensor:
    """The sparse row-stochastic ``M`` (``V_student x V_teacher``) of the ``projection`` strategy.

    String rules (X-Token's, for WordPiece vocabularies):

    1. a student token with a counterpart in ``vocab_map`` (exact, else lower-cased; a generalised
       map slots in here) maps to it with weight 1 (X-Token's re-applied exact map);
    2. otherwise its surface form (``normalize``: the teacher's normaliser, e.g. lower-casing) is split
       by the teacher's WordPiece vocabulary, and the pieces get :func:`piece_weights`;
    3. otherwise it maps to the teacher's ``unk_token`` (weight 1), so that no row is empty.

    Rows of padded output positions (beyond the student tokenizer) stay empty.
    """
    rows, cols, vals = [], [], []
    unk = teacher_vocab.get(unk_token) if unk_token else None
    target = vocab_map.target.cpu()
    for token, sid in student_vocab.items():
        tid = int(target[sid])
        if tid >= 0:
            pieces = [tid]
        else:
            cont = token.startswith(prefix) and len(token) > len(prefix)
            surface = normalize(token[len(prefix) :] if cont else token)
            pieces = wordpiece_pieces(surface, teacher_vocab, continuation=cont, prefix=prefix) if surface else None
            if pieces is None:
                pieces = [unk] if unk is not None else []
        for tid, w in zip(pieces, piece_weights(len(pieces))):
            rows.append(sid)
            cols.append(tid)
            vals.append(w)
    m = torch.sparse_coo_tensor(
        torch.tensor([rows, cols], dtype=torch.long),
        torch.tensor(vals, dtype=torch.float32),
        (vocab_map.student_size, vocab_map.teacher_size),
        check_invariants=True,
    )
    return m.coalesce()  # a repeated piece (e.g. "##a" twice) adds up


def exact_matches(
    student_vocab: Mapping[str, int], teacher_vocab: Mapping[str, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """GOLD's matched set: ids of the token strings present in both vocabularies (student ids, teacher ids)."""
    pairs = sorted((teacher_vocab[t], s) for t, s in student_vocab.items() if t in teacher_vocab)
    t_ids = torch.tensor([t for t, _ in pairs], dtype=torch.long)
    s_ids = torch.tensor([s for _, s in pairs], dtype=torch.long)
    return s_ids, t_ids


# --------------------------------------------------------------------------------------------------
# Position alignment within masked words
# --------------------------------------------------------------------------------------------------


def dtw_alignment(
    teacher_tokens: Sequence[str], student_tokens: Sequence[str], cost: Callable[[str, str], float]
) -> list[list[int]]:
    """FuseLLM's dynamic time warping (``dtw``, after simpledtw).

    Returns, for each student token, the teacher tokens aligned to it.
    """
    n, m = len(teacher_tokens), len(student_tokens)
    if n == 0 or m == 0:
        return [[] for _ in range(m)]
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i, a in enumerate(teacher_tokens):
        for j, b in enumerate(student_tokens):
            acc[i + 1, j + 1] = cost(a, b) + min(acc[i, j + 1], acc[i + 1, j], acc[i, j])
    acc = acc[1:, 1:]
    i, j = n - 1, m - 1
    student_to_teacher: list[list[int]] = [[] for _ in range(m)]
    while i > 0 or j > 0:
        student_to_teacher[j].append(i)
        diag = acc[i - 1, j - 1] if i > 0 and j > 0 else np.inf
        up = acc[i - 1, j] if i > 0 else np.inf
        left = acc[i, j - 1] if j > 0 else np.inf
        move = int(np.argmin([diag, up, left]))
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    student_to_teacher[0].append(0)
    return [sorted(x) for x in student_to_teacher]


def wordpiece_edit_cost(prefix: str = "##") -> Callable[[str, str], int]:
    """FuseLLM's ``dist_fn``: edit distance between the tokens with the tokenizer's marker removed."""

    def cost(a: str, b: str) -> int:
        return levenshtein(a.removeprefix(prefix), b.removeprefix(prefix))

    return cost


def rows_by_word(labels: torch.Tensor, unit: torch.Tensor) -> dict[int, list[int]]:
    """Masked rows (row-major order of ``labels != -100``) grouped by word unit.

    ``unit``: ``(batch*L,)``, the word unit of each position (-1: skipped).
    """
    flat = (labels.reshape(-1) != IGNORE_INDEX).nonzero().flatten()
    units = unit.reshape(-1)[flat].tolist()
    groups: dict[int, list[int]] = {}
    for row, u in enumerate(units):
        if u >= 0:
            groups.setdefault(u, []).append(row)
    return groups


def pair_by_index(
    student_groups: Mapping[int, list[int]], teacher_groups: Mapping[int, list[int]]
) -> list[tuple[int, int]]:
    """ULD's pairing: within each word the k-th student row with the k-th teacher row (the shorter word decides)."""
    pairs = []
    for u, s_rows in student_groups.items():
        pairs += list(zip(s_rows, teacher_groups.get(u, [])))
    return sorted(pairs)


def pair_by_min_edit(
    student_groups: Mapping[int, list[int]],
    teacher_groups: Mapping[int, list[int]],
    student_tokens: Sequence[str],
    teacher_tokens: Sequence[str],
    cost: Callable[[str, str], float],
) -> list[tuple[int, int]]:
    """MinED's pairing: DTW per word over the rows' gold tokens.

    A student row aligned to exactly one teacher row pairs with it.

    ``student_tokens[r]`` / ``teacher_tokens[r]``: the gold token string of masked row ``r``.
    """
    pairs = []
    for u, s_rows in student_groups.items():
        t_rows = teacher_groups.get(u, [])
        links = dtw_alignment([teacher_tokens[r] for r in t_rows], [student_tokens[r] for r in s_rows], cost)
        pairs += [(s_rows[k], t_rows[js[0]]) for k, js in enumerate(links) if len(js) == 1]
    return sorted(pairs)


# --------------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------------


def unmatched_mass(probs: torch.Tensor, unmatched: torch.Tensor) -> torch.Tensor:
    """Per row, the probability mass on the tokens flagged in ``unmatched`` (``(V,)`` bool)."""
    return (probs.float() * unmatched.float()[None, :]).sum(-1)


def top1_agreement(
    student_probs: torch.Tensor, teacher_probs: torch.Tensor, same: torch.Tensor | None = None
) -> torch.Tensor:
    """Per row, 1.0 where the student's and the teacher's most likely tokens agree, else 0.0.

    ``same`` (``(V,)`` long, optional): a canonical id per token (e.g. :attr:`VocabularyMap.target`,
    so that ``Casa`` and ``casa`` agree against an uncased teacher); tokens with -1 never agree.
    """
    s, t = student_probs.argmax(-1), teacher_probs.argmax(-1)
    if same is None:
        return (s == t).float()
    cs, ct = same[s], same[t]
    return ((cs == ct) & (cs >= 0)).float()


def kl_divergence_rows(teacher_probs: torch.Tensor, student_probs: torch.Tensor) -> torch.Tensor:
    """``KL(p_teacher || q_student)`` per row (nats; student probabilities clamped at 1e-12)."""
    p = teacher_probs.float()
    return (torch.special.xlogy(p, p) - p * student_probs.float().clamp_min(1e-12).log()).sum(-1)


def _mean(x: torch.Tensor) -> torch.Tensor:
    return x.float().mean() if x.numel() else torch.full((), float("nan"), device=x.device)


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """How a teacher with another vocabulary enters the objective.

    ``cross``: ``"target"`` (its distribution, moved onto the student's vocabulary, joins the averaged
    soft target), ``"loss"`` (a loss of its own, computed by ``row_loss``, is added row by row beside
    the same-vocabulary teachers' KL) or ``"none"``. ``pairing``: which student rows it covers
    (``"span"``: same characters, ``"index"``, ``"min-edit"``). ``in_cosine``: whether it keeps its
    cosine term.
    """

    name: str
    summary: str
    reference: str
    cross: str
    pairing: str = "span"
    in_cosine: bool = True
    row_loss: Callable[..., torch.Tensor] | None = None

    @property
    def needs_own_probs(self) -> bool:
        """Whether the cross-tokenizer adaptor must return the teacher's distribution in its own vocabulary."""
        return self.cross == "loss" or self.pairing != "span"


def _uld_loss(student_probs, teacher_probs, ctx, temperature):
    return sorted_l1_rows(student_probs, teacher_probs)


def _gold_loss(student_probs, teacher_probs, ctx, temperature):
    s_ids, t_ids = ctx.gold_matched
    device = student_probs.device
    return gold_hybrid_rows(student_probs, teacher_probs, s_ids.to(device), t_ids.to(device))


def _projection_loss(student_probs, teacher_probs, ctx, temperature):
    return projected_kl_rows(
        student_probs, teacher_probs, ctx.projection.to(student_probs.device), temperature, ctx.projected_columns
    )


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "span-map",
            "same-span sub-words; exact / lower-cased vocabulary map into one averaged target",
            "rokd (rokd.distill.ensemble)",
            cross="target",
        ),
        Strategy(
            "uld",
            "sorted-probability L1 (Wasserstein-1), no vocabulary map; index pairing within words",
            "Boizard et al. 2024; songmzhang/DSKD universal_logit_distillation.py",
            cross="loss",
            pairing="index",
            row_loss=_uld_loss,
        ),
        Strategy(
            "gold-hybrid",
            "KL on exactly shared tokens + sorted L1 on the rest (GOLD's adaptive weights)",
            "TRL trl/experimental/gold ULDLoss (uld_use_hybrid_loss)",
            cross="loss",
            row_loss=_gold_loss,
        ),
        Strategy(
            "projection",
            "KL in the teacher's vocabulary after projecting the student through a sparse string-rule matrix",
            "X-Token P-KL (arXiv 2605.21699), NeMo RL x_token",
            cross="loss",
            row_loss=_projection_loss,
        ),
        Strategy(
            "min-edit",
            "DTW alignment by edit distance; teacher tokens moved to the nearest student token",
            "FuseLLM (arXiv 2401.10491); songmzhang/DSKD min_edit_dis_kld.py",
            cross="target",
            pairing="min-edit",
        ),
        Strategy("hidden-only", "the other-vocabulary teacher only in the cosine term", "rokd", cross="none"),
        Strategy(
            "cased-only",
            "only the same-vocabulary teacher (Distil-BERT-base-ro)",
            "rokd",
            cross="none",
            in_cosine=False,
        ),
    )
}
ALIASES = {"ensemble": "span-map"}  # the name before issue 18; old configs keep loading
DEFAULT_STRATEGY = "span-map"


def canonical_name(name: str) -> str:
    """The registry name of ``name`` (aliases resolved); KeyError naming the choices otherwise."""
    name = ALIASES.get(name, name)
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; choose one of {list(STRATEGIES)} (alias: {ALIASES})")
    return name


def get_strategy(name: str) -> Strategy:
    return STRATEGIES[canonical_name(name)]


# --------------------------------------------------------------------------------------------------
# Per-teacher data and the per-step glue used by the distiller
# --------------------------------------------------------------------------------------------------


@dataclass
class CrossContext:
    """What a strategy needs about one other-vocabulary teacher (built once per run by :func:`build_context`)."""

    name: str
    vocab_map: VocabularyMap
    student_tokens: list[str]
    teacher_tokens: list[str]
    unmatched: torch.Tensor  # (V_student,) bool: student tokens without a counterpart in this teacher's vocabulary
    min_edit_map: torch.Tensor | None = None  # (V_teacher,) teacher id -> student id
    projection: torch.Tensor | None = None  # sparse (V_student, V_teacher)
    gold_matched: tuple[torch.Tensor, torch.Tensor] | None = None  # (student ids, teacher ids)
    projected_columns: torch.Tensor | None = None  # (V_teacher,) bool: columns of M with an entry


def _id_to_token(vocab: Mapping[str, int], size: int) -> list[str]:
    out = [""] * size
    for t, i in vocab.items():
        out[i] = t
    return out


def build_context(
    strategy: str, name: str, student_tokenizer, teacher_tokenizer, vocab_map: VocabularyMap
) -> CrossContext:
    """The vocabulary data of ``strategy`` for teacher ``name`` (only what the strategy uses is computed)."""
    s = get_strategy(strategy)
    sv, tv = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    ctx = CrossContext(
        name=name,
        vocab_map=vocab_map,
        student_tokens=_id_to_token(sv, vocab_map.student_size),
        teacher_tokens=_id_to_token(tv, vocab_map.teacher_size),
        unmatched=vocab_map.target.cpu() < 0,
    )
    if s.name == "min-edit":
        ctx.min_edit_map = min_edit_vocab_map(sv, tv, vocab_map.teacher_size)
    if s.name == "projection":
        normalizer = getattr(getattr(teacher_tokenizer, "backend_tokenizer", None), "normalizer", None)
        ctx.projection = projection_matrix(sv, tv, vocab_map, normalizer.normalize_str if normalizer else (lambda x: x))
        ctx.projected_columns = reachable_columns(ctx.projection)
    if s.name == "gold-hybrid":
        ctx.gold_matched = exact_matches(sv, tv)
    return ctx


@dataclass
class CrossRows:
    """One other-vocabulary teacher at one step: which student rows it covers and with what."""

    name: str
    weight: float
    student_rows: torch.Tensor  # (k,) long
    teacher_probs: torch.Tensor  # (k, V) on the student's vocabulary ("target") or the teacher's ("loss")
    carried_mass: torch.Tensor  # (k,) teacher mass carried by token identity (diagnostic)


def cross_rows(
    strategy: Strategy, ctx: CrossContext, batch: Mapping[str, torch.Tensor], targets, weight: float
) -> CrossRows:
    """The rows and probabilities with which teacher ``ctx.name`` enters the soft-target term at this batch.

    ``targets``: its :class:`~rokd.distill.adaptors.TeacherTargets` (``own_probs`` needed unless the
    strategy is ``span-map``).
    """
    p = f"{ctx.name}."
    row_of = batch[p + "row_of_student_row"]
    device = row_of.device
    if strategy.pairing == "span":
        s_rows = (row_of >= 0).nonzero().flatten()
        t_rows = row_of[s_rows]
    else:
        s_groups = rows_by_word(batch["labels"], batch[p + "student_unit"])
        t_groups = rows_by_word(batch[p + "labels"], batch[p + "teacher_unit"])
        if strategy.pairing == "index":
            pairs = pair_by_index(s_groups, t_groups)
        else:
            s_gold = batch["labels"][batch["labels"] != IGNORE_INDEX].tolist()
            t_gold = batch[p + "labels"][batch[p + "labels"] != IGNORE_INDEX].tolist()
            pairs = pair_by_min_edit(
                s_groups,
                t_groups,
                [ctx.student_tokens[i] for i in s_gold],
                [ctx.teacher_tokens[i] for i in t_gold],
                wordpiece_edit_cost(),
            )
        s_rows = torch.tensor([a for a, _ in pairs], dtype=torch.long, device=device)
        t_rows = torch.tensor([b for _, b in pairs], dtype=torch.long, device=device)
    if strategy.name == "span-map":  # the adaptor's mapped distribution and its mean mapped mass
        mass = targets.stats.get(f"stat_mapped_mass.{ctx.name}")
        carried = mass.reshape(1) if mass is not None and len(s_rows) else torch.zeros(0, device=device)
        return CrossRows(ctx.name, weight, s_rows, targets.probs[s_rows], carried)
    if targets.own_probs is None:
        raise ValueError(
            f"strategy {strategy.name}: the adaptor of {ctx.name} did not keep its own-vocabulary "
            "probabilities (build it with keep_own_probs=True)"
        )
    own = targets.own_probs[t_rows]
    if strategy.name == "min-edit":
        mapping = ctx.min_edit_map.to(device)
        return CrossRows(
            ctx.name,
            weight,
            s_rows,
            move_mass(own, mapping, ctx.vocab_map.student_size),
            (own * (mapping >= 0).float()[None, :]).sum(-1),
        )
    if strategy.name == "gold-hybrid":
        carried = own[:, ctx.gold_matched[1].to(device)].sum(-1)
    elif strategy.name == "projection":
        carried = (own * ctx.projected_columns.to(device).float()[None, :]).sum(-1)
    else:  # uld: nothing is carried by token identity
        carried = torch.zeros(len(s_rows), device=device)
    return CrossRows(ctx.name, weight, s_rows, own, carried)


def loss_strategy_ce(
    strategy: Strategy,
    student_logits: torch.Tensor,
    same_vocab_target: torch.Tensor,
    same_vocab_weight: float,
    cross: Sequence[CrossRows],
    contexts: Mapping[str, CrossContext],
    temperature: float,
) -> torch.Tensor:
    """The soft-target term of a ``"loss"`` strategy: per row, the weighted mean over the teachers covering it of
    ``T^2 KL`` (same-vocabulary teachers' averaged target) and the strategy's own loss (other vocabularies).

    Weights are the teachers' ensemble weights renormalised over the teachers that cover each row, as
    for the averaged target; the result is the mean over rows. With no other-vocabulary row it is
    :func:`rokd.distill.losses.soft_target_kl` of the same-vocabulary target.
    """
    n = student_logits.shape[0]
    if n == 0:
        return student_logits.sum() * 0.0
    total_w = torch.full((n,), float(same_vocab_weight), device=student_logits.device)
    for c in cross:
        add = torch.full((len(c.student_rows),), float(c.weight), device=total_w.device)
        total_w = total_w.index_add(0, c.student_rows, add)
    per_row = kl_rows(student_logits, same_vocab_target, temperature) * (same_vocab_weight / total_w)
    student_probs = torch.softmax(student_logits.float() / temperature, dim=-1)
    for c in cross:
        if len(c.student_rows) == 0:
            continue
        loss = strategy.row_loss(student_probs[c.student_rows], c.teacher_probs, contexts[c.name], temperature)
        per_row = per_row.index_add(0, c.student_rows, loss * (c.weight / total_w[c.student_rows]))
    return per_row.mean()


def step_diagnostics(
    student_logits: torch.Tensor,
    temperature: float,
    same_vocab: Mapping[str, torch.Tensor],
    cross: Sequence[CrossRows],
    contexts: Mapping[str, CrossContext],
    span_targets: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    strategy: Strategy,
) -> dict[str, torch.Tensor]:
    """The ``stat_*`` numbers of one step (logged, not optimised).

    Per other-vocabulary teacher ``x``: ``stat_strategy_coverage.x`` (share of the student's masked rows it
    covers under the strategy), ``stat_strategy_mass.x`` (mean teacher mass carried by token identity on
    those rows), ``stat_unmatched_student_mass.x`` (the student's probability, at T = 1, on its tokens
    without a counterpart in x's vocabulary: the suppression X-Token predicts), and for ``"target"``
    strategies ``stat_unmatched_target_mass.x`` (x's target mass on those tokens; 0 under span-map).
    Per teacher ``t``: ``stat_top1_agreement.t`` and ``stat_kl.t`` (``KL(teacher || student)`` at
    temperature T) on the rows where ``t`` has a distribution on the student's vocabulary
    (``same_vocab[t]``: all rows; ``span_targets[x] = (probs, covered)``: span-mapped rows).
    """
    n = student_logits.shape[0]
    q1 = torch.softmax(student_logits.float(), dim=-1)
    q_t = torch.softmax(student_logits.float() / temperature, dim=-1)
    stats: dict[str, torch.Tensor] = {}
    for c in cross:
        ctx = contexts[c.name]
        unmatched = ctx.unmatched.to(student_logits.device)
        stats[f"stat_strategy_coverage.{c.name}"] = torch.tensor(len(c.student_rows) / max(n, 1), device=q1.device)
        stats[f"stat_strategy_mass.{c.name}"] = _mean(c.carried_mass)
        stats[f"stat_unmatched_student_mass.{c.name}"] = _mean(unmatched_mass(q1, unmatched))
        if strategy.cross == "target":
            stats[f"stat_unmatched_target_mass.{c.name}"] = _mean(unmatched_mass(c.teacher_probs, unmatched))
    for name, probs in same_vocab.items():
        stats[f"stat_top1_agreement.{name}"] = _mean(top1_agreement(q1, probs))
        stats[f"stat_kl.{name}"] = _mean(kl_divergence_rows(probs, q_t))
    for name, (probs, covered) in span_targets.items():
        same = contexts[name].vocab_map.target.to(student_logits.device)
        stats[f"stat_top1_agreement.{name}"] = _mean(top1_agreement(q1[covered], probs[covered], same))
        stats[f"stat_kl.{name}"] = _mean(kl_divergence_rows(probs[covered], q_t[covered]))
    return stats


@dataclass
class StrategyStep:
    """Handed by the step function to :class:`~rokd.distill.distiller.DistillNet`: how to compute the soft-target
    term from the student's masked-position logits (``ce``; None: the averaged target's KL as always) and the
    step's diagnostics (``stats``)."""

    ce: Callable[[torch.Tensor], torch.Tensor] | None
    stats: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    extra: dict = field(default_factory=dict)
