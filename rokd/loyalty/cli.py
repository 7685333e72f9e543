"""``rokd loyalty --profile P``: loyalty of every student to its teacher(s) -> results/<P>/loyalty.csv.

Also writes the compact predictions it is computed from (``results/<P>/predictions-compact/``) and
``loyalty_config.json``.
"""

from __future__ import annotations

import argparse
import sys


def _cmd_loyalty(args: argparse.Namespace) -> int:
    import pandas as pd

    from rokd.loyalty import (
        LoyaltyAlignmentError,
        compute_loyalty,
        format_paper_table,
        loyalty_csv_path,
        paper_style_table,
        read_loyalty_config,
    )
    from rokd.tasks.compact import StaleCompactError

    try:
        top_k = {} if args.top_k is None else {"top_k": args.top_k}
        df = compute_loyalty(args.profile, tasks=args.tasks, seeds=args.seeds, **top_k)
    except (FileNotFoundError, LoyaltyAlignmentError, StaleCompactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    cfg = read_loyalty_config(args.profile)
    print(
        f"wrote {len(df)} rows to {loyalty_csv_path(args.profile)}; compact predictions: "
        f"{cfg.get('compact_bytes', 0) / 1e6:.1f} MB in {cfg.get('predictions')}/"
    )
    if cfg.get("missing_controls"):
        print(f"control pairs left out (no predictions): {', '.join(cfg['missing_controls'])}")
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
    p.add_argument(
        "--top-k", type=int, default=None, help="labels kept per row in the compact predictions (default: 4)"
    )
    p.set_defaults(func=_cmd_loyalty)
