"""Inference throughput (sequences / s) of several models, timed in alternation.

Timing the models in alternating rounds (and in a rotated order each round) puts any slow-down of the
machine (another process, thermal throttling) on all of them alike; the median over rounds is kept.
Inputs are random token ids of a fixed shape: speed does not depend on the text.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping

from rokd import io


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
