"""Learning curves of fine-tuning: validation score against examples seen, the evidence for per-task budgets.

A curve is one ordinary fine-tuning run (:func:`rokd.tasks.finetune.evaluate_model`) with the profile's
``evaluate`` budget overridden (``--set lr=1e-3 epochs=2``); its validation history (scored
``evals_per_epoch`` times per epoch) is already in ``seed<k>.run.json``. :func:`curve_table` reads those
histories back into one table (``name, task, lr, epochs, max_train_examples, max_length, epoch,
examples_seen, val, elapsed_s``), so the curves that chose a profile's ``evaluate.per_task`` can be committed
(``run.json`` / ``config.json`` only, no predictions) and re-read.

Run one:  ``python -m rokd.tasks.curves run --profile mini --model DIR --task upos --name c-lr1e-3
--set lr=1e-3 epochs=2 evals_per_epoch=4 --results-dir results/mini-curves``
Read all: ``python -m rokd.tasks.curves table results/mini-curves``
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from rokd.config import from_dict, to_dict
from rokd.profiles import EvalConfig, resolve_profile


def run_curve(
    profile, model: str, task: str, name: str, overrides: dict, results_dir: str | Path, seed: int = 1, **kwargs
) -> dict:
    """Fine-tune ``model`` on ``task`` under the profile's budget with ``overrides``; return the test metrics
    (``kwargs`` go to :func:`~rokd.tasks.finetune.evaluate_model`, e.g. ``dataset``)."""
    prof = resolve_profile(profile)
    budget = from_dict(EvalConfig, {**to_dict(prof.evaluate.for_task(task)), **overrides}, where="--set")
    prof = replace(prof, evaluate=budget)
    from rokd.tasks.finetune import evaluate_model

    return evaluate_model(prof, model, task, seed, name=name, results_dir=results_dir, **kwargs) or {}


def curve_table(results_dir: str | Path) -> pd.DataFrame:
    """Every validation scoring of every run under ``results_dir/predictions``, one row each."""
    rows = []
    for path in sorted(Path(results_dir).glob("predictions/*/*/seed*.run.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        budget = run["config"]["evaluate"]
        n_train = run["sizes"]["train"]["examples"]
        for point in run["history"]:
            val = next(v for k, v in point.items() if k.startswith("val_"))
            rows.append(
                {
                    "name": run["config"]["model"],
                    "task": run["config"]["task"],
                    "lr": budget["lr"],
                    "epochs": budget["epochs"],
                    "max_train_examples": budget["max_train_examples"],
                    "max_length": budget["max_length"],
                    "epoch": point["epoch"],
                    "examples_seen": round(point["epoch"] * n_train),
                    "val": val,
                    "elapsed_s": point.get("elapsed_s"),
                    "test": run["metrics"].get(run["headline_metric"]),
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rokd.tasks.curves", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one fine-tuning run whose validation history is the curve")
    run.add_argument("--profile", default="mini")
    run.add_argument("--model", required=True, help="a model key or a local HF folder")
    run.add_argument("--task", required=True)
    run.add_argument("--name", required=True, help="the curve's name in the results folder")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="evaluate.* overrides (YAML)")
    run.add_argument("--results-dir", required=True)
    table = sub.add_parser("table", help="print every curve under a results folder")
    table.add_argument("results_dir")
    args = ap.parse_args(argv)
    if args.command == "table":
        print(curve_table(args.results_dir).to_string(index=False))
        return 0
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    started = time.perf_counter()
    test = run_curve(args.profile, args.model, args.task, args.name, overrides, args.results_dir, args.seed)
    print(
        json.dumps(
            {
                "name": args.name,
                "task": args.task,
                "set": overrides,
                "test": test,
                "wall_s": round(time.perf_counter() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
