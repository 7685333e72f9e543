"""File-system rules every step follows, in one place.

- **Atomic writes**: :func:`atomic_write_text` / :func:`atomic_write_json` write a temp file beside the
  target and ``os.replace`` it in, so a kill leaves the old file or the new one, never half of one;
  :func:`atomic_path` does the same for writers that take a file name (``np.savez``, ``to_csv``).
- **Locks**: :func:`lock` takes an exclusive ``fcntl.flock`` on a lock file and records the holder (pid,
  start time, command) in it. A second run waits (``wait=True``) or stops with a one-line
  :class:`~rokd.errors.LockedError` naming the holder. The kernel drops the lock when its holder dies.
- **Output folders rokd replaces** carry a marker file (:data:`OUTPUT_MARKER`, written by
  :func:`mark_output`). :func:`replace_dir` renames a staged folder over a target only when the target
  is absent, empty or marked; a user's folder is refused (:class:`~rokd.errors.OutputDirError`) and
  never deleted.
- **Reading**: :func:`read_json` (None for a missing or damaged file), :func:`read_jsonl`, :func:`file_sha256`;
  :func:`count_params` counts a model's parameters.
- **Weights checksums**: :func:`write_weights_sha256` writes ``weights.sha256`` (``sha256sum`` format) beside
  a saved model; :func:`weights_problem` tells whether the weights are complete and unchanged.
- **Model folders**: :func:`write_model` saves a model and its tokenizer (safetensors) with their checksums into
  a stage; :func:`save_model` does it in a stage of its own and swaps it in with :func:`replace_dir`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rokd.errors import LockedError, OutputDirError

OUTPUT_MARKER = ".rokd-output"
WEIGHTS_SHA_FILE = "weights.sha256"


# ----------------------------------------------------------------------------------------- writes


def temp_sibling(path: str | Path, tag: str = "tmp") -> Path:
    """A hidden, per-process name beside ``path`` (same folder, so ``os.replace`` is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{tag}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that takes a file name (``np.savez``, ``DataFrame.to_csv``,
    ``save_model``): renamed onto ``path`` when the block ends, removed if it raises. ``suffix``: an ending the
    writer insists on (``np.savez`` adds ``.npz`` to any other name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, "tmp" + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, **dump_kwargs: Any) -> Path:
    dump_kwargs.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(obj, **dump_kwargs) + "\n")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: str | Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing, empty, truncated or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def read_jsonl(path: str | Path, missing_ok: bool = False) -> list[dict]:
    """The records of a JSON-lines file (blank lines skipped); ``[]`` for a missing file when ``missing_ok``."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def count_params(model: Any) -> int:
    """The parameters of a torch module (tied weights once: ``parameters()`` yields a shared tensor once)."""
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------ locks


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def lock_holder(path: str | Path) -> str:
    """Who holds (or last held) the lock file ``path``, as written by :func:`lock`."""
    info = read_json(path)
    if not isinstance(info, dict):
        return "holder unknown"
    cmd = f", `{info['command']}`" if info.get("command") else ""
    return f"pid {info.get('pid')}, started {info.get('started')}{cmd}"


@contextlib.contextmanager
def lock(
    path: str | Path, what: str, *, wait: bool = False, hint: str = "", log: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    Taken: the holder's pid, start time and command are written into the file. Busy: with ``wait`` it
    blocks (saying so through ``log``); without, it raises :class:`LockedError` naming the holder,
    ``what`` is locked and ``hint`` (e.g. "or rerun with --wait").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by subprocesses (O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(path)
            if not wait:
                raise LockedError(
                    f"{what} is in use by another rokd run ({holder}; lock file {path}); wait for it to finish{hint}"
                ) from None
            if log:
                log(f"waiting for {what}: in use by {holder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        record = {
            "pid": os.getpid(),
            "started": _now(),
            "command": " ".join(["rokd", *sys.argv[1:]])
            if Path(sys.argv[0]).name in {"rokd", "cli.py", "__main__.py"}
            else " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock


# ------------------------------------------------------------------------- folders rokd replaces


def mark_output(folder: str | Path, what: str) -> Path:
    """Write the marker that says rokd made ``folder`` (so a later run may replace it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OUTPUT_MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"made_by": "rokd", "what": what, "created": _now()}) + "\n", encoding="utf-8")
    return marker


def is_rokd_output(folder: str | Path, legacy: Sequence[str] = ()) -> bool:
    """``folder`` has rokd's marker (or, for folders written before markers existed, one of ``legacy``)."""
    folder = Path(folder)
    return (folder / OUTPUT_MARKER).is_file() or any((folder / name).exists() for name in legacy)


def check_replaceable(folder: str | Path, what: str, legacy: Sequence[str] = ()) -> None:
    """Raise :class:`OutputDirError` unless ``folder`` is absent, empty or made by rokd."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir() or folder.is_symlink():
        raise OutputDirError(f"{folder} exists and is not a folder; choose another place for {what}")
    if is_rokd_output(folder, legacy):
        return
    entries = sorted(p.name for p in folder.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
        raise OutputDirError(
            f"refusing to use {folder} for {what}: it is not empty ({shown}) and was not made by rokd "
            f"(no {OUTPUT_MARKER} file), so replacing it could lose your files; choose a new or empty folder"
        )


def make_stage(target: str | Path, what: str) -> Path:
    """A new, marked temp folder beside ``target`` in which to build what will replace it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.stage-", dir=target.parent))
    stage.chmod(0o755)  # mkdtemp makes a private folder; a built model is shared like any artifact
    mark_output(stage, what)
    return stage


def replace_dir(stage: str | Path, target: str | Path, what: str, legacy: Sequence[str] = ()) -> Path:
    """Rename the finished ``stage`` to ``target``; an existing ``target`` must be rokd's (or empty)."""
    stage, target = Path(stage), Path(target)
    check_replaceable(target, what, legacy)
    mark_output(stage, what)
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / "x")
        os.rename(stage, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(stage, target)
    return target


def remove_dir(folder: str | Path, what: str, legacy: Sequence[str] = ()) -> None:
    """Delete a folder rokd made (a stale work or checkpoint folder); refuse anyone else's."""
    folder = Path(folder)
    if not folder.exists():
        return
    check_replaceable(folder, what, legacy)
    shutil.rmtree(folder)


# ------------------------------------------------------------------------------ weights checksums


def safetensors_problem(path: str | Path) -> str | None:
    """None when ``path`` is a complete safetensors file (header parses, size matches), else the problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "shorter than a safetensors header"
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100 << 20):
                return "header length out of range"
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as e:
        return f"unreadable header ({type(e).__name__})"
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    expected = 8 + n + max(ends, default=0)
    if size != expected:
        return f"{size} bytes, the header describes {expected} (truncated or padded)"
    return None


def write_weights_sha256(folder: str | Path, pattern: str = "*.safetensors") -> Path:
    """Record the sha256 of the weight files of ``folder`` in ``weights.sha256`` (``sha256sum -c`` format)."""
    folder = Path(folder)
    lines = [f"{file_sha256(p)}  {p.name}\n" for p in sorted(folder.glob(pattern))]
    return atomic_write_text(folder / WEIGHTS_SHA_FILE, "".join(lines))


def write_tokenizer(folder: str | Path, tokenizer: Any) -> Path:
    """``tokenizer.save_pretrained(folder)`` without the state of its last call.

    A fast tokenizer's backend keeps the truncation and padding of the last encode, and ``save_pretrained``
    writes them into ``tokenizer.json``: two saves of one vocabulary would differ in bytes, and so in every
    fingerprint of the file (a control is keyed on its teacher's). Each call sets them again, so clearing them
    changes no later encoding.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    tokenizer.save_pretrained(str(folder))
    return Path(folder)


def write_model(folder: str | Path, model: Any, tokenizer: Any) -> Path:
    """``save_pretrained`` of ``model`` (safetensors) and ``tokenizer`` (:func:`write_tokenizer`) into ``folder``
    (usually a stage of :func:`make_stage`), with the weights' checksums (:func:`write_weights_sha256`)."""
    folder = Path(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    write_tokenizer(folder, tokenizer)
    write_weights_sha256(folder)
    return folder


def save_model(
    target: str | Path,
    model: Any,
    tokenizer: Any,
    what: str,
    extra_files: dict[str, str] | None = None,
    legacy: Sequence[str] = (),
) -> Path:
    """:func:`write_model` plus ``extra_files`` (name -> text) into a stage beside ``target``, then swapped in by
    :func:`replace_dir`: a crash never leaves half a model, and only a folder rokd made is replaced."""
    stage = make_stage(target, what)
    try:
        write_model(stage, model, tokenizer)
        for name, text in (extra_files or {}).items():
            (stage / name).write_text(text, encoding="utf-8")
        return replace_dir(stage, target, what, legacy)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def read_weights_sha256(folder: str | Path) -> dict[str, str] | None:
    path = Path(folder) / WEIGHTS_SHA_FILE
    if not path.is_file():
        return None
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        sha, _, name = line.partition("  ")
        if len(sha) == 64 and name:
            out[name] = sha
    return out


def weights_problem(folder: str | Path, weights: str = "model.safetensors") -> str | None:
    """None when ``folder``'s weights are complete and match ``weights.sha256``, else what is wrong.

    Folders saved before checksums were recorded (no ``weights.sha256``) get the structural check only.
    """
    folder = Path(folder)
    path = folder / weights
    if not path.is_file():
        return f"{path} is missing"
    recorded = read_weights_sha256(folder)
    if recorded is None:
        problem = safetensors_problem(path)
        return f"{path}: {problem}" if problem else None
    if weights not in recorded:
        return f"{folder / WEIGHTS_SHA_FILE} has no entry for {weights}"
    actual = file_sha256(path)
    if actual != recorded[weights]:
        return f"{path} does not match its recorded sha256 (expected {recorded[weights][:12]}..., got {actual[:12]}...)"
    return None


__all__ = [
    "OUTPUT_MARKER",
    "WEIGHTS_SHA_FILE",
    "temp_sibling",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "file_sha256",
    "read_json",
    "lock",
    "lock_holder",
    "mark_output",
    "is_rokd_output",
    "check_replaceable",
    "make_stage",
    "replace_dir",
    "remove_dir",
    "safetensors_problem",
    "write_weights_sha256",
    "read_weights_sha256",
    "weights_problem",
]
