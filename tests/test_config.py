"""Profiles and configs: every profile loads and round-trips through JSON and YAML; bad fields are named."""

from __future__ import annotations

import pytest

from rokd.config import ConfigError, from_dict, load_config, save_config, to_dict
from rokd.profiles import PROFILES, Profile, load_profile


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_round_trip(name, tmp_path):
    profile = load_profile(name)
    assert profile.name == name
    assert from_dict(Profile, to_dict(profile)) == profile
    for suffix in (".json", ".yaml"):
        path = save_config(profile, tmp_path / f"p{suffix}")
        assert load_config(Profile, path) == profile


def test_unknown_field_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndistill: {temprature: 3}\n")
    with pytest.raises(ConfigError, match="temprature"):
        load_profile(bad)


def test_unknown_profile_lists_the_choices():
    with pytest.raises(ConfigError, match="smoke"):
        load_profile("nope")


def test_paper_profile_uses_the_hub_models():
    paper = load_profile("paper")
    assert paper.teachers.hub_cased == "dumitrescustefan/bert-base-romanian-cased-v1"
    assert paper.teachers.hub_uncased == "readerbench/RoBERT-base"
    assert set(paper.distill.hub_students.values()) == {
        "racai/distilbert-base-romanian-cased",
        "racai/distilbert-base-romanian-uncased",
        "racai/distilbert-multi-base-romanian-cased",
    }


def test_per_task_budget_overrides_one_task_only():
    from rokd.profiles import EvalConfig

    cfg = from_dict(EvalConfig, {"max_length": 128, "epochs": 3, "per_task": {"di": {"max_length": 256, "epochs": 2}}})
    assert (cfg.for_task("di").max_length, cfg.for_task("di").epochs) == (256, 2.0)
    assert (cfg.for_task("upos").max_length, cfg.for_task("upos").epochs) == (128, 3.0)
    assert cfg.for_task("di").per_task == {}  # a resolved budget carries no further overrides
    with pytest.raises(ConfigError, match=r"per_task\.di: unknown field\(s\) \['maxlen'\]"):
        from_dict(EvalConfig, {"per_task": {"di": {"maxlen": 256}}})


@pytest.mark.parametrize("name", PROFILES)
def test_teacher_training_settings_stay_byte_identical(name):
    """The build stamp of the teachers (``teacher_config.json``'s ``training``) must not change with the code's
    shape: a teacher pretrained for hours stays "up to date" only while it equals what its build wrote."""
    import json
    from pathlib import Path

    from rokd.models.teachers import training_settings

    golden = json.loads((Path(__file__).parent / "golden" / "teacher_settings.json").read_text(encoding="utf-8"))
    settings = training_settings(load_profile(name).teachers)
    assert json.dumps(settings, sort_keys=True) == json.dumps(golden[name], sort_keys=True)


def test_a_teacher_setting_added_later_enters_the_stamp_once_changed():
    import dataclasses

    from rokd.models.teachers import training_settings

    teachers = load_profile("smoke").teachers
    assert "max_grad_norm" not in training_settings(teachers)  # 1.0: what every earlier build clipped at
    assert training_settings(dataclasses.replace(teachers, max_grad_norm=0.5))["max_grad_norm"] == 0.5


def test_sections_share_one_budget_and_one_objective():
    from rokd.profiles import DistillConfig, DistillObjective, EvalConfig, StepBudget, TeachersConfig, TrainingBudget

    assert issubclass(TeachersConfig, StepBudget) and issubclass(DistillConfig, StepBudget)
    assert issubclass(EvalConfig, TrainingBudget) and not issubclass(EvalConfig, StepBudget)
    assert issubclass(DistillConfig, DistillObjective)
    d = DistillConfig(steps=10, warmup_steps=50, lr=1e-3, max_grad_norm=2.0, precision="fp32")
    assert d.trainer_settings() == {
        "lr": 1e-3,
        "weight_decay": 0.01,
        "max_grad_norm": 2.0,
        "checkpoint_every": 200,
        "mixed_precision": "fp32",
        "steps": 10,
        "grad_accum": 1,
        "warmup_steps": 10,
        "seed": 13,
    }


def test_every_overridable_distillation_field_is_one_flag_and_back():
    """The distill CLI's flags are generated from the dataclasses: each overridable field parses into
    DistillOverrides and distill_command writes it back."""
    import argparse
    import shlex

    from rokd.distill.cli import register
    from rokd.distill.distiller import OVERRIDABLE, OWN_STUDENT_ONLY, DistillOverrides, distill_command

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    given = DistillOverrides(
        strategy="uld",
        teacher_weights=[2.0, 1.0],
        temperature=3.0,
        alpha_ce=1.5,
        alpha_mlm=0.0,
        alpha_cos=0.5,
        soft_targets="all",
        steps=7,
        seed=4,
    )
    command = distill_command("smoke", "distilmulti-bert-base-ro", given, None, lr="0.001", resume_lr=False)
    args = parser.parse_args(shlex.split(command)[1:])
    parsed = DistillOverrides(teachers=args.teachers, **{k: getattr(args, k) for k in OVERRIDABLE})
    assert parsed == DistillOverrides(**{**vars(given), "lr": 0.001})
    flags = {a.dest for a in parser._subparsers._group_actions[0].choices["distill"]._actions}
    assert set(OVERRIDABLE) | set(OWN_STUDENT_ONLY) <= flags


def test_temperature_is_declared_once():
    """One home per concept: the objective's fields are class fields of DistillObjective only (the run, the
    overrides, the spec and the command line take them from there)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "rokd"
    declared = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                declared += [
                    f"{path.relative_to(root).as_posix()}:{node.name}"
                    for item in node.body
                    if isinstance(item, ast.AnnAssign) and getattr(item.target, "id", "") == "temperature"
                ]
    assert declared == ["profiles.py:DistillObjective"]


def test_a_list_field_checks_each_item_against_its_choices(tmp_path):
    from rokd.paths import REPO_ROOT

    text = (REPO_ROOT / "rokd" / "profiles" / "smoke.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("chapters: [06_strategies, 07_distil_your_own]", "chapters: [07_distil_your_own, 08_nope]")
    )
    with pytest.raises(ConfigError, match=r"chapters: '08_nope' is not allowed"):
        load_profile(bad)
    assert load_profile("smoke").chapters == ["06_strategies", "07_distil_your_own"]
