"""Where things live. Every location can be moved with an environment variable.

- ``ROKD_DATA_DIR``: local mirror of the data sets (layout of ``shared/data/MANIFEST.md``).
- ``ROKD_CACHE_DIR``: downloads of the official sources (default ``data/cache``).
- ``ROKD_ARTIFACTS_DIR``: built tokenizers, teachers, students, checkpoints (default ``artifacts``; never committed).
- ``ROKD_RESULTS_DIR``: scores, predictions, loyalty, executed notebooks (default ``results``).
- ``ROKD_BUILD_DIR``: the rendered book of ``rokd book`` (default ``_build``; the HTML is in ``<it>/html``).

Outputs stay inside these folders: every name that becomes part of an output path (a profile's
``name``, a model's name in results files) is checked by :func:`check_name`.
"""

from __future__ import annotations

import os
import re
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


def profile_name(profile) -> str:
    """The folder name of a profile: its ``name:`` (also when given as a YAML path or a Profile), checked."""
    from rokd.profiles import Profile, load_profile

    if isinstance(profile, Profile):
        return check_name(profile.name, "profile name")
    text = os.fspath(profile)
    if Path(text).suffix in {".yaml", ".yml", ".json"} or "/" in text or os.sep in text:
        return load_profile(text).name  # a path never becomes part of an output path
    return check_name(text, "profile name")


def artifacts_dir(profile) -> Path:
    """``artifacts/<profile name>`` (``profile``: a name, a YAML path or a Profile)."""
    return _env_path("ROKD_ARTIFACTS_DIR", REPO_ROOT / "artifacts") / profile_name(profile)


def results_dir(profile) -> Path:
    """``results/<profile name>`` (``profile``: a name, a YAML path or a Profile)."""
    return _env_path("ROKD_RESULTS_DIR", REPO_ROOT / "results") / profile_name(profile)


def build_dir() -> Path:
    return _env_path("ROKD_BUILD_DIR", REPO_ROOT / "_build")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=@-]*")


def check_name(name: str, what: str = "name") -> str:
    """``name`` when it is a plain file/folder name (no path separator, no ``..``); a UsageError otherwise."""
    from rokd.errors import UsageError

    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name or len(name) > 200:
        raise UsageError(
            f"{what}: {name!r} is not a plain name (letters, digits, . _ - + = @; no '/', no '..', not starting "
            "with '.'); it becomes a file or folder name under the configured output folders"
        )
    return name
