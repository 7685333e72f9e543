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
            order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
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


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
