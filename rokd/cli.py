"""The ``rokd`` command line. Each step registers its own sub-commands (``register(subparsers)``).

Errors meant for users (:class:`rokd.errors.RokdError`, and operating-system errors such as a missing
file) are printed as one line, ``rokd: error: <message>``; the exit code is 2 for a wrong command or
input (usage) and 1 for a failure while running. ``--debug`` (anywhere on the line) or ``ROKD_DEBUG=1``
also prints the traceback. Any other exception is a bug in rokd and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from rokd.errors import RokdError

# (module, help) pairs; a module exposes ``register(subparsers)``. Order = order in ``rokd --help``.
STEP_CLIS = (
    "rokd.data.cli",
    "rokd.models.cli",
    "rokd.distill.cli",
    "rokd.tasks.cli",
    "rokd.loyalty_cli",
    "rokd.pipeline",
    "rokd.book",
    "rokd.checks",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rokd", description="Distil Romanian BERTs with multiple teachers.")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of errors too (also ROKD_DEBUG=1; accepted anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STEP_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # step not installed in this build of rokd
                continue
            raise
        module.register(sub)
    return parser


def one_line(message: str) -> str:
    """A message on one line (multi-line messages are joined with spaces)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def user_error(exc: BaseException) -> tuple[int, str] | None:
    """``(exit code, one-line message)`` for an error meant for users; None for anything else (a bug)."""
    if isinstance(exc, RokdError):
        return exc.exit_code, one_line(str(exc))
    if isinstance(exc, OSError):  # a missing file, no permission, a full disk: the message names the file
        if exc.filename is not None and exc.strerror:
            return 1, one_line(f"{exc.strerror}: {exc.filename}")
        return 1, one_line(str(exc))
    return None


def _debug_from_env() -> bool:
    return os.environ.get("ROKD_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_from_env() or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        described = user_error(exc)
        if described is None:  # not an error rokd knows: keep the whole traceback
            raise
        if debug:
            traceback.print_exc()
        code, message = described
        print(f"rokd: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
