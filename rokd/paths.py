"""Where things live. Every location can be moved with an environment variable.

- ``ROKD_DATA_DIR``: local mirror of the data sets (layout of ``shared/data/MANIFEST.md``).
- ``ROKD_CACHE_DIR``: downloads of the official sources (default ``data/cache``).
- ``ROKD_ARTIFACTS_DIR``: built tokenizers, teachers, students, checkpoints (default ``artifacts``; never committed).
- ``ROKD_RESULTS_DIR``: scores, predictions, loyalty, executed notebooks (default ``results``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path | None:
    """The local mirror given by ``ROKD_DATA_DIR``, or None when unset."""
    value = os.environ.get("ROKD_DATA_DIR")
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    return _env_path("ROKD_CACHE_DIR", REPO_ROOT / "data" / "cache")


def artifacts_dir(profile: str) -> Path:
    return _env_path("ROKD_ARTIFACTS_DIR", REPO_ROOT / "artifacts") / profile


def results_dir(profile: str) -> Path:
    return _env_path("ROKD_RESULTS_DIR", REPO_ROOT / "results") / profile
