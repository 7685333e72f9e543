"""Tables for the distillation chapter, read from a student's folder (``train_log.jsonl``, ``summary.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rokd.models.registry import DISPLAY_NAMES, STUDENTS
from rokd.paths import results_dir

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
    names = {"stat_coverage": "masked positions covered", "stat_mapped_mass": "probability mass mapped"}
    rows = []
    for rec in log:
        for key, value in rec.items():
            stem, _, teacher = key.partition(".")
            if stem in names:
                rows.append({"step": rec["step"], "teacher": DISPLAY_NAMES.get(teacher, teacher), "measure": names[stem], "value": value})
    return pd.DataFrame(rows)


def size_table(summary: dict) -> pd.DataFrame:
    """Student vs each teacher: parameters, size on disk and the student/teacher ratios."""
    rows = [{"model": DISPLAY_NAMES.get(summary["student"], summary["student"]), "role": "student",
             "params (M)": summary["params"] / 1e6, "disk (MB)": summary["disk_mb"]}]
    for key, t in summary["teacher_sizes"].items():
        rows.append({"model": DISPLAY_NAMES.get(key, key), "role": "teacher", "params (M)": t["params"] / 1e6, "disk (MB)": t["disk_mb"]})
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
            rows.append({"student run": DISPLAY_NAMES.get(key, key), "model": DISPLAY_NAMES.get(model, model),
                         "role": "student" if model == key else "teacher", "held-out MLM accuracy": acc})
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
    """Word by word: the student's and the other teacher's sub-words, and which sub-words align
    one-to-one (same characters), i.e. where the teacher's distribution can be mapped."""
    from rokd.distill.ensemble import VocabularyMap

    vm = VocabularyMap.from_tokenizers(student_tokenizer, teacher_tokenizer)
    s = student_tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    t = teacher_tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)

    def words(enc):
        out: dict[int, list[tuple[str, tuple[int, int], int]]] = {}
        for i, w in enumerate(enc.word_ids()):
            if w is not None:
                out.setdefault(w, []).append((enc.tokens()[i], tuple(enc["offset_mapping"][i]), enc["input_ids"][i]))
        return out

    s_words, t_words = words(s), words(t)
    t_by_span = {(toks[0][1][0], toks[-1][1][1]): toks for toks in t_words.values()}
    rows = []
    for toks in s_words.values():
        span = (toks[0][1][0], toks[-1][1][1])
        t_toks = t_by_span.get(span, [])
        t_spans = {sp: tid for _, sp, tid in t_toks}
        aligned = [tok for tok, sp, sid in toks if sp in t_spans]
        mapped = [tok for tok, sp, sid in toks if sp in t_spans and int(vm.target[sid]) == t_spans[sp]]
        rows.append({
            "word": text[span[0]:span[1]],
            "student sub-words": " ".join(tok for tok, _, _ in toks),
            "teacher sub-words": " ".join(tok for tok, _, _ in t_toks) if t_toks else "(word not found)",
            "aligned one-to-one": f"{len(aligned)}/{len(toks)}",
            "vocabulary map hits": " ".join(mapped),
        })
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
