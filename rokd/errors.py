"""rokd's own errors: the ones meant for users.

``rokd.cli.main`` prints any :class:`RokdError` as one line, ``rokd: error: <message>``, and exits with
its ``exit_code`` (2: the command or its inputs are wrong; 1: something failed while running); the
traceback only with ``--debug`` or ``ROKD_DEBUG=1``. So a message must stand alone: name the file
(or field) and say what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class RokdError(Exception):
    """An error meant for users; its message names the file/field and the fix."""

    exit_code = 1


class UsageError(RokdError):
    """The command line, a profile or another input chosen by the user is wrong (exit code 2)."""

    exit_code = 2


class CorruptFileError(RokdError, ValueError):
    """A file rokd wrote earlier cannot be read back (truncated, bit-flipped, wrong format).

    The message names the file and what to do (delete it, rebuild it). ``cause`` is described by its
    type only: some libraries' messages give unsafe advice (torch suggests ``weights_only=False``).
    """

    def __init__(self, path: str | Path, what: str, fix: str, cause: BaseException | str | None = None):
        self.path = Path(path)
        reason = ""
        if isinstance(cause, BaseException):
            reason = f" ({type(cause).__name__})"
        elif cause:
            reason = f" ({cause})"
        super().__init__(f"{what} {self.path} is unreadable or corrupt{reason}; {fix}")


class OutputDirError(UsageError):
    """An output folder exists, holds files and was not made by rokd: rokd will not replace it."""


class LockedError(RokdError):
    """Another rokd process holds the lock of a profile's pipeline or of an output."""


__all__ = ["RokdError", "UsageError", "CorruptFileError", "OutputDirError", "LockedError"]
