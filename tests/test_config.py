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
