"""Size and speed of the built models, for the results chapter.

- :func:`model_stats`: parameters, size on disk and inference throughput (teacher vs student, timed in
  alternation by :func:`rokd.tasks.speed.compare_throughput`) of the built models.
- :func:`precision_table`: the same models in fp32 / bf16 / int8 (timed in alternation by
  :func:`rokd.tasks.speed.variant_throughput`) beside what each variant costs on the tasks
  (:mod:`rokd.precision_cost`: score change, loyalty to its own fp32 model), from the test predictions
  the fine-tuning writes when the profile sets ``evaluate.variants``.

Both save what they measured (``model_stats.json``, ``precision_speed.csv`` / ``precision_cost.csv``) and
fall back on those records where the models or predictions are not on this machine (a published book).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rokd import io
from rokd.models.registry import DISPLAY_NAMES, MODEL_KEYS, STUDENT_TEACHERS, TEACHERS
from rokd.paper import PAPER_PARAMS_M
from rokd.paths import results_dir


def _results(profile: str, results: str | Path | None) -> Path:
    return Path(results) if results is not None else results_dir(profile)


def _disk_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.suffix in {".safetensors", ".bin"})


def _built_models(prof, keys: list[str]) -> dict:
    """Each model of ``keys`` that is built here (or downloadable), with a two-way classification head."""
    from transformers import AutoModelForSequenceClassification

    from rokd.models.registry import resolve
    from rokd.tasks.finetune import _quiet_transformers

    loaded = {}
    for key in keys:
        ref = resolve(key, prof)
        if ref.source == "local" and not (Path(ref.name_or_path) / "config.json").exists():
            continue  # not built yet: nothing to measure
        try:
            with _quiet_transformers():
                loaded[key] = AutoModelForSequenceClassification.from_pretrained(ref.name_or_path, num_labels=2)
        except OSError:  # a hub model without network: leave it out of the table
            continue
    return loaded


def model_stats(
    profile: str,
    models: list[str] | None = None,
    batch_size: int | None = None,
    seq_length: int | None = None,
    rounds: int | None = None,
    results: str | Path | None = None,
    min_round_s: float = 0.5,
) -> pd.DataFrame:
    """Parameters, size on disk and inference throughput of the built models; saved to ``model_stats.json``.

    Models that are not built (or hub models that cannot be downloaded) are left out; with none at
    all the result is an empty DataFrame.

    Throughput: every model with a 2-way classification head (the fine-tuned setting), random token
    ids of ``batch_size`` x ``seq_length`` (profile's ``evaluate.speed_*``), all models timed in
    alternation. ``speedup_vs_teacher`` is relative to each student's first teacher.
    """
    import torch

    from rokd.models.registry import resolve
    from rokd.profiles import load_profile
    from rokd.tasks.speed import compare_throughput

    prof = load_profile(profile)
    ev = prof.evaluate
    batch_size = batch_size or ev.speed_batch_size
    seq_length = seq_length or ev.speed_seq_length
    rounds = rounds or ev.speed_rounds
    loaded, rows = _built_models(prof, models or list(MODEL_KEYS)), {}
    for key, model in loaded.items():
        ref = resolve(key, prof)
        local = ref.source == "local"
        base = getattr(model, model.base_model_prefix)  # encoder (+ pooler): what the paper counts
        rows[key] = {
            "model": DISPLAY_NAMES.get(key, key),
            "key": key,
            "params_M": io.count_params(base) / 1e6,
            "paper_params_M": PAPER_PARAMS_M.get(key, math.nan),
            "disk_MB": _disk_size(Path(ref.name_or_path)) / 1e6 if local else math.nan,
            "layers": getattr(model.config, "num_hidden_layers", getattr(model.config, "n_layers", None)),
            "hidden": getattr(model.config, "hidden_size", getattr(model.config, "dim", None)),
        }
    if not loaded:
        return pd.DataFrame()
    seq = min(seq_length, *(m.config.max_position_embeddings for m in loaded.values()))
    device = "cuda" if torch.cuda.is_available() and prof.device != "cpu" else "cpu"
    threads_before = torch.get_num_threads()
    if ev.threads > 0:  # the same CPU threads as fine-tuning
        torch.set_num_threads(ev.threads)
    try:
        speed = compare_throughput(loaded, batch_size, seq, rounds=rounds, device=device, min_round_s=min_round_s)
    finally:
        torch.set_num_threads(threads_before)
    for key, r in rows.items():
        r["seq_per_s"] = speed[key]["seq_per_s"]
        teacher = STUDENT_TEACHERS.get(key, (None,))[0]
        r["speedup_vs_teacher"] = (
            r["seq_per_s"] / speed[teacher]["seq_per_s"] if teacher in speed else (1.0 if key in TEACHERS else math.nan)
        )
        r["timing"] = (
            f"{device}"
            + (f" (threads: {torch.get_num_threads() if ev.threads <= 0 else ev.threads})" if device == "cpu" else "")
            + f", batch {batch_size} x {seq} tokens, median of {rounds} alternating rounds"
        )
    out = pd.DataFrame(list(rows.values())).set_index("model")
    path = _results(profile, results) / "model_stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_write_text(path, out.reset_index().to_json(orient="records", indent=2))
    return out


def precision_table(profile: str, results: str | Path | None = None, min_round_s: float = 0.5) -> pd.DataFrame:
    """Teachers and students in fp32 / bf16 / int8: throughput (own fp32, and the fp32 teacher) and the cost.

    Speed: the built teachers and (first-replica) students timed in alternation at the profile's speed shape
    and fine-tuning threads, saved to ``precision_speed.csv``; where none is built, that file is read back.
    Cost: :func:`rokd.precision_cost.precision_cost` over every model whose variant predictions exist (mean
    over tasks and seeds), saved per task and seed to ``precision_cost.csv``, else read back from it. Empty
    when neither was ever measured.
    """
    import torch

    from rokd.precision_cost import COST_COLUMNS, cost_summary, precision_cost
    from rokd.profiles import load_profile
    from rokd.tasks.speed import precision_speed_table, variant_throughput

    prof = load_profile(profile)
    res = _results(profile, results)
    ev = prof.evaluate
    keys = [k for k in MODEL_KEYS if k in TEACHERS or k in STUDENT_TEACHERS]
    speed_file, cost_file = res / "precision_speed.csv", res / "precision_cost.csv"
    loaded = _built_models(prof, keys)
    if loaded:
        seq = min(ev.speed_seq_length, *(m.config.max_position_embeddings for m in loaded.values()))
        threads_before = torch.get_num_threads()
        if ev.threads > 0:
            torch.set_num_threads(ev.threads)
        try:
            speed = variant_throughput(
                loaded, batch_size=ev.speed_batch_size, seq_length=seq, rounds=ev.speed_rounds, min_round_s=min_round_s
            )
        finally:
            torch.set_num_threads(threads_before)
        res.mkdir(parents=True, exist_ok=True)
        io.atomic_write_text(speed_file, speed.to_csv(index=False))
    elif speed_file.exists():
        speed = pd.read_csv(speed_file)
    else:
        return pd.DataFrame()
    variants = [v for v in ("bf16", "int8") if v in set(speed["variant"])]
    try:
        cost = precision_cost(profile, keys, variants=variants, results=res)
        io.atomic_write_text(cost_file, cost.to_csv(index=False))
    except FileNotFoundError:
        cost = pd.read_csv(cost_file).reindex(columns=list(COST_COLUMNS)) if cost_file.exists() else None
    pairs = {k: STUDENT_TEACHERS[k][0] for k in keys if k in STUDENT_TEACHERS}
    table = precision_speed_table(speed, cost_summary(cost) if cost is not None and len(cost) else None, pairs)
    table.insert(
        0,
        "timing",
        f"{speed['device'].iloc[0]}, {int(speed['threads'].iloc[0])} thread(s), batch "
        f"{int(speed['batch_size'].iloc[0])} x {int(speed['seq_length'].iloc[0])}",
    )
    table["model"] = [DISPLAY_NAMES.get(m, m) for m in table["model"]]
    return table
