"""Size and speed of the built models, for the results chapter.

- :func:`model_stats`: parameters, size on disk and inference throughput (teacher vs student, timed in
  alternation by :func:`rokd.tasks.speed.compare_throughput`) of the built models.

Other speed tables (e.g. fp32 / bf16 / int8 inference of the same model) belong in this module, beside
:func:`model_stats`, and are re-exported by :mod:`rokd.report`.
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
    from transformers import AutoModelForSequenceClassification

    from rokd.models.registry import resolve
    from rokd.profiles import load_profile
    from rokd.tasks.finetune import _quiet_transformers
    from rokd.tasks.speed import compare_throughput

    prof = load_profile(profile)
    ev = prof.evaluate
    batch_size = batch_size or ev.speed_batch_size
    seq_length = seq_length or ev.speed_seq_length
    rounds = rounds or ev.speed_rounds
    loaded, rows = {}, {}
    for key in models or list(MODEL_KEYS):
        ref = resolve(key, prof)
        local = ref.source == "local"
        if local and not (Path(ref.name_or_path) / "config.json").exists():
            continue  # not built yet: nothing to measure
        try:
            with _quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(ref.name_or_path, num_labels=2)
        except OSError:  # a hub model without network: leave it out of the table
            continue
        base = getattr(model, model.base_model_prefix)  # encoder (+ pooler): what the paper counts
        loaded[key] = model
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
