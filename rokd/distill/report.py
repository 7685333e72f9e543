"""Tables for the distillation chapter, read from a student's folder (``train_log.jsonl``, ``summary.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rokd.models.registry import DISPLAY_NAMES, STUDENTS
from rokd.paths import results_dir
from rokd.spec import MODELS, MULTI_STUDENT, SINGLE_STUDENT

LOSS_TERMS = {"loss": "total", "ce": "soft-target KL x T²", "mlm": "MLM cross-entropy", "cos": "cosine (all teachers)"}
BENCHMARK_FILE = "distill_throughput.json"


def loss_curves(log: list[dict]) -> pd.DataFrame:
    """Long table ``step, term, value`` of every loss term (total, ce, mlm, cos and cos per teacher)."""
    rows = []
    for rec in log:
        # Fixed order: total, the three terms, then the cosine with each teacher.
        keys = [k for k in LOSS_TERMS if k in rec] + sorted(k for k in rec if k.startswith("cos."))
        for key in keys:
            label = LOSS_TERMS.get(key, f"cosine with {DISPLAY_NAMES.get(key[4:], key[4:])}")
            rows.append({"step": rec["step"], "term": label, "value": rec[key]})
    return pd.DataFrame(rows)


def coverage_curves(log: list[dict]) -> pd.DataFrame:
    """Long table ``step, teacher, measure, value`` of the cross-tokenizer statistics per step."""
    names = {
        "stat_coverage": "masked positions covered",
        "stat_label_mapped": "teacher's token maps onto the student's",
        "stat_mapped_mass": "probability mass mapped",
    }
    rows = []
    for rec in log:
        for key, value in rec.items():
            stem, _, teacher = key.partition(".")
            if stem in names:
                rows.append(
                    {
                        "step": rec["step"],
                        "teacher": DISPLAY_NAMES.get(teacher, teacher),
                        "measure": names[stem],
                        "value": value,
                    }
                )
    return pd.DataFrame(rows)


def read_summary(student_dir: str | Path) -> dict:
    """A distilled student's ``summary.json``."""
    return json.loads((Path(student_dir) / "summary.json").read_text(encoding="utf-8"))


def read_train_log(student_dir: str | Path) -> list[dict]:
    """A distilled student's ``train_log.jsonl`` records."""
    from rokd.distill.distiller import read_log

    return read_log(Path(student_dir) / "train_log.jsonl")


def own_command(summary: dict, student_dir: str | Path) -> str:
    """The ``rokd distill`` command of a student of one's own (from its ``distill_spec.yaml``)."""
    from rokd.distill.api import SPEC_FILE, command_line, load_spec

    return command_line(load_spec(Path(student_dir) / SPEC_FILE))


def size_table(summary: dict) -> pd.DataFrame:
    """Student vs each teacher: parameters, size on disk and the student/teacher ratios."""
    rows = [
        {
            "model": DISPLAY_NAMES.get(summary["student"], summary["student"]),
            "role": "student",
            "params (M)": summary["params"] / 1e6,
            "disk (MB)": summary["disk_mb"],
        }
    ]
    for key, t in summary["teacher_sizes"].items():
        rows.append(
            {
                "model": DISPLAY_NAMES.get(key, key),
                "role": "teacher",
                "params (M)": t["params"] / 1e6,
                "disk (MB)": t["disk_mb"],
            }
        )
    df = pd.DataFrame(rows)
    df["student / model params"] = summary["params"] / 1e6 / df["params (M)"]
    if df["disk (MB)"].notna().all():
        df["student / model disk"] = summary["disk_mb"] / df["disk (MB)"]
    return df


def coverage_table(summary: dict) -> pd.DataFrame:
    """Mean cross-tokenizer coverage over the run, one row per other-vocabulary teacher (empty if none)."""
    rows = [{"teacher": DISPLAY_NAMES.get(k, k), **v} for k, v in summary.get("coverage", {}).items()]
    return pd.DataFrame(rows)


def heldout_table(summaries: dict[str, dict]) -> pd.DataFrame:
    """Held-out MLM accuracy of each student and of its teachers (each model under its own tokenizer).

    ``summaries``: ``{student_key: summary}``. Teachers appear once per student that measured them.
    """
    rows = []
    for key, s in summaries.items():
        for model, acc in s["heldout_mlm_accuracy"].items():
            rows.append(
                {
                    "student run": DISPLAY_NAMES.get(key, key),
                    "model": DISPLAY_NAMES.get(model, model),
                    "role": "student" if model == key else "teacher",
                    "held-out MLM accuracy": acc,
                }
            )
    return pd.DataFrame(rows)


def available_summaries(profile: str, students_root: Path) -> dict[str, dict]:
    """The ``summary.json`` of every distilled student under ``students_root`` (missing ones skipped)."""
    out = {}
    for key in STUDENTS:
        path = Path(students_root) / key / "summary.json"
        if path.is_file():
            out[key] = json.loads(path.read_text(encoding="utf-8"))
    return out


def benchmark_result(profile: str = "mini") -> dict | None:
    """The last ``benchmarks/distill_throughput.py`` result saved for ``profile``'s shapes, if any."""
    path = results_dir(profile) / BENCHMARK_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def alignment_example(text: str, student_tokenizer, teacher_tokenizer) -> pd.DataFrame:
    """Word by word (the student's words): its sub-words, the other teacher's sub-words over the same
    characters, which align one-to-one (same visible characters, unique on both sides) and where the
    vocabulary map joins the two tokens, i.e. where the teacher's distribution can be mapped."""
    import numpy as np
    import torch

    from rokd import mlm
    from rokd.distill.batching import assign_student_words, unique_spans
    from rokd.distill.ensemble import VocabularyMap

    vm = VocabularyMap.from_tokenizers(student_tokenizer, teacher_tokenizer)
    s, t = mlm.tokenize_lines([text], student_tokenizer, 512)[0], mlm.tokenize_lines([text], teacher_tokenizer, 512)[0]
    t_word = assign_student_words(s["word_ids"], s["char_spans"], t["word_ids"], t["char_spans"])
    s_unique, t_unique = unique_spans(s["char_spans"]), unique_spans(t["char_spans"])
    s_tokens = student_tokenizer.convert_ids_to_tokens([int(i) for i in s["input_ids"]])
    t_tokens = teacher_tokenizer.convert_ids_to_tokens([int(i) for i in t["input_ids"]])
    rows = []
    for w in sorted(set(int(x) for x in s["word_ids"] if x >= 0)):
        pos = np.flatnonzero(s["word_ids"] == w)
        t_pos = np.flatnonzero(t_word == w)
        span = (int(s["char_spans"][pos[0]][0]), int(s["char_spans"][pos[-1]][1]))
        aligned, mapped = [], []
        for k in pos:
            sp = tuple(int(x) for x in s["char_spans"][k])
            j = t_unique.get(sp) if s_unique.get(sp) == k else None
            if j is not None:
                aligned.append(s_tokens[k])
                pair = (torch.tensor([int(s["input_ids"][k])]), torch.tensor([int(t["input_ids"][j])]))
                if bool(vm.label_mapped(*pair)[0]):
                    mapped.append(s_tokens[k])
        rows.append(
            {
                "word": text[span[0] : span[1]],
                "student sub-words": " ".join(s_tokens[k] for k in pos),
                "teacher sub-words": " ".join(t_tokens[k] for k in t_pos) if len(t_pos) else "(none)",
                "aligned one-to-one": f"{len(aligned)}/{len(pos)}",
                "vocabulary map hits": " ".join(mapped),
            }
        )
    return pd.DataFrame(rows)


def shares_teacher(students_root: Path, student_a: str, student_b: str, teacher: str) -> bool:
    """True when both students were distilled from the very same ``teacher`` weights (fingerprints in
    their ``distill_config.json``): only then is an ablation between them meaningful."""
    prints = []
    for key in (student_a, student_b):
        path = Path(students_root) / key / "distill_config.json"
        if not path.is_file():
            return False
        prints.append(json.loads(path.read_text(encoding="utf-8")).get("teacher_fingerprints", {}).get(teacher))
    return prints[0] is not None and prints[0] == prints[1]


def heldout_comparison(
    profile: str, students_root: Path, student: str, summary: dict
) -> tuple[pd.DataFrame, str | None]:
    """The held-out MLM accuracy table of ``student`` (and its teachers) beside its one-teacher ablation where
    it has one (:data:`rokd.spec.SINGLE_STUDENT` for :data:`rokd.spec.MULTI_STUDENT`, same tokenizer, same masks),
    and the sentence that reads the ablation (None for a student without one)."""
    summaries = {**available_summaries(profile, students_root), student: summary}
    single, first = SINGLE_STUDENT, MODELS[MULTI_STUDENT].teachers[0]
    comparable = (
        student == MULTI_STUDENT and single in summaries and shares_teacher(students_root, student, single, first)
    )
    table = heldout_table({k: v for k, v in summaries.items() if k == student or (comparable and k == single)})
    if student != MULTI_STUDENT:
        return table, None
    if single not in summaries:
        return table, "The cased-teacher-only student has not been distilled under this profile yet: no ablation row."
    if not comparable:
        return table, (
            "The cased-teacher-only student was distilled from other BERT-base-ro weights "
            "(the teacher was rebuilt since): no ablation until it is distilled again."
        )
    multi, one = summary["heldout_mlm_accuracy"][student], summaries[single]["heldout_mlm_accuracy"][single]
    return table, (
        f"Ablation: the two-teacher student scores **{multi:.4f}**, the cased-teacher-only student "
        f"**{one:.4f}** (difference {multi - one:+.4f}) on the same masks."
    )
