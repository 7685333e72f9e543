"""Registry: model keys, hub IDs and local folders resolve without network; offline loading fails clearly."""

from __future__ import annotations

import pytest

from rokd.models.registry import (
    HUB_TEACHERS,
    MODEL_KEYS,
    ModelUnavailableError,
    load_model,
    load_tokenizer,
    resolve,
)


def test_paper_profile_resolves_hub_ids_without_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = resolve("bert-base-ro", "paper")
    assert (ref.source, ref.role, ref.cased) == ("hub", "teacher", True)
    assert ref.name_or_path == "dumitrescustefan/bert-base-romanian-cased-v1"
    assert resolve("robert-base", "paper").name_or_path == "readerbench/RoBERT-base"
    student = resolve("distilmulti-bert-base-ro", "paper")
    assert student.source == "hub" and student.role == "student"
    assert student.name_or_path == "racai/distilbert-multi-base-romanian-cased"
    assert student.teachers == ("bert-base-ro", "robert-base")
    assert set(HUB_TEACHERS) == {"bert-base-ro", "robert-base"}


@pytest.mark.parametrize("what", ["model", "tokenizer"])
def test_loading_a_hub_id_offline_gives_a_clear_error(monkeypatch, tmp_path, what):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    ref = resolve("robert-base", "paper")
    loader = load_model if what == "model" else load_tokenizer
    with pytest.raises(ModelUnavailableError) as err:
        loader(ref)
    msg = str(err.value)
    assert "readerbench/RoBERT-base" in msg
    assert "unreachable" in msg and "HF_HUB_OFFLINE" in msg
    assert "smoke" in msg and "mini" in msg


def test_offline_profiles_resolve_to_artifact_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path))
    for key in MODEL_KEYS:
        ref = resolve(key, "smoke")
        kind = "teachers" if ref.role == "teacher" else "students"
        assert ref.source == "local"
        assert ref.path == tmp_path / "smoke" / kind / key
    assert resolve("distil-robert-base", "mini").teachers == ("robert-base",)


def test_a_missing_local_model_names_the_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="config.json missing"):
        load_model("bert-base-ro", profile="smoke")


def test_any_local_hf_folder_is_accepted_as_is(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    folder = tmp_path / "my-bert"
    BertForMaskedLM(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
        )
    ).save_pretrained(folder)
    ref = resolve(str(folder))
    assert (ref.key, ref.source, ref.path) == (None, "local", folder.resolve())
    model = load_model(ref, head="base")
    assert type(model).__name__ == "BertModel"
    assert type(load_model(ref)).__name__ == "BertForMaskedLM"


def test_unknown_names_are_rejected():
    with pytest.raises(ModelUnavailableError, match="neither a model key"):
        resolve("/no/such/folder")
    assert resolve("someone/some-model").source == "hub"


def test_distillation_replicas_are_students_under_their_own_key():
    from dataclasses import replace

    from rokd.config import ConfigError
    from rokd.models import registry as r
    from rokd.profiles import load_profile

    assert r.split_replica("distilmulti-bert-base-ro@d2") == ("distilmulti-bert-base-ro", 2)
    assert r.split_replica("bert-base-ro@d2") == ("bert-base-ro@d2", 1)  # teachers have no replicas
    assert r.replica_key("distil-bert-base-ro", 1) == "distil-bert-base-ro"
    assert r.DISPLAY_NAMES["distil-bert-base-ro@d3"] == "Distil-BERT-base-ro (distillation 3)"
    assert r.STUDENT_TEACHERS["distilmulti-bert-base-ro@d2"] == ("bert-base-ro", "robert-base")
    ref = r.resolve("distil-robert-base@d2", "smoke")
    assert ref.role == "student" and ref.path.name == "distil-robert-base@d2" and ref.cased is False
    prof = load_profile("smoke")
    prof = replace(prof, distill=replace(prof.distill, replicas={"distil-bert-base-ro": 2}))
    assert r.student_models(prof) == [
        "distil-bert-base-ro",
        "distil-bert-base-ro@d2",
        "distil-robert-base",
        "distilmulti-bert-base-ro",
    ]
    with pytest.raises(ConfigError, match="distill.replicas"):
        r.student_models(replace(prof, distill=replace(prof.distill, replicas={"bert-base-ro": 2})))
