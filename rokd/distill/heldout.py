"""The cross-tokenizer diagnostics of a distilled student on held-out corpus lines (for the strategies chapter).

:func:`heldout_diagnostics` masks whole words of the lines exactly as distillation does (the student's
tokenization, the same words in each other teacher's), runs every teacher and the student, and averages
over the masked positions what the training log records per step
(:func:`rokd.distill.strategies.step_diagnostics`): the coverage and carried mass of a strategy, the
student's probability mass on its tokens without a counterpart in the other teacher's vocabulary, and the
top-1 agreement / KL of the student's predictions with each teacher (here at temperature 1), plus the
student's masked-token accuracy on the same masks. Nothing is trained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from rokd import mlm
from rokd.distill import strategies as S
from rokd.distill.adaptors import make_adaptor
from rokd.distill.batching import CrossTokenizerView, DistillCollator, PairedLines


@torch.no_grad()
def heldout_diagnostics(
    student: nn.Module,
    student_tokenizer,
    teachers: Mapping[str, nn.Module],
    teacher_tokenizers: Mapping[str, object],
    lines: Sequence[str],
    *,
    strategy: str = S.DEFAULT_STRATEGY,
    teacher_weights: Sequence[float] | None = None,
    temperature: float = 1.0,
    mlm_probability: float = 0.15,
    max_length: int = 128,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    """Mean diagnostics over the masked positions of ``lines`` (keys as in the training log, without ``stat_``).

    ``teachers``: in the distillation's order (the first shares the student's vocabulary). The masks
    depend only on ``seed`` and the student's tokenization, so every student of one tokenizer is
    measured on the same positions. ``mlm_accuracy``: the student's top-1 accuracy there.
    """
    from rokd.distill.distiller import strategy_step, teacher_targets

    strat = S.get_strategy(strategy)
    names = list(teachers)
    weights = list(teacher_weights) if teacher_weights is not None else [1.0] * len(names)
    weights = [w / sum(weights) for w in weights]
    device = next(student.parameters()).device
    adaptors = []
    for name, w in zip(names, weights):
        a = make_adaptor(
            name,
            teachers[name].eval().to(device),
            teacher_tokenizers[name],
            student_tokenizer,
            w,
            int(student.config.vocab_size),
            keep_own_probs=strat.needs_own_probs,
        )
        if a.needs_reference:
            a.context = S.build_context(strat.name, name, student_tokenizer, teacher_tokenizers[name], a.vocab_map)
        adaptors.append(a)
    cross = [a for a in adaptors if a.needs_reference]
    contexts = {a.name: a.context for a in cross}
    corpus = mlm.tokenize_lines(list(lines), student_tokenizer, max_length)
    others = {a.name: mlm.tokenize_lines(list(lines), teacher_tokenizers[a.name], 2 * max_length) for a in cross}
    data = PairedLines(corpus, others)
    collate = DistillCollator(
        mlm.WholeWordMaskCollator(student_tokenizer, mlm_probability, seed=seed),
        [CrossTokenizerView(a.name, teacher_tokenizers[a.name]) for a in cross],
    )
    sparse = mlm.SparseMLM(student.eval())
    soft_names = [a.name for a in adaptors if strat.name == "span-map" or not a.needs_reference]
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for start in range(0, len(data), batch_size):
        batch = collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        n = int((batch["labels"] != S.IGNORE_INDEX).sum())
        if n == 0:
            continue
        targets, soft, valid = teacher_targets(adaptors, batch, temperature, soft_names)
        step, _, _ = strategy_step(strat, adaptors, contexts, batch, targets, soft, valid, temperature)
        out = sparse(batch["input_ids"], batch["attention_mask"], batch["labels"])
        stats = step.stats(out.logits)
        for t in targets.values():
            stats.update(t.stats)
        stats["stat_mlm_accuracy"] = (out.logits.argmax(-1) == out.targets).float().mean()
        for key, value in stats.items():
            v = float(value)
            if v == v:  # NaN: no row of that kind in this batch
                sums[key] = sums.get(key, 0.0) + v * n
                counts[key] = counts.get(key, 0.0) + n
    return {k.removeprefix("stat_"): sums[k] / counts[k] for k in sorted(sums)}
