"""``rokd distill``: distil one of the paper's students (or all three) under a profile, or a student of your own.

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

A student of your own -- teachers given as local folders or hub IDs, of any tokenizer family, your own
corpus (one sentence per line; files or folders of .txt files); the first teacher gives the student its
tokenizer and initial weights (:mod:`rokd.distill.api`)::

    rokd distill --teacher dumitrescustefan/bert-base-romanian-cased-v1 --teacher xlm-roberta-base \
                 --corpus my_corpus/ --output-dir students/mine [--teacher-weights 2 1] \
                 [--student-layers 0,2,4,7,9,11 | --student-depth 6] [--steps N] [--batch-size N] [--max-length N]
    rokd distill --spec my_student.yaml        # the same as a YAML file (rokd.distill.api.DistillSpec)

Training settings not given come from ``--profile`` (default for your own student: rokd's defaults).
"""

from __future__ import annotations

import argparse

from rokd.models.registry import STUDENTS, TEACHERS


def _run(args: argparse.Namespace) -> int:
    from rokd.distill.distiller import OVERRIDABLE, OWN_STUDENT_ONLY, DistillOverrides, distill_student
    from rokd.errors import UsageError

    if args.teacher or args.spec:
        return _run_own(args)
    if not args.student:
        raise UsageError(
            "give --student (a paper student, <student>@d<k>, or 'all'), or --teacher ... --corpus ... "
            "--output-dir ... for a student of your own, or --spec FILE"
        )
    for flag in ("corpus", *OWN_STUDENT_ONLY):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag.replace('_', '-')} is for a student of your own (with --teacher or --spec)")
    args.profile = args.profile or "smoke"

    overrides = DistillOverrides(teachers=args.teachers, **{k: getattr(args, k) for k in OVERRIDABLE})
    from rokd.models.registry import split_replica, student_models

    if args.student == "all":
        keys = student_models(args.profile)
    elif split_replica(args.student)[0] in STUDENTS:
        keys = [args.student]
    else:
        raise UsageError(
            f"--student: {args.student!r} is not a student; choose one of {list(STUDENTS)}, "
            "<student>@d<k> (its k-th distillation seed) or 'all'"
        )
    if args.output_dir and len(keys) > 1:
        raise UsageError("--output-dir names one student's folder; give a single --student with it")
    if args.resume_lr and args.no_resume:
        raise UsageError("--resume-lr resumes the kept checkpoints; it cannot go with --no-resume")
    for key in keys:
        path = distill_student(
            args.profile,
            key,
            overrides,
            resume=not args.no_resume,
            output_dir=args.output_dir,
            wait=args.wait,
            resume_lr=args.resume_lr,
        )
        print(path)
    return 0


def register(subparsers) -> None:
    """Add the ``distill`` sub-command."""
    from rokd.config import add_arguments
    from rokd.distill.distiller import OVERRIDABLE, OWN_STUDENT_ONLY, DistillOverrides

    p = subparsers.add_parser(
        "distill",
        help="distil a DistilBERT student from its teacher(s)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--profile",
        default=None,
        help="profile name (smoke, mini, paper, colab) or YAML path "
        "(default: smoke; for your own student: rokd's defaults)",
    )
    p.add_argument(
        "--student",
        metavar="{" + ",".join(STUDENTS) + ",all}",
        help="a paper student's key, <student>@d<k> (the k-th distillation seed: seed + k - 1), or 'all' "
        "(every student and the profile's distill.replicas)",
    )
    p.add_argument(
        "--teachers",
        nargs="+",
        choices=TEACHERS,
        help="teacher keys (default: the registry's; the first gives the tokenizer)",
    )
    # One flag per overridable field of the objective and the budget (rokd.distill.distiller.OVERRIDABLE),
    # its type, choices and help from the profile's dataclasses; not given = the profile's value.
    add_arguments(
        p,
        DistillOverrides,
        [k for k in OVERRIDABLE if k not in OWN_STUDENT_ONLY],
        {"seed": {"help": "distillation seed: masking, batch order, projections"}},
    )
    p.add_argument(
        "--output-dir",
        help="where to write the student (default artifacts/<profile>/students/<key>); "
        "must be new, empty or made by rokd",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="start afresh even when checkpoints of the same config exist"
    )
    p.add_argument(
        "--resume-lr",
        action="store_true",
        help="resume the kept checkpoints although --lr changed the learning rate (after a NaN loss)",
    )
    p.add_argument("--wait", action="store_true", help="if another run writes the same student folder, wait for it")
    _add_own_student_arguments(p)
    p.set_defaults(func=_run)

    _register_export(subparsers)  # `rokd export`: int8 / bf16 students for CPU users


def _run_export(args: argparse.Namespace) -> int:
    try:
        from rokd.distill.export import export_model

        out = export_model(args.model, args.to, args.output_dir)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        if getattr(args, "debug", False):
            raise
        raise SystemExit(f"rokd export: {e}") from None
    print(out)
    return 0


def _register_export(subparsers) -> None:
    """Add the ``export`` sub-command."""
    from rokd.distill import export

    p = subparsers.add_parser(
        "export",
        help="export a model as int8 or bf16 for CPU inference",
        description=export.__doc__.split("\n\n")[0] + "\n\n" + export.__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        "--student",
        dest="model",
        required=True,
        help="a Hugging Face model folder (a student, a teacher...)",
    )
    p.add_argument(
        "--to",
        required=True,
        choices=["int8", "bf16"],
        help="int8: dynamic quantisation of the Linear layers; bf16: weights cast",
    )
    p.add_argument("--output-dir", required=True, help="folder to write (replaced only if it is an earlier export)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run_export)


# --------------------------------------------------------------------------------------------------
# A student of your own (issue 16): teachers as folders or hub IDs, any tokenizer family, your corpus.
# --------------------------------------------------------------------------------------------------


def _layer_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected layer indices like 0,2,4,7,9,11, got {text!r}") from e


def _add_own_student_arguments(p: argparse.ArgumentParser) -> None:
    from rokd.config import add_arguments
    from rokd.distill.distiller import OWN_STUDENT_ONLY, DistillOverrides

    own = p.add_argument_group("a student of your own (instead of --student)")
    own.add_argument(
        "--teacher",
        action="append",
        metavar="PATH_OR_HUB_ID",
        help="a teacher: local folder (save_pretrained) or hub ID; repeat for several; "
        "the first gives the student its tokenizer and weights",
    )
    own.add_argument(
        "--corpus",
        action="append",
        metavar="FILE_OR_DIR",
        help="one-sentence-per-line text file, or a folder of .txt files; repeatable",
    )
    add_arguments(
        own,
        DistillOverrides,
        OWN_STUDENT_ONLY,
        {"student_layers": {"type": _layer_list, "nargs": None, "metavar": "0,2,4,7,9,11"}},
    )
    own.add_argument(
        "--heldout-lines", type=int, metavar="N", help="corpus lines held out for the MLM accuracy (default 1000)"
    )
    own.add_argument(
        "--spec", metavar="FILE", help="YAML/JSON spec of the run (rokd.distill.api.DistillSpec); options override it"
    )


def _run_own(args: argparse.Namespace) -> int:
    """``rokd distill --teacher ... --corpus ... --output-dir ...`` or ``--spec FILE``."""
    import dataclasses

    from rokd.config import ConfigError
    from rokd.distill.api import DistillSpec, distill, load_spec

    given = {
        "teachers": args.teacher,
        **{f.name: getattr(args, f.name, None) for f in dataclasses.fields(DistillSpec) if f.name != "teachers"},
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.student:
        raise ConfigError(
            "--student names a paper student; with --teacher / --spec the student is your own: drop --student"
        )
    if args.teachers:
        raise ConfigError("--teachers takes registry keys for a paper student; for your own student repeat --teacher")
    if args.spec:
        spec = load_spec(args.spec)
        spec = dataclasses.replace(spec, **given)
    else:
        needed = (("--corpus", "corpus"), ("--output-dir", "output_dir"))
        missing = [flag for flag, key in needed if key not in given]
        if missing:
            raise ConfigError(f"a student of your own needs {' and '.join(missing)} (or --spec FILE)")
        spec = DistillSpec(**given)
    path = distill(spec, resume=not args.no_resume)
    print(path)
    return 0
