"""``rokd evaluate``: fine-tune and score a model on task(s) x seed(s)."""

from __future__ import annotations

import argparse

from rokd.tasks.metrics import ALL_TASKS


def _evaluate(args: argparse.Namespace) -> int:
    from rokd.paths import check_name
    from rokd.profiles import load_profile
    from rokd.tasks.baselines import BASELINES, score_baseline
    from rokd.tasks.finetune import evaluate_model

    if args.name is not None:
        check_name(args.name, "--name")  # it names folders under results/<profile>/predictions/
    profile = load_profile(args.profile)
    tasks = args.task or profile.evaluate.tasks
    seeds = args.seed or profile.evaluate.seeds
    if args.model in BASELINES:  # nothing to fine-tune: fitted and scored in seconds, same rows and files
        for task in tasks:
            score_baseline(profile, args.model, task, seeds, force=args.force)
        return 0
    for task in tasks:
        for seed in seeds:
            evaluate_model(profile, args.model, task, seed, name=args.name, force=args.force, wait=args.wait)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tasks",
        aliases=["evaluate"],
        help="fine-tune a model on task(s) and score the test split (scores.csv + per-example predictions)",
        description="Fine-tune MODEL on each TASK x SEED (defaults: the profile's), select the best validation "
        "checkpoint, score the test split once; writes results/<profile>/scores.csv and "
        "results/<profile>/predictions/<model>/<task>/seed<k>.npz (+ .run.json). Skips runs whose outputs "
        "exist with the same resolved config.",
    )
    p.add_argument("--profile", default="smoke", help="smoke | mini | paper | path to a profile YAML (default: smoke)")
    p.add_argument(
        "--model",
        required=True,
        help="a model key (bert-base-ro, ..., distilmulti-bert-base-ro, control-random-init, "
        "control-init-only), a baseline (baseline-majority, baseline-lexical), a local HF folder or a hub ID",
    )
    p.add_argument("--task", action="append", choices=ALL_TASKS, help="task (repeatable; default: the profile's tasks)")
    p.add_argument("--seed", action="append", type=int, help="seed (repeatable; default: the profile's seeds)")
    p.add_argument("--name", default=None, help="name of the model in results files (default: its key or folder name)")
    p.add_argument("--force", action="store_true", help="re-run even when up-to-date outputs exist")
    p.add_argument("--wait", action="store_true", help="if another run writes the same model/task/seed, wait for it")
    p.set_defaults(func=_evaluate)
