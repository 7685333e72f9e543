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

# The steps' command lines, in pipeline order (= order in ``rokd --help``): each ``<package>/cli.py`` exposes
# ``register(subparsers)`` and adds a command named like its package (older names kept as aliases:
# ``teachers`` = ``models``, ``evaluate`` = ``tasks``). The tools around the steps are registered below.
STEP_CLIS = (
    "rokd.data.cli",
    "rokd.models.cli",
    "rokd.distill.cli",
    "rokd.tasks.cli",
    "rokd.loyalty.cli",
    "rokd.report.cli",
)


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from rokd.pipeline import run

    run(args.profile, only=args.only, force=args.force, wait=args.wait)
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from rokd.book import build

    build(args.profile, fresh=args.fresh, wait=args.wait)
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from rokd.book import COLAB_DIR, sync_colab_notebooks

    stale = sync_colab_notebooks(check=args.check)
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run `rokd notebooks sync`)")
        return 1 if stale else 0
    print(f"{len(stale)} runnable notebook(s) updated in {COLAB_DIR}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from rokd.checks import run_all

    return run_all(args.profile)


def register_tools(sub) -> None:
    """``rokd pipeline``, ``rokd book``, ``rokd notebooks sync`` and ``rokd check``."""
    p = sub.add_parser("pipeline", help="run every chapter notebook of a profile (cached)")
    p.add_argument("--profile", default="smoke", help="profile name (smoke, mini, paper) or YAML path")
    p.add_argument("--only", nargs="*", help="run only these steps (names or notebook stems)")
    p.add_argument("--force", action="store_true", help="ignore the cache")
    p.add_argument("--wait", action="store_true", help="if another run of this profile is going, wait for it")
    p.set_defaults(func=_cmd_pipeline)
    p = sub.add_parser("book", help="build the Jupyter Book from a profile's executed notebooks")
    p.add_argument("--profile", default="smoke")
    p.add_argument(
        "--fresh", action="store_true", help="delete the build folder (ROKD_BUILD_DIR, default _build) first"
    )
    p.add_argument(
        "--wait", action="store_true", help="if another book build or this profile's pipeline is going, wait"
    )
    p.set_defaults(func=_cmd_book)
    p = sub.add_parser("notebooks", help="notebook utilities")
    nsub = p.add_subparsers(dest="notebooks_command", required=True)
    s = nsub.add_parser("sync", help="regenerate notebooks/colab/*.ipynb from notebooks/*.md")
    s.add_argument("--check", action="store_true", help="only report out-of-date pairs (exit 1 if any)")
    s.set_defaults(func=_cmd_sync)
    p = sub.add_parser("check", help="the whole test suite (lint, unit, pipeline, book, rendered book), timed")
    p.add_argument("--profile", default="smoke")
    p.set_defaults(func=_cmd_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rokd", description="Distil Romanian BERTs with multiple teachers.")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of errors too (also ROKD_DEBUG=1; accepted anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STEP_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # step not installed in this build of rokd
                continue
            raise
        module.register(sub)
    register_tools(sub)
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
    except KeyboardInterrupt as exc:
        # a run stopped by a signal says where its checkpoint is (rokd.trainer.TrainingStopped)
        print(f"rokd: {exc}" if str(exc) else "interrupted", file=sys.stderr)
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
