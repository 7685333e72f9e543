"""``rokd loyalty --profile P``: loyalty of every student to its teacher(s) -> results/<P>/loyalty.csv."""

from __future__ import annotations

import argparse
import sys


def _cmd_loyalty(args: argparse.Namespace) -> int:
    import pandas as pd

    from rokd.loyalty import compute_loyalty, format_paper_table, loyalty_csv_path, paper_style_table

    from rokd.loyalty import LoyaltyAlignmentError

    try:
        df = compute_loyalty(args.profile, tasks=args.tasks, seeds=args.seeds)
    except (FileNotFoundError, LoyaltyAlignmentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(df)} rows to {loyalty_csv_path(args.profile)}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(format_paper_table(paper_style_table(df)).to_string())
    return 0


def register(subparsers) -> None:
    """Add the ``loyalty`` sub-command."""
    p = subparsers.add_parser(
        "loyalty",
        help="label, probability and regression loyalty of the students to their teachers",
        description="Compare each student's test predictions with its teacher's (and the teachers' ensemble) "
        "and write results/<profile>/loyalty.csv.",
    )
    p.add_argument("--profile", default="smoke", help="smoke, mini, paper or a profile YAML (default: smoke)")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks to compare (default: the profile's)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds to compare (default: the profile's)")
    p.set_defaults(func=_cmd_loyalty)
