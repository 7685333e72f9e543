"""``rokd distill``: distil one student (or all three) under a profile.

    rokd distill --profile smoke --student distilmulti-bert-base-ro
    rokd distill --profile mini --student all
    rokd distill --profile smoke --student distilmulti-bert-base-ro --teacher-weights 2 1 --temperature 3
    rokd distill --profile smoke --student distilmulti-bert-base-ro --strategy projection --seed 2 --output-dir /tmp/s

Several GPUs (Hugging Face Accelerate; one process per GPU, each takes its shard of the batches)::

    accelerate launch --multi_gpu --num_processes 4 -m rokd.cli distill --profile mini --student distil-bert-base-ro

The output folder (``--output-dir``) must be new, empty or one rokd made; a folder holding anything else
is refused before any work, and nothing in it is touched. A second run on the same folder stops, naming
the first (``--wait`` waits for it). After a NaN loss, ``--lr <lower> --resume-lr`` resumes from the last
good checkpoint with a lower learning rate (the error message prints the command).

(``paper`` uses the released students, ``distill.source: hub``; to distil from the hub teachers, copy
``paper.yaml`` with ``distill.source: build`` and pass its path as ``--profile``.)
"""

from __future__ import annotations

import argparse

from rokd.models.registry import STUDENTS, TEACHERS


def _run(args: argparse.Namespace) -> int:
    from rokd.distill.distiller import DistillOverrides, distill_student

    from rokd.errors import UsageError

    overrides = DistillOverrides(
        teachers=args.teachers, strategy=args.strategy, teacher_weights=args.teacher_weights, temperature=args.temperature,
        alpha_ce=args.alpha_ce, alpha_mlm=args.alpha_mlm, alpha_cos=args.alpha_cos, steps=args.steps, seed=args.seed,
        soft_targets=args.soft_targets, lr=args.lr,
    )
    from rokd.models.registry import split_replica, student_models

    if args.student == "all":
        keys = student_models(args.profile)
    elif split_replica(args.student)[0] in STUDENTS:
        keys = [args.student]
    else:
        raise UsageError(f"--student: {args.student!r} is not a student; choose one of {list(STUDENTS)}, "
                         "<student>@d<k> (its k-th distillation seed) or 'all'")
    if args.output_dir and len(keys) > 1:
        raise UsageError("--output-dir names one student's folder; give a single --student with it")
    if args.resume_lr and args.no_resume:
        raise UsageError("--resume-lr resumes the kept checkpoints; it cannot go with --no-resume")
    for key in keys:
        path = distill_student(args.profile, key, overrides, resume=not args.no_resume, output_dir=args.output_dir,
                               wait=args.wait, resume_lr=args.resume_lr)
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
    p.add_argument("--student", required=True, metavar="{" + ",".join(STUDENTS) + ",all}",
                   help="student key, <student>@d<k> (the k-th distillation seed: seed + k - 1), or 'all' "
                        "(every student and the profile's distill.replicas)")
    p.add_argument("--teachers", nargs="+", choices=TEACHERS, help="teacher keys (default: the registry's; the first gives the tokenizer)")
    p.add_argument("--strategy", choices=[*STRATEGIES, "ensemble"],
                   help="how a teacher with another vocabulary enters the objective (rokd.distill.strategies; "
                        "'ensemble' = 'span-map'; default: the profile's)")
    p.add_argument("--teacher-weights", type=float, nargs="+", help="ensemble weights, one per teacher (default uniform)")
    p.add_argument("--temperature", type=float, help="softmax temperature T of the soft targets")
    p.add_argument("--alpha-ce", type=float, help="weight of the soft-target KL term")
    p.add_argument("--alpha-mlm", type=float, help="weight of the MLM cross-entropy term")
    p.add_argument("--alpha-cos", type=float, help="weight of the cosine hidden-state term")
    p.add_argument("--steps", type=int, help="optimizer steps (default: the profile's)")
    p.add_argument("--seed", type=int, help="distillation seed: masking, batch order, projections (default: the profile's)")
    p.add_argument("--soft-targets", choices=("masked", "all"),
                   help="where the soft-target KL is computed: masked positions, or every token (HF recipe)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the profile's)")
    p.add_argument("--output-dir", help="where to write the student (default artifacts/<profile>/students/<key>); "
                   "must be new, empty or made by rokd")
    p.add_argument("--no-resume", action="store_true", help="start afresh even when checkpoints of the same config exist")
    p.add_argument("--resume-lr", action="store_true",
                   help="resume the kept checkpoints although --lr changed the learning rate (after a NaN loss)")
    p.add_argument("--wait", action="store_true", help="if another run writes the same student folder, wait for it")
    p.set_defaults(func=_run)
