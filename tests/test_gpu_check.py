"""benchmarks/gpu_check.py keeps working on a CPU (it is run on a GPU whenever one is available)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_on_cpu_with_tiny_sizes_and_without_the_data_libraries():
    # A fresh interpreter: the script itself fails if datasets/seqeval/conllu/papermill got imported.
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--device",
            "cpu",
            "--tiny",
            "--steps",
            "2",
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT),
            "TOKENIZERS_PARALLELISM": "false",
        },
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[-1] == "gpu_check: ok"
    steps = {line.split()[0] for line in lines if "tokens/s" in line}
    assert steps == {"distill", "distill-fix", "finetune", "infer-t", "infer-s"}
    assert all("peak" in line and " tiny " in line for line in lines if "tokens/s" in line)
