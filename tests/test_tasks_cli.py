"""``rokd evaluate`` is registered with the options the pipeline and the book document."""

from __future__ import annotations

import pytest

from rokd.cli import build_parser


def test_evaluate_command_parses_repeatable_task_and_seed():
    args = build_parser().parse_args(
        [
            "evaluate",
            "--profile",
            "mini",
            "--model",
            "bert-base-ro",
            "--task",
            "ner",
            "--task",
            "sts",
            "--seed",
            "1",
            "--seed",
            "2",
        ]
    )
    assert args.profile == "mini" and args.model == "bert-base-ro"
    assert args.task == ["ner", "sts"] and args.seed == [1, 2] and not args.force
    assert callable(args.func)


def test_evaluate_command_rejects_unknown_task(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--model", "x", "--task", "parsing"])
    assert "invalid choice" in capsys.readouterr().err


def test_evaluate_command_names_a_missing_model(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path))
    args = build_parser().parse_args(["evaluate", "--model", "bert-base-ro", "--task", "upos", "--seed", "1"])
    with pytest.raises(FileNotFoundError, match="not built yet"):
        args.func(args)


def test_evaluate_command_scores_a_baseline_like_a_model(tmp_path, monkeypatch):
    from test_baselines import _sentence_dd

    from rokd.tasks import finetune
    from rokd.tasks.scores import read_scores

    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path))
    monkeypatch.setitem(finetune._TASK_CACHE, "sapn", _sentence_dd("sapn"))  # instead of the real data set
    args = build_parser().parse_args(["evaluate", "--model", "baseline-majority", "--task", "sapn", "--seed", "4"])
    assert args.func(args) == 0
    rows = read_scores(tmp_path / "smoke" / "scores.csv")
    assert {(r["model"], r["task"], r["seed"], r["metric"]) for r in rows} == {
        ("baseline-majority", "sapn", 4, "accuracy"),
        ("baseline-majority", "sapn", 4, "macro_f1"),
    }
    assert (tmp_path / "smoke" / "predictions" / "baseline-majority" / "sapn" / "seed4.run.json").is_file()


def test_every_step_command_is_named_like_its_package_and_keeps_its_old_name():
    """``rokd.cli`` adds one command per step package (``rokd/<package>/cli.py``), named like the package;
    ``teachers`` and ``evaluate`` still parse to the same commands."""
    from rokd.cli import STEP_CLIS, build_parser

    parser = build_parser()
    names = set(parser._subparsers._group_actions[0].choices)
    packages = [m.split(".")[1] for m in STEP_CLIS]
    assert all(m == f"rokd.{p}.cli" for m, p in zip(STEP_CLIS, packages))
    assert set(packages) <= names and {"teachers", "evaluate"} <= names
    assert parser.parse_args(["teachers", "build"]).func is parser.parse_args(["models", "build"]).func
    assert parser.parse_args(["evaluate", "--model", "m"]).func is parser.parse_args(["tasks", "--model", "m"]).func
