"""Controls: the random-init teacher and the not-distilled student, built from a tiny saved teacher."""

from __future__ import annotations

import json

import pytest
import torch
from distill_fixtures import tiny_bert, tokenizers

from rokd import io
from rokd.models.registry import CONTROLS, resolve

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def saved_teacher(tmp_path, monkeypatch):
    """A tiny cased teacher saved where the smoke profile's ``bert-base-ro`` resolves."""
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path))
    cased, _ = tokenizers()
    teacher = tiny_bert(cased, hidden=32, layers=4, seed=5)
    folder = tmp_path / "smoke" / "teachers" / "bert-base-ro"
    teacher.save_pretrained(folder)
    cased.save_pretrained(folder)
    return teacher, folder


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_control_keys_resolve_to_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path))
    for key in CONTROLS:
        for profile in ("smoke", "paper"):  # built locally under every profile
            ref = resolve(key, profile)
            assert (ref.key, ref.role, ref.source) == (key, "control", "local")
            assert ref.path == tmp_path / profile / "controls" / key
    assert resolve("control-init-only", "smoke").teachers == ("bert-base-ro",)


def test_random_init_control_has_the_teachers_architecture_and_tokenizer_but_not_its_weights(saved_teacher):
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from rokd.models.controls import build_random_init_control

    teacher, teacher_dir = saved_teacher
    out = build_random_init_control("smoke", log=None)
    cfg, tcfg = AutoConfig.from_pretrained(out).to_dict(), AutoConfig.from_pretrained(teacher_dir).to_dict()
    shape = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    for k in shape:
        assert cfg[k] == tcfg[k]
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(teacher_dir).get_vocab()
    weights, t_weights = _weights(out), _weights(teacher_dir)
    assert set(weights) == set(t_weights)
    assert not torch.equal(
        weights["bert.encoder.layer.0.attention.self.query.weight"],
        t_weights["bert.encoder.layer.0.attention.self.query.weight"],
    )
    assert AutoModelForMaskedLM.from_pretrained(out).config.num_hidden_layers == 4
    record = json.loads((out / "control.json").read_text())
    assert record["built_from"] == "bert-base-ro" and record["seed"] == 13  # smoke's teachers.seed

    # Up to date: kept as is; forced: rebuilt with the same seed, so the same weights.
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    build_random_init_control("smoke", log=None)
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    build_random_init_control("smoke", force=True, log=None)
    again = _weights(out)
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert io.weights_problem(out) is None and io.read_weights_sha256(out)  # checked before every fine-tuning

    # Damaged weights (a truncated copy): the control is rebuilt, with the same weights again.
    blob = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    assert io.weights_problem(out) is not None
    build_random_init_control("smoke", log=None)
    assert io.weights_problem(out) is None and all(torch.equal(weights[k], v) for k, v in _weights(out).items())


def test_a_control_never_replaces_a_folder_rokd_did_not_make(saved_teacher):
    from rokd.errors import OutputDirError
    from rokd.models.controls import build_random_init_control

    out = resolve("control-random-init", "smoke").path
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="not made by rokd"):
        build_random_init_control("smoke", log=None)
    assert [p.name for p in out.parent.iterdir()] == [out.name] and (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()  # an empty folder may be used
    assert (build_random_init_control("smoke", log=None) / "control.json").is_file()


def test_init_only_control_is_the_students_initialisation(saved_teacher):
    from transformers import AutoModelForMaskedLM

    from rokd.distill.student import build_init_only_control, init_student_from_teacher

    teacher, teacher_dir = saved_teacher
    out = build_init_only_control("smoke", log=None)
    expected = init_student_from_teacher(teacher).state_dict()
    weights = _weights(out)
    for name, tensor in weights.items():
        assert torch.equal(tensor, expected[name]), name
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.config.model_type == "distilbert" and model.config.rokd_teacher_layers == [0, 3]
    assert json.loads((out / "control.json").read_text())["built_from"] == "bert-base-ro"

    # A rebuilt teacher makes the control out of date.
    tiny_bert(tokenizers()[0], hidden=32, layers=4, seed=6).save_pretrained(teacher_dir)
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    build_init_only_control("smoke", log=None)
    assert (out / "model.safetensors").stat().st_mtime_ns != mtime


def test_fine_tuning_resolves_and_builds_a_control(saved_teacher):
    from rokd.profiles import load_profile
    from rokd.tasks.finetune import resolve_model

    resolved = resolve_model("control-random-init", load_profile("smoke"))
    assert resolved.name == "control-random-init"
    assert resolved.name_or_path.endswith("controls/control-random-init")
    assert (saved_teacher[1].parent.parent / "controls" / "control-random-init" / "config.json").is_file()


def test_a_control_without_its_teacher_names_what_to_build(tmp_path, monkeypatch):
    from rokd.profiles import load_profile
    from rokd.tasks.finetune import resolve_model

    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="build it first"):
        resolve_model("control-init-only", load_profile("smoke"))


def test_the_pipeline_fine_tunes_each_control_in_the_chapter_of_its_model():
    from rokd.pipeline import plan

    params = {s.name: s.parameters for s in plan("smoke")}
    assert params["03_evaluate-bert-base-ro"]["controls"] == ["control-random-init"]
    assert params["03_evaluate-distil-bert-base-ro"]["controls"] == ["control-init-only"]
    assert "controls" not in params["03_evaluate-robert-base"]


def test_a_saved_tokenizer_does_not_carry_its_last_calls_truncation_or_padding(tmp_path):
    """The random-init control is keyed on its teacher's tokenizer.json: two saves of one vocabulary must be
    the same bytes, whatever the tokenizer encoded last (its backend keeps that call's truncation/padding)."""
    cased, _ = tokenizers()
    io.write_tokenizer(tmp_path / "fresh", cased)
    cased(["ana are mere si pere multe"], truncation=True, max_length=4, padding="max_length")
    assert cased.backend_tokenizer.truncation is not None  # the state the fix clears
    model = tiny_bert(cased, hidden=32, layers=2)
    io.write_model(tmp_path / "after_call", model, cased)
    fresh, after = (tmp_path / d / "tokenizer.json" for d in ("fresh", "after_call"))
    assert after.read_bytes() == fresh.read_bytes()
    saved = json.loads(after.read_text(encoding="utf-8"))
    assert saved["truncation"] is None and saved["padding"] is None
    # a later call still truncates and pads as it asks
    enc = cased(["ana are mere si pere multe"], truncation=True, max_length=4, padding="max_length")
    assert len(enc["input_ids"][0]) == 4
