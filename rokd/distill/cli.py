"""``rokd distill``: distil one student (or all three) under a profile.

    rokd distill --profile smoke --student distilmulti-bert-base-ro
    rokd distill --profile mini --student all
    rokd distill --profile smoke --student distilmulti-bert-base-ro --teacher-weights 2 1 --temperature 3

Several GPUs (Hugging Face Accelerate; one process per GPU, each takes its shard of the batches)::

    accelerate launch --multi_gpu --num_processes 4 -m rokd.cli distill --profile mini --student distil-bert-base-ro

(``paper`` uses the released students, ``distill.source: hub``; to distil from the hub teachers, copy
``paper.yaml`` with ``distill.source: build`` and pass its path as ``--profile``.)
"""

from __future__ import annotations

import argparse

from rokd.models.registry import STUDENTS, TEACHERS


def _run(args: argparse.Namespace) -> int:
    from rokd.distill.distiller import DistillOverrides, distill_student

    overrides = DistillOverrides(
        teachers=args.teachers, strategy=args.strategy, teacher_weights=args.teacher_weights, temperature=args.temperature,
        alpha_ce=args.alpha_ce, alpha_mlm=args.alpha_mlm, alpha_cos=args.alpha_cos, steps=args.steps,
    )
    keys = list(STUDENTS) if args.student == "all" else [args.student]
    if args.output_dir and len(keys) > 1:
        raise SystemExit("--output-dir names one student's folder; give a single --student with it")
    for key in keys:
        path = distill_student(args.profile, key, overrides, resume=not args.no_resume, output_dir=args.output_dir)
        print(path)
    return 0


def register(subparsers) -> None:
    """Add the ``distill`` sub-command."""
    from rokd.distill.distiller import STRATEGIES

    p = subparsers.add_parser(
        "distill",
        help="distil a DistilBERT student from its teacher(s)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", default="smoke", help="profile name (smoke, mini, paper) or YAML path")
    p.add_argument("--student", required=True, choices=[*STUDENTS, "all"], help="student key, or 'all'")
    p.add_argument("--teachers", nargs="+", choices=TEACHERS, help="teacher keys (default: the registry's; the first gives the tokenizer)")
    p.add_argument("--strategy", choices=STRATEGIES, help="multi-teacher strategy (default: the profile's)")
    p.add_argument("--teacher-weights", type=float, nargs="+", help="ensemble weights, one per teacher (default uniform)")
    p.add_argument("--temperature", type=float, help="softmax temperature T of the soft targets")
    p.add_argument("--alpha-ce", type=float, help="weight of the soft-target KL term")
    p.add_argument("--alpha-mlm", type=float, help="weight of the MLM cross-entropy term")
    p.add_argument("--alpha-cos", type=float, help="weight of the cosine hidden-state term")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the profile's)")
    p.add_argument("--output-dir", help="where to write the student (default artifacts/<profile>/students/<key>)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even when checkpoints of the same config exist")
    p.set_defaults(func=_run)
    from rokd.distill.export import register as register_export

    register_export(subparsers)  # `rokd export`: int8 / bf16 students for CPU users
