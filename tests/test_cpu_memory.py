"""benchmarks/cpu_memory.py keeps working (its figures come from a run on a quiet CPU, recorded in
results/benchmarks/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _benchmark(*args: str) -> str:
    """What ``benchmarks/cpu_memory.py --tiny *args`` prints."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "cpu_memory.py"), "--tiny", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=True).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares glibc allocator settings: Linux only")
def test_cpu_memory_benchmark_compares_the_allocator_settings_side_by_side():
    out = _benchmark()
    for allocator, applied in [("glibc default", "glibc"), ("return", "glibc, freed memory returned")]:
        assert f"{allocator:13s} peak" in out and f"(applied: {applied};" in out  # each setting took effect
    for label in ("return",):
        for bs in (4, 32):
            assert f"batch {bs}: step time {label}/default" in out
        assert f"peak {label}/default" in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares glibc allocator settings: Linux only")
def test_cpu_memory_benchmark_sets_onednns_cache_beside_rokds_cap_in_bf16():
    out = _benchmark("--precision", "bf16", "--sizes", "4")
    from rokd.precision import ONEDNN_CACHE_CAPACITY

    assert "glibc default peak" in out and f"oneDNN cache {ONEDNN_CACHE_CAPACITY})" in out  # rokd's cap
    assert f"{'oneDNN 1024':13s} peak" in out and "oneDNN cache 1024)" in out  # the default beside it
    assert "batch 4: step time oneDNN-1024/default" in out
