"""The ``rokd`` command line. Each step registers its own sub-commands (``register(subparsers)``)."""

from __future__ import annotations

import argparse
import importlib
import sys

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
