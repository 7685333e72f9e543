"""benchmarks/cpu_memory.py keeps working (its figures come from a run on a quiet CPU, recorded in
results/benchmarks/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares glibc allocator settings: Linux only")
def test_cpu_memory_benchmark_compares_both_allocators_side_by_side():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cpu_memory.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=True,
    ).stdout
    assert "low memory    peak" in out and "(applied: True)" in out  # ROKD_LOW_MEMORY's setting took effect
    assert "glibc default peak" in out and "(applied: False)" in out
    for bs in (4, 32):
        assert f"batch {bs}: step time low-memory/default" in out
    assert "peak low-memory/default" in out
