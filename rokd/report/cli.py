"""``rokd report --profile P``: the results chapter's tables in a terminal, from ``results/<P>/scores.csv``.

Prints the main table (baselines, models, controls: mean ± std over seeds), what pretraining gave (each
teacher against ``control-random-init``, task by task, with its verdict) and the acceptance bar a run must
pass before its distillation findings mean anything. ``--check`` exits 1 when the bar is not passed, or when
a task's runs come from different fine-tuning protocols (:func:`rokd.report.record.mixed_protocols`), so that
a script can stop before hours of distillation on teachers that learned too little.
"""

from __future__ import annotations

import argparse

SECTIONS = ("table", "gains", "acceptance")


def _cmd_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from rokd.profiles import load_profile
    from rokd.report.record import mixed_protocols
    from rokd.report.tables import acceptance, gains_view, load_scores, results_table, teacher_gains

    profile = load_profile(args.profile)  # a wrong name or a bad YAML is one line, before any file is read
    scores = load_scores(profile.name, results=args.results)
    gains = teacher_gains(scores)
    bar = acceptance(scores, gains)
    shown = args.section or SECTIONS
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 90):
        if "table" in shown:
            print("Test scores (x100, mean ± std over fine-tuning seeds):")
            print(results_table(scores, all_models=False).to_string(), end="\n\n")
        if "gains" in shown:
            print("What pretraining gave: each teacher against control-random-init (points, diff ± 2 SE; rokd.stats):")
            print(gains_view(gains).reset_index().to_string(index=False), end="\n\n")
        if "acceptance" in shown:
            print("Acceptance bar:")
            print(bar.to_string(index=False))
    mixed = mixed_protocols(profile.name, results=args.results)
    for line in mixed:
        print(f"WARNING: {line}")
    passed = bool(len(bar)) and bool(bar["passed"].all()) and not mixed
    if "acceptance" in shown:
        why = " (runs from different fine-tuning protocols are compared: see the warnings)" if mixed else ""
        print(f"\nacceptance bar {'passed' if passed else 'NOT passed'}{why}")
    return 1 if args.check and not passed else 0


def register(subparsers) -> None:
    """Add the ``report`` sub-command."""
    p = subparsers.add_parser(
        "report",
        help="the results tables, what pretraining gave and the acceptance bar, from scores.csv",
        description="Print the results chapter's main table, each teacher's gain over control-random-init "
        "(with its verdict) and the acceptance bar (each teacher beats the control by > 2 SE on >= 5 of 7 "
        "metrics; the best model beats baseline-lexical on UPOS and XPOS), read from "
        "results/<profile>/scores.csv.",
    )
    p.add_argument("--profile", default="smoke", help="smoke, mini, paper or a profile YAML (default: smoke)")
    p.add_argument("--results", default=None, help="a results folder to read instead of the profile's")
    p.add_argument(
        "--section", action="append", choices=SECTIONS, help="print only this part (repeatable; default: all)"
    )
    p.add_argument("--check", action="store_true", help="exit with status 1 when the acceptance bar is not passed")
    p.set_defaults(func=_cmd_report)
