"""int8 / bf16 students for CPU users: `rokd export`, loading back, the variant speed table, and what a
variant costs (score change, loyalty to its fp32 self). Tiny models built from configs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_tasks_finetune import _profile, _tagging_dataset, tiny_models  # noqa: F401  (fixture)
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from rokd.distill.export import EXPORT_FILE, INT8_WEIGHTS, export_model, load_exported, make_variant

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(
        DistilBertConfig(
            vocab_size=120, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, num_labels=3
        )
    ).eval()
    path = tmp_path_factory.mktemp("model") / "clf"
    model.save_pretrained(path)
    return path


def _inputs():
    return {"input_ids": torch.randint(5, 120, (3, 9), generator=torch.Generator().manual_seed(1))}


def test_int8_export_loads_back_and_matches_in_memory_quantisation(classifier_dir, tmp_path):
    fp32 = DistilBertForSequenceClassification.from_pretrained(classifier_dir).eval()
    out = export_model(classifier_dir, "int8", tmp_path / "int8")
    meta = json.loads((out / EXPORT_FILE).read_text())
    assert (
        meta["format"] == "rokd-int8" and len(meta["quantized_layers"]) == 2 * 6 + 2
    )  # 6 Linear per layer + 2 in the head
    assert sorted(p.name for p in out.iterdir()) == sorted(["config.json", EXPORT_FILE, INT8_WEIGHTS])
    from safetensors.torch import load_file

    stored = load_file(str(out / INT8_WEIGHTS))
    assert stored["distilbert.transformer.layer.0.ffn.lin1.weight.int8"].dtype == torch.int8
    assert stored["distilbert.embeddings.word_embeddings.weight"].dtype == torch.float32  # embeddings stay fp32
    back = load_exported(out)
    with torch.inference_mode():
        got, want, ref = (
            back(**_inputs()).logits,
            make_variant(fp32, "int8")(**_inputs()).logits,
            fp32(**_inputs()).logits,
        )
    assert torch.equal(got, want)
    assert 0 < float((got - ref).abs().max()) < 0.05  # quantised: close to fp32, not equal
    # every Linear weight shrinks from 4 bytes to 1 (embeddings and LayerNorms stay fp32)
    linear = sum(m.weight.numel() for m in fp32.modules() if isinstance(m, torch.nn.Linear))
    saved = (classifier_dir / "model.safetensors").stat().st_size - (out / INT8_WEIGHTS).stat().st_size
    assert saved > 0.9 * 3 * linear


def test_bf16_export_is_a_plain_hugging_face_checkpoint(classifier_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    out = export_model(classifier_dir, "bf16", tmp_path / "bf16")
    plain = AutoModelForSequenceClassification.from_pretrained(out)
    assert next(plain.parameters()).dtype == torch.bfloat16
    back = load_exported(out)
    with torch.inference_mode():
        assert torch.equal(back(**_inputs()).logits, plain(**_inputs()).logits)


def test_export_refuses_to_overwrite_what_it_did_not_write(classifier_dir, tmp_path, capsys):
    from rokd.cli import main

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="is not a rokd export"):
        main(["export", "--model", str(classifier_dir), "--to", "int8", "--output-dir", str(theirs)])
    assert (theirs / "notes.txt").read_text() == "keep me"
    with pytest.raises(SystemExit, match="no config.json"):
        main(["export", "--student", str(tmp_path), "--to", "bf16", "--output-dir", str(tmp_path / "x")])
    assert main(["export", "--model", str(classifier_dir), "--to", "int8", "--output-dir", str(tmp_path / "ok")]) == 0
    assert (
        main(["export", "--model", str(classifier_dir), "--to", "int8", "--output-dir", str(tmp_path / "ok")]) == 0
    )  # its own: replaced
    assert str(tmp_path / "ok") in capsys.readouterr().out


def test_variant_throughput_times_every_model_in_every_variant(classifier_dir):
    from rokd.tasks.speed import precision_speed_table, variant_throughput

    model = DistilBertForSequenceClassification.from_pretrained(classifier_dir)
    speed = variant_throughput(
        {"teacher": model, "student": model}, batch_size=2, seq_length=8, rounds=2, min_round_s=0.01
    )
    assert sorted(zip(speed["model"], speed["variant"])) == sorted(
        (m, v) for m in ("teacher", "student") for v in ("fp32", "bf16", "int8")
    )
    assert (speed["seq_per_s"] > 0).all() and np.allclose(speed[speed["variant"] == "fp32"]["vs_fp32"], 1.0)
    table = precision_speed_table(speed, pairs={"student": "teacher"})
    assert {"seq/s", "vs own fp32", "vs teacher fp32"} <= set(table.columns)


def test_variant_cost_by_hand():
    from rokd.precision_cost import variant_cost
    from rokd.tasks.predictions import Predictions

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]], dtype=np.float32)
    ref = Predictions(
        ids=np.array(["a", "b", "c", "d"]),
        gold=np.array([0, 1, 1, 1]),
        pred=probs.argmax(1),
        probs=probs,
        label_names=["neg", "pos"],
    )
    q_probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], dtype=np.float32)  # row c flips
    q = Predictions(ids=ref.ids, gold=ref.gold, pred=q_probs.argmax(1), probs=q_probs, label_names=["neg", "pos"])
    cost = variant_cost(ref, q, "sapn")  # headline: accuracy; fp32 3/4 right, the variant 2/4
    assert (cost["metric"], cost["fp32"], cost["value"]) == ("accuracy", 0.75, 0.5)
    assert cost["change"] == pytest.approx(-0.25) and cost["label_loyalty"] == pytest.approx(0.75)
    assert cost["prob_loyalty"] < 1.0


def test_fine_tuning_writes_variant_predictions_and_their_cost(tiny_models, tmp_path):  # noqa: F811
    from dataclasses import replace

    from rokd.precision_cost import cost_summary, precision_cost
    from rokd.tasks.finetune import evaluate_model
    from rokd.tasks.predictions import load_predictions, predictions_path

    prof = _profile()
    prof.evaluate = replace(prof.evaluate, variants=["int8", "bf16"])
    evaluate_model(
        prof, str(tiny_models["tiny-distil"]), "ner", 1, dataset=_tagging_dataset(), results_dir=tmp_path, log=None
    )
    run = json.loads(predictions_path(tmp_path, "tiny-distil", "ner", 1).with_suffix(".run.json").read_text())
    assert set(run["variants"]) == {"int8", "bf16"} and run["config"]["evaluate"]["variants"] == ["int8", "bf16"]
    q = load_predictions(predictions_path(tmp_path, "tiny-distil@int8", "ner", 1))
    assert q.meta["variant"] == "int8" and q.meta["variant_of"] == "tiny-distil"
    cost = precision_cost("unit", ["tiny-distil"], ["int8", "bf16"], tasks=["ner"], seeds=[1], results=tmp_path)
    assert list(cost["variant"]) == ["int8", "bf16"] and cost["metric"].tolist() == ["macro_f1", "macro_f1"]
    assert ((cost["label_loyalty"] > 0.5) & (cost["label_loyalty"] <= 1)).all()
    assert cost["change"].tolist() == pytest.approx(
        [run["variants"][v]["change"]["macro_f1"] for v in ("int8", "bf16")]
    )
    assert set(cost_summary(cost).index) == {("tiny-distil", "int8"), ("tiny-distil", "bf16")}
    with pytest.raises(FileNotFoundError, match="evaluate.variants"):
        precision_cost("unit", ["tiny-distil"], ["int8"], tasks=["sts"], seeds=[1], results=tmp_path)


def test_precision_table_measures_speed_and_cost_then_reads_its_records_back(classifier_dir, tmp_path, monkeypatch):
    import pandas as pd

    from rokd.report import precision_table
    from rokd.tasks import speed
    from rokd.tasks.predictions import Predictions, predictions_path, save_predictions

    model = DistilBertForSequenceClassification.from_pretrained(classifier_dir)
    two = {"bert-base-ro": model, "distil-bert-base-ro": model}
    monkeypatch.setattr(speed, "load_classifiers", lambda prof, keys: two)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]], dtype=np.float32)
    flipped = probs.copy()
    flipped[2] = [0.6, 0.4]  # the int8 copy changes one of four labels
    ids, gold = np.array(["a", "b", "c", "d"]), np.array([0, 1, 1, 1])
    for name, p in (("distil-bert-base-ro", probs), ("distil-bert-base-ro@int8", flipped)):
        preds = Predictions(ids=ids, gold=gold, pred=p.argmax(1), probs=p, label_names=["neg", "pos"])
        save_predictions(preds, predictions_path(tmp_path, name, "sapn", 1))
    assert precision_table("smoke", results=tmp_path).empty  # nothing timed yet
    speed.measure_precision_speed("smoke", results=tmp_path, min_round_s=0.01)
    table = precision_table("smoke", results=tmp_path)
    assert len(table) == 6 and set(table["variant"]) == {"fp32", "bf16", "int8"}
    row = table[(table["model"] == "Distil-BERT-base-ro") & (table["variant"] == "int8")].iloc[0]
    assert row["score change (points)"] == pytest.approx(-25.0) and row["L-L to fp32 (%)"] == pytest.approx(75.0)
    teacher_int8 = table[(table["model"] == "BERT-base-ro") & (table["variant"] == "int8")].iloc[0]
    assert math.isnan(teacher_int8["score change (points)"])  # no predictions of the teacher's int8 copy
    assert len(pd.read_csv(tmp_path / "precision_cost.csv")) == 1
    # Without the models and the full predictions (a published book), the records give the same table.
    monkeypatch.setattr(speed, "load_classifiers", lambda prof, keys: {})
    assert speed.measure_precision_speed("smoke", results=tmp_path) is None  # nothing built: the record stays
    for f in tmp_path.glob("predictions/*/*/*.npz"):
        f.unlink()
    pd.testing.assert_frame_equal(precision_table("smoke", results=tmp_path), table, check_dtype=False)
