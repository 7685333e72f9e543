"""The results chapter's framing text: what a run holds, and what limits its reading (caveats).

Written from the profile the run was made with, so the words follow the budgets: a change of profile
changes the caveats, never a notebook cell.
"""

from __future__ import annotations

import pandas as pd

from rokd.profiles import Profile


def chapter_intro(scores: pd.DataFrame, profile: Profile, missing: list[str]) -> str:
    """One paragraph: the profile, how many models / tasks / seeds, and which references are absent."""
    from rokd.report.tables import summary

    n_seeds = int(summary(scores)["n"].max())
    text = (
        f"This chapter was executed with the **`{profile.name}`** profile: {scores['model'].nunique()} models and "
        f"references, {scores['task'].nunique()} tasks, up to {n_seeds} seed(s) per model and task."
    )
    if missing:
        text += (
            f" **Not in this results folder**: {', '.join(f'`{m}`' for m in missing)}; the comparisons that "
            "need them are `inconclusive` below, with that reason."
        )
    return text


def _count(value: int | None, none: str = "all") -> str:
    return f"{value:,}" if value else none


def fine_tuning_budget(profile: Profile) -> str:
    """The fine-tuning budget in words, task by task where ``evaluate.per_task`` makes them differ."""
    e = profile.evaluate
    budgets = {t: e.for_task(t) for t in e.tasks}
    shapes = {(b.max_train_examples, b.epochs, b.max_eval_examples, b.max_length) for b in budgets.values()}
    if len(shapes) == 1:
        return (
            f"At most {_count(e.max_train_examples)} training examples per task, {e.epochs:g} epochs, test sets "
            f"capped at {_count(e.max_eval_examples)} examples"
        )
    parts = [
        f"{t.upper()} {_count(b.max_train_examples)} × {b.epochs:g} epochs (≤ {b.max_length} sub-words)"
        for t, b in budgets.items()
    ]
    return "Per task (training examples × epochs): " + "; ".join(parts)


def caveats(profile: Profile) -> str:
    """Markdown bullets: what limits the reading of this run (miniature teachers, budgets, seeds, splits)."""
    t, d = profile.teachers, profile.distill
    if t.source == "hub":
        return "The teachers are the real hub models (profile `paper`)."
    replicas = {k: n for k, n in d.replicas.items() if n > 1}
    seeds = f" ({', '.join(f'{k}: {n} distillation seeds' for k, n in replicas.items())})" if replicas else ""
    lines = [
        f"- **Miniature teachers.** Ours have {t.cased.num_hidden_layers} layers of width {t.cased.hidden_size} and "
        f"vocabularies of {t.cased.vocab_size:,} (cased) / {t.uncased.vocab_size:,} (uncased) pieces, pretrained for "
        f"{t.steps:,} steps of {t.batch_size} lines of the project's Romanian corpus (the data and teachers chapters "
        "give its size and their quality), where the paper's are 12 × 768 BERTs pretrained on gigabytes of "
        "Romanian. Absolute scores are therefore far below the paper's; what can be compared is the *relations* "
        "between the models, and only where the controls show that the teachers have something to pass on.",
        f"- **Short distillation.** Each student saw {d.steps:,} steps of {d.batch_size} lines{seeds}.",
        f"- **Small fine-tuning budget.** {fine_tuning_budget(profile)}: every model gets the same budget, but a "
        "budget this small favours models that learn fast, not the ones that would end best.",
        "- **Few seeds.** The verdicts' noise band is 2 standard errors from a handful of seeds: `holds` is a "
        "screening result, and `inconclusive` means *not shown*, not *shown absent*.",
        "- **Rebuilt and substitute splits** (table above): numbers on them are not comparable one-to-one with the "
        "paper's.",
        "- **Speed on CPU.** The paper's speed-up is on a GPU; ours is measured on this machine's CPU.",
    ]
    return "\n".join(lines)


def smoke_note(profile: Profile) -> str:
    """What the smoke profile's numbers mean (nothing about distillation); empty for other profiles."""
    if profile.name != "smoke":
        return ""
    return (
        "- Profile `smoke`: miniature models trained for seconds. These numbers show that the pipeline runs end "
        "to end; they say nothing about distillation. Read the `mini` profile's run for that."
    )


__all__ = ["chapter_intro", "fine_tuning_budget", "caveats", "smoke_note"]
