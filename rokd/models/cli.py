"""``rokd teachers`` sub-commands: ``build`` (miniature teachers) and ``quality`` (MLM accuracy, PPPL)."""

from __future__ import annotations

import json
import sys


def _cmd_build(args) -> int:
    from rokd.models.teachers import build_teachers, load_quality
    from rokd.profiles import load_profile

    prof = load_profile(args.profile)
    built = build_teachers(
        args.profile,
        keys=args.key or None,
        force=args.force,
        wait=args.wait,
        resume_lr=args.resume_lr,
        progress=sys.stderr.isatty(),  # a bar in a terminal; none in a log file (the train log has every step)
    )
    for key, where in built.items():
        if prof.teachers.source == "hub":
            print(f"{key}: hub model {where} (nothing to build)")
            continue
        q = load_quality(where)
        print(
            f"{key}: {where}\n  MLM accuracy {q['mlm_accuracy']:.3f} (unigram {q['unigram_mlm_accuracy']:.3f}), "
            f"pseudo-perplexity {q['pseudo_perplexity']:.1f} (unigram {q['unigram_pseudo_perplexity']:.1f}), "
            f"training {q['train_wall_s']:.0f} s"
        )
    return 0


def _cmd_quality(args) -> int:
    from rokd.models.registry import TEACHERS, ModelUnavailableError
    from rokd.models.teachers import teacher_quality

    try:
        out = {key: teacher_quality(args.profile, key, write=not args.no_write) for key in (args.key or TEACHERS)}
    except ModelUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def register(subparsers) -> None:
    """Add ``rokd models build`` and ``rokd models quality`` (also spelled ``rokd teachers ...``)."""
    from rokd.models.registry import TEACHERS

    p = subparsers.add_parser(
        "models", aliases=["teachers"], help="miniature teachers: build them, measure their quality"
    )
    sub = p.add_subparsers(dest="teachers_command", required=True)
    b = sub.add_parser("build", help="train the profile's tokenizers and teachers (skipped when up to date)")
    b.add_argument("--profile", default="smoke", help="profile name or YAML path (default: smoke)")
    b.add_argument("--key", action="append", choices=TEACHERS, help="only this teacher (repeatable)")
    b.add_argument("--force", action="store_true", help="rebuild even when the artifacts are up to date")
    b.add_argument("--wait", action="store_true", help="if another run builds the same teacher, wait for it")
    b.add_argument(
        "--resume-lr",
        action="store_true",
        help="resume the interrupted pretraining although teachers.lr changed (after a NaN loss)",
    )
    b.set_defaults(func=_cmd_build)
    q = sub.add_parser(
        "quality", help="MLM accuracy and pseudo-perplexity on the held-out corpus, vs a unigram baseline"
    )
    q.add_argument("--profile", default="smoke", help="profile name or YAML path (default: smoke)")
    q.add_argument("--key", action="append", choices=TEACHERS, help="only this teacher (repeatable)")
    q.add_argument("--no-write", action="store_true", help="print only; do not update quality.json")
    q.set_defaults(func=_cmd_quality)
