"""What produced a result: profile, git commit, hardware, precision and threads, wall time. Printed by every chapter.

``precision`` / ``threads`` default to what this process computed in (:func:`rokd.precision.process_runtime`,
filled in by :meth:`RunInfo.finish`): a chapter runs its step in its own kernel, so that is the step's.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rokd.paths import REPO_ROOT


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() or "unknown"
        # "+dirty": uncommitted changes to what produces results -- not the results themselves (a pipeline run
        # rewrites results/ as it goes; the chapters executed after the first would all look dirty).
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware() -> str:
    """One line: CPU model and cores, GPU if any."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    desc = f"{cpu}, {cores} cores"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


@dataclass
class RunInfo:
    profile: str
    step: str
    seed: int | None = None
    git_commit: str = field(default_factory=git_commit)
    hardware: str = field(default_factory=hardware)
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    torch_version: str = field(default_factory=lambda: __import__("torch").__version__)
    wall_time_s: float | None = None
    precision: str | None = None  # "fp32", "bf16", "bf16+fp32" (several runs); None: not recorded (old lines)
    threads: int | str | None = None  # torch CPU threads ("1-2" when runs used different counts)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def finish(self) -> "RunInfo":
        """Stop the clock; fill precision and threads (when not given) from what this process used."""
        from rokd.precision import process_runtime

        self.wall_time_s = round(time.perf_counter() - self._t0, 1)
        used = process_runtime()
        if self.precision is None:
            self.precision = used["precision"]
        if self.threads is None:
            self.threads = used["threads"]
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_t0")
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def markdown(self) -> str:
        wall = f"{self.wall_time_s:.0f} s" if self.wall_time_s is not None else "running"
        seed = f", seed {self.seed}" if self.seed is not None else ""
        compute = ""
        if self.precision is not None or self.threads is not None:
            threads = "?" if self.threads is None else self.threads
            compute = f"precision {self.precision or '?'}, {threads} thread{'' if str(threads) == '1' else 's'}; "
        return (
            f"**Produced by** profile `{self.profile}`{seed}, commit `{self.git_commit}`, on {self.hardware}; "
            f"torch {self.torch_version}; {compute}started {self.started}; wall time {wall}."
        )

    @classmethod
    def from_markdown(cls, text: str) -> "RunInfo":
        """Parse the line written by :meth:`markdown` (e.g. from an executed chapter's output)."""
        m = _MARKDOWN_RE.search(text)
        if m is None:
            raise ValueError(f"not a RunInfo line: {text[:200]!r}")
        wall = m["wall"]
        threads = m["threads"]
        return cls(
            profile=m["profile"],
            step="",
            seed=int(m["seed"]) if m["seed"] else None,
            git_commit=m["commit"],
            hardware=m["hardware"],
            torch_version=m["torch"],
            started=m["started"],
            wall_time_s=None if wall == "running" else float(wall.removesuffix(" s")),
            precision=m["precision"],
            threads=int(threads) if threads and threads.isdigit() else threads,
        )


_MARKDOWN_RE = re.compile(
    r"\*\*Produced by\*\* profile `(?P<profile>[^`]+)`(?:, seed (?P<seed>\d+))?, commit `(?P<commit>[^`]+)`, "
    r"on (?P<hardware>.+?); torch (?P<torch>[^;]+); "
    r"(?:precision (?P<precision>[^,;]+), (?P<threads>[^ ;]+) threads?; )?"  # absent from older lines
    r"started (?P<started>[^;]+); wall time (?P<wall>running|[\d.]+ s)\."
)
