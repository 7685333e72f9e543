"""``rokd data`` sub-commands: ``summary`` (splits, sizes, provenance) and ``corpus`` (build the raw corpus)."""

from __future__ import annotations

import json


def summary(data_dir=None, source: str = "auto") -> dict:
    """Per task and split: ``{"n": examples, "kind", "source", "note"}`` (plus the data set name)."""
    from rokd.data import TASK_DATASET, TASKS, load_task, split_provenance

    out = {}
    for task in TASKS:
        dd = load_task(task, data_dir=data_dir, source=source)
        prov = split_provenance(dd)
        out[task] = {
            split: {
                "dataset": TASK_DATASET[task],
                "n": len(ds),
                "kind": prov[split]["kind"],
                "source": prov[split]["source"],
                "note": prov[split]["note"],
            }
            for split, ds in dd.items()
        }
    return out


def _cmd_summary(args) -> int:
    table = summary(args.data_dir, args.source)
    if args.json:
        print(json.dumps(table, indent=2, ensure_ascii=False))
        return 0
    print(f"{'task':<6} {'dataset':<9} {'split':<11} {'examples':>8}  {'provenance':<10}  source")
    for task, splits in table.items():
        for split, row in splits.items():
            print(f"{task:<6} {row['dataset']:<9} {split:<11} {row['n']:>8}  {row['kind']:<10}  {row['source']}")
    notes = {
        (row["dataset"], row["kind"], row["note"])
        for splits in table.values()
        for row in splits.values()
        if row["note"]
    }
    if notes:
        print("\nnotes:")
        for dataset, kind, note in sorted(notes):
            print(f"  {dataset} ({kind}): {note}")
    return 0


def _cmd_corpus(args) -> int:
    from rokd.data.corpus import ensure_corpus

    out = ensure_corpus(args.profile)
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    print(f"corpus for profile {args.profile}: {out}")
    print(
        f"  train: {stats['train_lines']:,} lines, {stats['train_words']:,} words; held-out: "
        f"{stats['heldout_lines']:,} lines"
    )
    print(f"  dropped: {stats['dropped']}")
    return 0


def register(subparsers) -> None:
    """Add ``rokd data summary`` and ``rokd data corpus``."""
    p = subparsers.add_parser("data", help="task data sets and the raw corpus")
    sub = p.add_subparsers(dest="data_command", required=True)
    s = sub.add_parser("summary", help="per task and split: example count and provenance")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--data-dir", default=None, help="local data mirror (default: $ROKD_DATA_DIR)")
    s.add_argument(
        "--source", default="auto", choices=["auto", "mirror", "download"], help="where to read the data from"
    )
    s.set_defaults(func=_cmd_summary)
    c = sub.add_parser("corpus", help="build artifacts/<profile>/corpus (skipped if up to date)")
    c.add_argument("--profile", default="smoke", help="profile name or YAML path")
    c.set_defaults(func=_cmd_corpus)
