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
def test_cpu_memory_benchmark_sets_each_primitive_cache_beside_rokds_caps_in_bf16():
    out = _benchmark("--precision", "bf16", "--sizes", "4")
    from rokd.precision import PRIMITIVE_CACHE_CAPACITY as cap

    lines = {line.split(" peak ")[0].strip(): line for line in out.splitlines() if " peak " in line}
    assert f"oneDNN cache {cap}, ideep cache {cap})" in lines["glibc default"]  # rokd's caps
    assert f"oneDNN cache 1024, ideep cache {cap})" in lines["oneDNN 1024"]  # one library's default beside them
    assert f"oneDNN cache {cap}, ideep cache 1024)" in lines["ideep 1024"]
    assert "batch 4: step time oneDNN-1024/default" in out and "batch 4: step time ideep-1024/default" in out
