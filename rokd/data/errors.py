"""Errors of the data layer. Each message names the file (and line) and says what to do."""

from __future__ import annotations

import contextlib

from rokd.errors import RokdError


class DataError(RokdError, RuntimeError):
    """Base class: something is wrong with a data file or its source."""


class MissingDataError(DataError, FileNotFoundError):
    """A required data file is absent from the mirror / cache and cannot be fetched."""


class ChecksumError(DataError):
    """A file's content does not match its pinned checksum."""

    def __init__(self, what: str, algorithm: str, expected: str, actual: str, hint: str = ""):
        self.expected, self.actual, self.algorithm = expected, actual, algorithm
        msg = f"checksum mismatch for {what}: expected {algorithm} {expected}, got {actual}."
        super().__init__(msg + (f" {hint}" if hint else ""))


class DataFormatError(DataError, ValueError):
    """A malformed record; the message starts with ``file:line``."""

    def __init__(self, path, line: int | None, problem: str):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@contextlib.contextmanager
def utf8_text(path):
    """Read ``path`` inside this block: a UnicodeDecodeError becomes a DataFormatError naming the file."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise DataFormatError(
            path,
            None,
            f"not UTF-8 text ({e.reason} at byte {e.start} of a chunk); "
            "convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        ) from None
