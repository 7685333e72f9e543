"""Numeric precision and CPU threads: one policy for pretraining, distillation, fine-tuning and inference.

``precision`` (every profile section, every ``--precision`` flag) is one of:

- ``fp32``: float32 everywhere;
- ``bf16``: ``torch.autocast`` to bfloat16 with float32 master weights (training), or weights cast to
  bfloat16 (inference, :func:`inference_dtype`);
- ``fp16``: float16 autocast with a gradient scaler (CUDA only: the free Colab T4, V100);
- ``auto``: bf16 on a CUDA GPU that supports it, fp16 on one that does not; on a CPU, bf16 only when the
  CPU has bf16 instructions (AMX tiles or AVX512-BF16) **and** a short probe shows a bf16 step faster than
  an fp32 one, else fp32.

Why probe instead of trusting the instruction flags: on this project's machines an Intel Xeon with AMX runs
bf16 matmuls ~6.7x faster than fp32, but a Xeon that exposes AVX512-BF16 without AMX ran them at 0.55x
(84 vs 154 GFLOP/s, 1 thread) and a bf16-autocast training step at 0.68x. The flags say what is possible;
only a measurement says what is faster.

Attention on a GPU in bf16/fp16: torch >= 2.10 with a recent cuDNN sends SDPA with a padding mask on Hopper
and Blackwell to cuDNN first, and cuDNN builds an execution plan for every new (batch, length) shape. rokd's
batches follow the corpus's sentence lengths, a new shape almost every step: on a lent H200 a bf16 mini
distillation step took 300 ms against 30 ms in fp32, where cuDNN attention is not used (fine-tuning, one
shape, was as fast in both; modelscope/FunASR#3704 reports the same per-shape cost). So resolving a half
precision on CUDA takes cuDNN out of SDPA's backends (:func:`use_attention_backends`); FlashAttention and
memory-efficient attention serve those shapes without per-shape plans. ``ROKD_CUDNN_SDPA=1`` keeps cuDNN.

Threads: torch's default (one per core) unless ``threads`` (profile) / ``ROKD_THREADS`` (environment) says
otherwise. Measured on a quiet 2-core Xeon, a mini-teacher MLM step ran 1.72x faster at 2 threads than at 1;
two 2-thread jobs on 2 cores slow each other 3-10x, so give each concurrent job 1 thread.
Every run records what it used: :func:`runtime_record`.

Memory and speed on a CPU: glibc serves every buffer above its mmap threshold (at most 32 MiB) with a fresh
mapping that the kernel zero-fills, so a training step's large activations cost kernel time at every step (a
512-line mini teacher step: 7.0 of 23.6 s; 8.2 s with ``ROKD_LOW_MEMORY=1``, which gives every freed buffer
back to the OS for the least memory between steps, :func:`return_freed_memory`). jemalloc preloaded with
freed pages kept (``LD_PRELOAD=.../libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1``) reuses
them without the kernel: 0.74x the step time, holding the step's peak (1.05x glibc's) for the whole run; its
default 10-s decay gives back and costs as much as ``ROKD_LOW_MEMORY``. ``benchmarks/cpu_memory.py`` measures
them side by side; training records which allocator served it (:func:`apply_cpu_memory`).

bf16 on a CPU runs its matmuls through oneDNN, and two caches keep a compiled primitive per matmul shape: oneDNN's
own (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, 1,024 by default) and that of ideep, PyTorch's layer over oneDNN
(``LRU_CACHE_CAPACITY``, 1,024 by default). rokd's batches follow the corpus's sentence lengths, a new shape
almost every step, so both only grow: a bf16 mini teacher build (128 lines, jemalloc) reached 24 GB after 1,000
steps on an AMD EPYC and met the OOM killer; with oneDNN's cache capped it still grew ~0.5 GB a minute, and with
ideep's capped too it held 3.9 GB for hours at the same tokens per second. rokd caps both at
:data:`PRIMITIVE_CACHE_CAPACITY` primitives (:func:`cap_primitive_caches`) unless the environment sets them; the
fp32 builds of earlier sessions held a flat peak without either.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# A bf16 probe must beat fp32 by this factor before `auto` picks it (the probe is short, hence noisy).
PROBE_MARGIN = 1.15


@dataclass(frozen=True)
class Precision:
    """A resolved precision: what a run computes in, on which device, and why."""

    name: str  # "fp32" | "bf16" | "fp16"
    device: str  # "cpu" | "cuda"
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def accelerate_name(self) -> str:
        """The ``mixed_precision`` value of ``accelerate.Accelerator``."""
        return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[self.name]

    def autocast(self):
        """A context manager that runs matmuls in this precision (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=self.dtype)

    def to_dict(self) -> dict:
        return asdict(self)


def check_precision(setting: str, where: str = "precision") -> str:
    """``setting`` if it is a known precision, else a ValueError naming the field and the choices."""
    if setting not in PRECISIONS:
        raise ValueError(f"{where}: {setting!r} is not a precision; choose one of {list(PRECISIONS)}")
    return setting


def cpu_bf16_instructions() -> str | None:
    """Which bf16 instructions this CPU has (``"amx"``, ``"avx512_bf16"``) or None."""
    cpu = getattr(torch, "cpu", None)
    with contextlib.suppress(Exception):
        if cpu is not None and cpu._is_amx_tile_supported():
            return "amx"
    with contextlib.suppress(Exception):
        if cpu is not None and cpu._is_avx512_bf16_supported():
            return "avx512_bf16"
    return None


def _time_step(dtype: torch.dtype | None, rounds: int = 4) -> float:
    """Seconds per forward+backward of a BERT-feed-forward-sized block (2,048 tokens x 256 -> 1,024 -> 256)."""
    gen = torch.Generator().manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 256))
    x = torch.randn(2048, 256, generator=gen)
    ctx = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def step():
        with ctx:
            y = block(x)
        y.float().square().mean().backward()

    step()  # warm-up: kernel selection, allocation
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best


@functools.lru_cache(maxsize=None)
def cpu_bf16_speedup(threads: int) -> float:
    """fp32 step time / bf16-autocast step time on this CPU at ``threads`` threads (probe, ~0.5 s; cached)."""
    with torch.random.fork_rng(devices=[]):
        return _time_step(None) / _time_step(torch.bfloat16)


# What this process has computed in and with how many threads (read by rokd.runinfo for the chapters'
# "Produced by" line): every resolve_precision / set_threads call adds to it.
_SEEN: dict[str, set] = {"precision": set(), "threads": set()}


def process_runtime() -> dict[str, str]:
    """``{"precision": "fp32" | "bf16" | "bf16+fp32" ..., "threads": "2" | "1-2"}`` for this process so far.

    Precision: every precision a run in this process resolved to (``fp32`` when none was resolved: nothing
    asked for reduced precision). Threads: the counts set, plus the current one.
    """
    names = sorted(_SEEN["precision"]) or ["fp32"]
    counts = sorted(_SEEN["threads"] | {torch.get_num_threads()})
    threads = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return {"precision": "+".join(names), "threads": threads}


def resolve_precision(setting: str = "auto", device: str | torch.device = "cpu") -> Precision:
    """Turn a precision setting into what a run on ``device`` will compute in (see the module docstring)."""
    resolved = _resolve(setting, device)
    _SEEN["precision"].add(resolved.name)
    use_attention_backends(resolved)
    return resolved


def use_attention_backends(precision: Precision) -> None:
    """Keep SDPA off cuDNN attention for a half-precision run on CUDA (per-shape plans: module docstring),
    unless ``ROKD_CUDNN_SDPA=1``. A process-wide torch switch; fp32 and CPU runs leave it alone."""
    if precision.device != "cuda" or precision.name == "fp32":
        return
    if os.environ.get("ROKD_CUDNN_SDPA", "").strip() == "1":
        return
    torch.backends.cuda.enable_cudnn_sdp(False)


# The per-shape primitive caches of bf16 matmuls on a CPU (module docstring): oneDNN's and ideep's. Measured side
# by side (benchmarks/cpu_memory.py --precision bf16, AMD EPYC, 128 lines, 40 steps): against both capped, oneDNN's
# default 1,024 held 1.51x the memory between steps and ideep's 1.23x, at 1.07x / 1.02x the step time; in two
# teacher builds side by side, ideep's default grew one by 5.5 GB in 11 minutes while the capped one stayed flat.
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
IDEEP_CACHE_ENV = "LRU_CACHE_CAPACITY"
PRIMITIVE_CACHE_ENVS = (ONEDNN_CACHE_ENV, IDEEP_CACHE_ENV)
PRIMITIVE_CACHE_CAPACITY = 16


def cap_primitive_caches() -> dict[str, str]:
    """Cap oneDNN's and ideep's primitive caches at :data:`PRIMITIVE_CACHE_CAPACITY` unless the environment sets
    them; returns the capacities in force, by variable. Both libraries read their variable when they make their
    first primitive, so this is called before anything in rokd computes on a CPU (resolving a precision,
    training); a process that ran bf16 matmuls before importing rokd keeps the caches it has."""
    return {env: os.environ.setdefault(env, str(PRIMITIVE_CACHE_CAPACITY)) for env in PRIMITIVE_CACHE_ENVS}


def _resolve(setting: str, device: str | torch.device) -> Precision:
    check_precision(setting)
    dev = torch.device(device).type
    if dev == "cpu":
        cap_primitive_caches()  # before the probe below makes the first bf16 primitives
    env = os.environ.get("ROKD_PRECISION")
    if setting == "auto" and env:  # a machine-wide choice (e.g. a benchmark pinning fp32)
        setting = check_precision(env, "ROKD_PRECISION")
        if setting != "auto":
            return _explicit(setting, dev, "ROKD_PRECISION")
    if setting != "auto":
        return _explicit(setting, dev, "asked for")
    if dev == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", dev, "auto: the GPU supports bf16")
        return Precision("fp16", dev, "auto: the GPU has no bf16; fp16 with a gradient scaler")
    if dev != "cpu":
        return Precision("fp32", dev, f"auto: no reduced-precision policy for {dev}")
    isa = cpu_bf16_instructions()
    if isa is None:
        return Precision("fp32", dev, "auto: the CPU has no bf16 instructions")
    ratio = cpu_bf16_speedup(torch.get_num_threads())
    if ratio >= PROBE_MARGIN:
        return Precision("bf16", dev, f"auto: {isa} and a bf16 step {ratio:.2f}x as fast as fp32")
    return Precision(
        "fp32", dev, f"auto: {isa}, but a bf16 step ran {ratio:.2f}x as fast as fp32 (needs {PROBE_MARGIN}x)"
    )


def _explicit(setting: str, dev: str, why: str) -> Precision:
    if setting == "fp16" and dev != "cuda":
        raise ValueError(
            "precision 'fp16' needs a CUDA GPU (fp16 on a CPU is slow and needs a scaler); use 'bf16' or 'fp32'"
        )
    if setting == "bf16" and dev == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision 'bf16': this GPU has no bf16; use 'fp16' or 'auto'")
    return Precision(setting, dev, why)


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU threads: ``threads`` > 0, else ``ROKD_THREADS`` when set, else torch's default.

    Returns the count in use, which every run records.
    """
    env = os.environ.get("ROKD_THREADS", "")
    if threads <= 0 and env.strip():
        try:
            threads = int(env)
        except ValueError as e:
            raise ValueError(f"ROKD_THREADS must be a whole number of threads, got {env!r}") from e
    if threads > 0 and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    _SEEN["threads"].add(torch.get_num_threads())
    return torch.get_num_threads()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_LIMIT_BYTES = 128 * 1024


@functools.cache
def return_freed_memory() -> bool:
    """On glibc (Linux), serve every allocation above 128 KiB with its own mmap, given back when freed.

    Why: glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
    activation buffers come from the heap and stay there when freed. A mini teacher step of 512 lines then
    held 11-13 GB between steps and peaked at 18 GB, and two such builds met the OOM killer on a 24 GB
    machine (2026-11-28); with the fixed threshold the same build fell back to 1-5 GB between steps. The price:
    every step's buffers are mapped and zero-filled by the kernel afresh (``benchmarks/cpu_memory.py``), so
    training applies it only when asked (:func:`low_memory_requested`). True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_LIMIT_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _HEAP_LIMIT_BYTES)
        )
    except (OSError, AttributeError):  # not glibc (musl, ...): leave the allocator alone
        return False


def low_memory_requested() -> bool:
    """``ROKD_LOW_MEMORY=1``: trade CPU training speed for memory (:func:`return_freed_memory`)."""
    return os.environ.get("ROKD_LOW_MEMORY", "").strip() == "1"


def preloaded_allocator() -> str | None:
    """The allocator preloaded in place of glibc's (``LD_PRELOAD``), e.g. ``"jemalloc"``, else None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    return next((name for name in ("jemalloc", "tcmalloc", "mimalloc") if f"lib{name}" in maps), None)


def apply_cpu_memory() -> str:
    """Apply ``ROKD_LOW_MEMORY`` to this process's allocator for CPU training and say what serves it, for the
    run record: ``"glibc"``, ``"glibc, freed memory returned"`` (:func:`return_freed_memory`), or a preloaded
    allocator with its ``MALLOC_CONF`` (e.g. ``"jemalloc dirty_decay_ms:-1,muzzy_decay_ms:-1"``, the fastest
    measured: module docstring), which glibc's settings would not reach. Caps the primitive caches too
    (:func:`cap_primitive_caches`: bf16 training's other memory that grows)."""
    cap_primitive_caches()
    preloaded = preloaded_allocator()
    if preloaded:
        return f"{preloaded} {os.environ.get('MALLOC_CONF', '')}".strip()
    if low_memory_requested() and return_freed_memory():
        return "glibc, freed memory returned"
    return "glibc"


@contextlib.contextmanager
def threads_for(threads: int = 0):
    """Run a block with :func:`set_threads` applied, then restore the previous count."""
    before = torch.get_num_threads()
    try:
        yield set_threads(threads)
    finally:
        torch.set_num_threads(before)


def runtime_record(precision: Precision) -> dict:
    """What a run record stores about how it computed: precision (and why), the thread count, and on the CPU
    the allocator that served it (:func:`apply_cpu_memory`; idempotent, the trainer applied it already)."""
    record = {
        "precision": precision.name,
        "precision_reason": precision.reason,
        "device": precision.device,
        "torch_threads": torch.get_num_threads(),
    }
    if precision.device == "cuda":
        record["cudnn_attention"] = torch.backends.cuda.cudnn_sdp_enabled()
    if precision.device == "cpu":
        record["cpu_memory"] = apply_cpu_memory()
    return record


__all__ = [
    "PRECISIONS",
    "Precision",
    "check_precision",
    "use_attention_backends",
    "cpu_bf16_instructions",
    "cpu_bf16_speedup",
    "resolve_precision",
    "set_threads",
    "apply_cpu_memory",
    "cap_primitive_caches",
    "low_memory_requested",
    "preloaded_allocator",
    "return_freed_memory",
    "threads_for",
    "runtime_record",
    "process_runtime",
]
