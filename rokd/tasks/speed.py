"""Inference throughput (sequences / s) of several models, timed in alternation.

Timing the models in alternating rounds (and in a rotated order each round) puts any slow-down of the
machine (another process, thermal throttling) on all of them alike; the median over rounds is kept.
Inputs are random token ids of a fixed shape: speed does not depend on the text.

The measurements of the results chapter live here too, each written as a record in ``results/<profile>/``
that :mod:`rokd.report.speed` reads: :func:`measure_model_stats` (size and speed of teacher vs student,
``model_stats.json``) and :func:`measure_precision_speed` (fp32 / bf16 / int8, ``precision_speed.csv``).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rokd import io

# Records of the measurements below, in results/<profile>/ (read back by rokd.report.speed).
MODEL_STATS_FILE = "model_stats.json"
PRECISION_SPEED_FILE = "precision_speed.csv"


def _results(profile, results) -> Path:
    from rokd.paths import results_dir

    return Path(results) if results is not None else results_dir(profile)


def _sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def random_batch(vocab_size: int, batch_size: int, seq_length: int, device="cpu", seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch_size, seq_length), generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


def compare_throughput(
    models: Mapping[str, object],
    batch_size: int = 8,
    seq_length: int = 128,
    rounds: int = 5,
    batches_per_round: int | None = None,
    device="cpu",
    warmup: int = 1,
    min_round_s: float = 1.0,
) -> dict[str, dict]:
    """Median sequences/s of each model (forward pass, ``torch.inference_mode``), alternating rounds.

    ``batches_per_round`` None: as many batches as make the slowest model's round last about
    ``min_round_s`` (one timed batch of a tiny model is too short to time reliably).

    Returns ``{name: {"seq_per_s": median, "rounds": [...], "batch_size", "seq_length", "device"}}``.
    """
    import torch

    if not models:
        raise ValueError("no models to time")
    batches = {}
    for name, model in models.items():
        model.eval().to(device)
        batches[name] = random_batch(model.config.vocab_size, batch_size, seq_length, device)
    per_round: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    with torch.inference_mode():
        for name in names:
            for _ in range(warmup):
                models[name](**batches[name])
        _sync(device)
        if batches_per_round is None:
            slowest = 0.0
            for name in names:
                t0 = time.perf_counter()
                models[name](**batches[name])
                _sync(device)
                slowest = max(slowest, time.perf_counter() - t0)
            batches_per_round = max(1, math.ceil(min_round_s / max(slowest, 1e-6)))
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
            for name in order:
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(batches_per_round):
                    models[name](**batches[name])
                _sync(device)
                per_round[name].append(batch_size * batches_per_round / (time.perf_counter() - t0))
    return {
        name: {
            "seq_per_s": statistics.median(v),
            "rounds": [round(x, 3) for x in v],
            "batch_size": batch_size,
            "batches_per_round": batches_per_round,
            "seq_length": seq_length,
            "device": str(device),
        }
        for name, v in per_round.items()
    }


def variant_throughput(
    models: Mapping[str, object],
    variants: tuple[str, ...] = ("fp32", "bf16", "int8"),
    batch_size: int = 8,
    seq_length: int = 128,
    rounds: int = 5,
    device="cpu",
    min_round_s: float = 1.0,
):
    """Throughput of every model in every inference variant, all timed in alternation in one run.

    Variants (:func:`rokd.distill.export.make_variant`): ``fp32``; ``bf16`` (weights cast to bfloat16);
    ``int8`` (dynamic quantisation of the Linear layers; CPU only, skipped on a GPU). Returns a DataFrame:
    ``model``, ``variant``, ``seq_per_s``, ``vs_fp32`` (the same model's fp32 throughput), ``params``,
    ``batch_size``, ``seq_length``, ``device``, ``threads``.
    """
    import pandas as pd
    import torch

    from rokd.distill.export import make_variant

    timed = {}
    for name, model in models.items():
        model = model.eval()
        for variant in variants:
            if variant == "int8" and str(device).startswith("cuda"):
                continue
            timed[f"{name}\t{variant}"] = make_variant(model.to("cpu") if variant == "int8" else model, variant)
    speed = compare_throughput(timed, batch_size, seq_length, rounds=rounds, device=device, min_round_s=min_round_s)
    rows = []
    for key, res in speed.items():
        name, variant = key.split("\t")
        fp32 = speed.get(f"{name}\tfp32", {}).get("seq_per_s")
        rows.append(
            {
                "model": name,
                "variant": variant,
                "seq_per_s": res["seq_per_s"],
                "vs_fp32": res["seq_per_s"] / fp32 if fp32 else math.nan,
                "params": io.count_params(models[name]),
                "batch_size": batch_size,
                "seq_length": seq_length,
                "device": str(device),
                "threads": torch.get_num_threads(),
            }
        )
    return pd.DataFrame(rows)


def precision_speed_table(speed, cost=None, pairs: Mapping[str, str] | None = None):
    """The results chapter's table: seq/s of teacher and student in fp32 / bf16 / int8, with the cost.

    ``speed``: :func:`variant_throughput`'s frame. ``pairs``: student -> teacher, to add ``vs teacher fp32``
    (the speed-up a CPU user gets by switching from the fp32 teacher). ``cost``: the summary of
    :func:`rokd.precision_cost.cost_summary` (score change in points, loyalty to fp32 in %), joined on
    model x variant; fp32 rows show no change by definition.
    """
    table = speed[["model", "variant", "params", "seq_per_s", "vs_fp32"]].copy()
    if pairs:
        fp32 = speed[speed["variant"] == "fp32"].set_index("model")["seq_per_s"]
        teacher_of = [pairs.get(m, m) for m in table["model"]]
        table["vs teacher fp32"] = [
            s / fp32[t] if t in fp32 else math.nan for s, t in zip(table["seq_per_s"], teacher_of)
        ]
    if cost is not None:
        table = table.merge(cost.reset_index(), on=["model", "variant"], how="left")
        fp32_rows = table["variant"] == "fp32"  # a model is its own fp32 self: no change, full loyalty
        cost_columns = ["change", "label_loyalty", "prob_loyalty", "regression_loyalty"]
        table.loc[fp32_rows, cost_columns] = [0.0, 100.0, 100.0, 100.0]
    table["params"] = (table["params"] / 1e6).round(1)
    return table.rename(
        columns={
            "params": "params (M)",
            "seq_per_s": "seq/s",
            "vs_fp32": "vs own fp32",
            "change": "score change (points)",
            "label_loyalty": "L-L to fp32 (%)",
            "prob_loyalty": "P-L to fp32 (%)",
            "regression_loyalty": "R-L to fp32 (%)",
        }
    )


def _disk_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.suffix in {".safetensors", ".bin"})


def load_classifiers(prof, keys: list[str]) -> dict:
    """Each model of ``keys`` that is built here (or downloadable), with a two-way classification head."""
    from transformers import AutoModelForSequenceClassification

    from rokd.models.registry import resolve
    from rokd.tasks.finetune import quiet_transformers

    loaded = {}
    for key in keys:
        ref = resolve(key, prof)
        if ref.source == "local" and not (Path(ref.name_or_path) / "config.json").exists():
            continue  # not built yet: nothing to measure
        try:
            with quiet_transformers():
                loaded[key] = AutoModelForSequenceClassification.from_pretrained(ref.name_or_path, num_labels=2)
        except OSError:  # a hub model without network: leave it out of the table
            continue
    return loaded


def measure_model_stats(
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
    all the result is an empty DataFrame and nothing is written. The results chapter reads the record back
    (:func:`rokd.report.model_stats`).

    Throughput: every model with a 2-way classification head (the fine-tuned setting), random token
    ids of ``batch_size`` x ``seq_length`` (profile's ``evaluate.speed_*``), all models timed in
    alternation. ``speedup_vs_teacher`` is relative to each student's first teacher.
    """
    import torch

    from rokd.models.registry import DISPLAY_NAMES, MODEL_KEYS, STUDENT_TEACHERS, TEACHERS, resolve
    from rokd.paper import PAPER_PARAMS_M
    from rokd.profiles import load_profile

    prof = load_profile(profile)
    ev = prof.evaluate
    batch_size = batch_size or ev.speed_batch_size
    seq_length = seq_length or ev.speed_seq_length
    rounds = rounds or ev.speed_rounds
    loaded, rows = load_classifiers(prof, models or list(MODEL_KEYS)), {}
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
    path = _results(profile, results) / MODEL_STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_write_text(path, out.reset_index().to_json(orient="records", indent=2))
    return out


def measure_precision_speed(profile: str, results: str | Path | None = None, min_round_s: float = 0.5):
    """The built teachers and students in fp32 / bf16 / int8, timed in alternation at the profile's speed shape
    and fine-tuning threads (:func:`variant_throughput`); saved to ``precision_speed.csv`` and returned.
    ``None`` (nothing written) when no model is built here."""
    import torch

    from rokd.models.registry import MODEL_KEYS, STUDENT_TEACHERS, TEACHERS
    from rokd.profiles import load_profile

    prof = load_profile(profile)
    ev = prof.evaluate
    loaded = load_classifiers(prof, [k for k in MODEL_KEYS if k in TEACHERS or k in STUDENT_TEACHERS])
    if not loaded:
        return None
    seq = min(ev.speed_seq_length, *(m.config.max_position_embeddings for m in loaded.values()))
    threads_before = torch.get_num_threads()
    if ev.threads > 0:  # the same CPU threads as fine-tuning
        torch.set_num_threads(ev.threads)
    try:
        speed = variant_throughput(
            loaded, batch_size=ev.speed_batch_size, seq_length=seq, rounds=ev.speed_rounds, min_round_s=min_round_s
        )
    finally:
        torch.set_num_threads(threads_before)
    path = _results(profile, results) / PRECISION_SPEED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_write_text(path, speed.to_csv(index=False))
    return speed
