"""CPU memory and speed of a teacher pretraining step under each allocator, against glibc's default.

glibc serves every buffer above its mmap threshold (at most 32 MiB) with a fresh mapping that the kernel
zero-fills, so a step's large activations cost kernel time at every step. Compared: glibc's default;
``return`` (``ROKD_LOW_MEMORY=1``: a fixed mmap threshold, every freed buffer goes back to the OS); and, where
the system has it, jemalloc preloaded with its default decay and with freed pages kept (no decay). Each
allocator runs in its own process (the setting is process-wide), one after the other, 1 thread: a fresh
teacher of the ``mini`` shape, the MLM step of ``rokd.models.teachers`` (SparseMLM, cross-entropy at the masked
positions, AdamW), on random sentences of 8-128 tokens, at batches of 64 and 512 lines. Per allocator and
batch size it prints the median step time and its kernel (system) time, the resident memory left between
steps (after the optimizer step, the smallest and the largest over the timed steps) and the process's peak;
then the ratios, side by side.

``--precision bf16`` runs the steps under bf16 autocast and adds glibc with oneDNN's primitive cache at its
default 1,024 entries (``oneDNN 1024``) and with ideep's (PyTorch's layer over oneDNN) at its default 1,024
(``ideep 1024``), each beside rokd's caps of both (``rokd.precision.cap_primitive_caches``): bf16 matmuls cache
a primitive per shape in each, and with a new length at every step an uncapped cache keeps growing (give it
enough steps, e.g. ``--steps 150 --sizes 128``, to see it).

    python benchmarks/cpu_memory.py                    # mini shape, 64 and 512 lines (~4 min on one core)
    python benchmarks/cpu_memory.py --precision bf16 --sizes 128 --steps 150   # the oneDNN cache (bf16 CPUs)
    python benchmarks/cpu_memory.py --tiny             # what CI runs (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from rokd.precision import IDEEP_CACHE_ENV, ONEDNN_CACHE_ENV, PRIMITIVE_CACHE_ENVS  # noqa: E402  (after the path above)

SHAPES = {
    "tiny": dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "mini": dict(vocab_size=8000, hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024),
}


# name -> the environment of its process ("jemalloc": preloaded with that MALLOC_CONF)
ALLOCATORS = {
    "glibc default": {},
    "return": {"ROKD_LOW_MEMORY": "1"},
    "jemalloc": {"jemalloc": ""},
    "jemalloc keep": {"jemalloc": "dirty_decay_ms:-1,muzzy_decay_ms:-1"},
}
# bf16 only: glibc's default with one primitive cache at its library's default size (rokd caps both unless the
# environment sets them), against "glibc default" (both capped)
UNCAPPED_CACHES = {"oneDNN 1024": {ONEDNN_CACHE_ENV: "1024"}, "ideep 1024": {IDEEP_CACHE_ENV: "1024"}}
CACHE_NAMES = {ONEDNN_CACHE_ENV: "oneDNN", IDEEP_CACHE_ENV: "ideep"}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(
    allocator: str, shape: str, batch_sizes: list[int], steps: int, warmup: int, max_length: int, bf16: bool = False
) -> dict:
    """One process: steps at each batch size with ``allocator`` (a key of :data:`ALLOCATORS`)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from rokd import mlm
    from rokd.precision import apply_cpu_memory

    torch.set_num_threads(1)
    applied = apply_cpu_memory()
    torch.manual_seed(0)
    cfg = BertConfig(**SHAPES[shape], max_position_embeddings=max(128, max_length), attn_implementation="sdpa")
    net = mlm.SparseMLM(BertForMaskedLM(cfg)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=False)
    gen = torch.Generator().manual_seed(1)
    results = {"allocator": allocator, "applied": applied, "sizes": {}}
    results["caches"] = ", ".join(f"{CACHE_NAMES[env]} cache {os.environ.get(env, '')}" for env in PRIMITIVE_CACHE_ENVS)
    for bs in batch_sizes:
        times, between, kernel = [], [], []
        for i in range(warmup + steps):
            length = int(torch.randint(8, max_length + 1, (1,), generator=gen))  # a new shape, as in a corpus
            ids = torch.randint(5, cfg.vocab_size, (bs, length), generator=gen)
            labels = torch.full_like(ids, -100)
            masked = torch.rand(ids.shape, generator=gen) < 0.15
            labels[masked] = ids[masked]
            t0, sys0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(ids, torch.ones_like(ids), labels)
            torch.nn.functional.cross_entropy(out.logits.float(), out.targets).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
                kernel.append(resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0)
                between.append(rss_mb())
        results["sizes"][str(bs)] = {
            "step_s": statistics.median(times),
            "kernel_s": statistics.median(kernel),
            "between_min_mb": min(between),
            "between_max_mb": max(between),
        }
    results["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shape and batches (CI)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per batch size (default 4; 2 with --tiny)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="batch sizes (default 64 512; 4 32 with --tiny)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="the steps' precision (default fp32)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one allocator's process
    args = ap.parse_args(argv)
    shape = "tiny" if args.tiny else "mini"
    sizes = args.sizes or ([4, 32] if args.tiny else [64, 512])
    steps = args.steps or (2 if args.tiny else 4)
    max_length = 16 if args.tiny else 128
    if args.worker:
        bf16 = args.precision == "bf16"
        print(json.dumps(measure(args.worker, shape, sizes, steps, 1 if args.tiny else 2, max_length, bf16)))
        return 0
    if not sys.platform.startswith("linux"):
        print("cpu_memory: glibc's allocator is Linux only; nothing to compare here")
        return 0
    from rokd.runinfo import hardware

    print(f"machine: {hardware()}; shape {shape}; 1 thread; {args.precision}; {steps} timed steps per batch size")
    runs = {}
    variants = {**ALLOCATORS, **(UNCAPPED_CACHES if args.precision == "bf16" else {})}
    jemalloc = find_jemalloc()  # the allocator PyTorch's CPU tuning guide suggests, preloaded into the process
    drop = ("LD_PRELOAD", "MALLOC_CONF", "ROKD_LOW_MEMORY", *PRIMITIVE_CACHE_ENVS)
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    for allocator, spec in variants.items():
        if "jemalloc" in spec and not jemalloc:
            continue
        conf = {k: v for k, v in spec.items() if k != "jemalloc"}
        if "jemalloc" in spec:
            conf.update(LD_PRELOAD=jemalloc, MALLOC_CONF=spec["jemalloc"])
        env = {**clean, **conf}
        tiny = ["--tiny"] if args.tiny else []
        cmd = [sys.executable, __file__, "--worker", allocator, "--precision", args.precision, "--steps", str(steps)]
        cmd += ["--sizes", *map(str, sizes), *tiny]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        runs[allocator] = json.loads(out.stdout.strip().splitlines()[-1])
    for allocator, r in runs.items():
        for bs, m in r["sizes"].items():
            print(
                f"{allocator:13s} batch {bs:>4s}: {m['step_s']:.3f} s/step ({m['kernel_s']:.3f} s in the kernel), "
                f"between steps {m['between_min_mb']:,.0f}-{m['between_max_mb']:,.0f} MiB"
            )
        print(f"{allocator:13s} peak {r['peak_mb']:,.0f} MiB (applied: {r['applied']}; {r['caches']})")
    base = runs["glibc default"]
    for allocator in [a for a in runs if a != "glibc default"]:
        ours, label = runs[allocator], allocator.replace(" ", "-")
        for bs in base["sizes"]:
            b, o = base["sizes"][bs], ours["sizes"][bs]
            print(
                f"batch {bs}: step time {label}/default {o['step_s'] / b['step_s']:.2f}x; "
                f"memory between steps (largest) {label}/default {o['between_max_mb'] / b['between_max_mb']:.2f}x"
            )
        print(f"peak {label}/default {ours['peak_mb'] / base['peak_mb']:.2f}x")
    if not jemalloc:
        print("jemalloc: not found (e.g. apt install libjemalloc2), not compared")
    return 0


def find_jemalloc() -> str | None:
    """The path of a jemalloc shared library to preload, if the system has one."""
    import glob

    found = sorted(glob.glob("/usr/lib/*/libjemalloc.so*") + glob.glob("/usr/lib/libjemalloc.so*"))
    return found[0] if found else None


if __name__ == "__main__":
    sys.exit(main())
