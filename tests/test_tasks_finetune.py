"""Fine-tuning: first-sub-word alignment, the STS regression head, the end-to-end protocol on tiny fixtures."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from distill_fixtures import tiny_bert

from rokd import precision
from rokd.profiles import EvalConfig, Profile
from rokd.tasks.encode import IGNORE_INDEX, align_labels, encode_sentences, encode_tagging, stable_subset
from rokd.tasks.finetune import build_task_model, evaluate_model, length_grouped_batches
from rokd.tasks.predictions import load_predictions, predictions_path
from rokd.tasks.scores import read_scores

WORDS = ["ana", "are", "mere", "pere", "ion", "vede", "casa", "mare", "in", "oras", "bun", "rau"]
PIECES = ["##le", "##ul", "##a"]


def _tokenizer(lowercase: bool = False):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *PIECES, ".", ","])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny BERT MLM teacher and a DistilBERT MLM student, saved in HF format with the tokenizer."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    root = tmp_path_factory.mktemp("models")
    tok = _tokenizer()
    bert = tiny_bert(tok, hidden=16, layers=1, seed=0)
    distil = DistilBertForMaskedLM(
        DistilBertConfig(vocab_size=len(tok), dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=64)
    )
    paths = {}
    for name, model in (("tiny-bert", bert), ("tiny-distil", distil)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths[name] = root / name
    return paths


def test_align_labels_first_subword_only():
    # [CLS] ana are mere -> mere is split in two pieces, ". " one piece, [SEP]
    word_ids = [None, 0, 1, 2, 2, 3, None]
    assert align_labels(word_ids, [5, 6, 7, 8]) == [IGNORE_INDEX, 5, 6, 7, IGNORE_INDEX, 8, IGNORE_INDEX]


def test_encode_tagging_with_real_tokenizer_aligns_and_splits_long_sentences():
    tok = _tokenizer()
    # "merele" -> mere ##le (two sub-words); "\u200b" tokenises to nothing and is fed as [UNK].
    enc = encode_tagging(
        tok, ["s1", "s2"], [["ana", "are", "merele", "\u200b"], ["ion"] * 9], [[1, 2, 3, 4], [0] * 9], max_length=6
    )
    # s1: 5 sub-words > 4 allowed between [CLS]/[SEP] -> two chunks; s2: 9 words -> three chunks.
    toks = [tok.convert_ids_to_tokens(f["input_ids"]) for f in enc.features]
    # 4 sub-words fit between [CLS] and [SEP]: s1 -> [ana are mere ##le] + [UNK]; s2 -> 4 + 4 + 1 words.
    assert toks[0] == ["[CLS]", "ana", "are", "mere", "##le", "[SEP]"]
    assert toks[1] == ["[CLS]", "[UNK]", "[SEP]"]
    assert [len(t) for t in toks[2:]] == [6, 6, 3]
    assert enc.features[0]["labels"] == [IGNORE_INDEX, 1, 2, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert enc.features[1]["labels"] == [IGNORE_INDEX, 4, IGNORE_INDEX]
    assert enc.row_ids[:4] == ["s1#0", "s1#1", "s1#2", "s1#3"] and enc.row_ids[-1] == "s2#8"
    assert len(enc.row_ids) == 13 and enc.gold.tolist()[:4] == [1, 2, 3, 4]
    # Every word is scored exactly once, on its first sub-word.
    assert sum(sum(v != IGNORE_INDEX for v in f["labels"]) for f in enc.features) == 13
    assert enc.n_truncated == 2  # both sentences had to be split


def test_encode_sentences_truncates_and_counts():
    tok = _tokenizer()
    enc = encode_sentences(
        tok, ["a", "b"], ["ana are mere pere ion vede", "ana"], None, [0, 1], max_length=5, regression=False
    )
    assert [len(f["input_ids"]) for f in enc.features] == [5, 3]
    assert enc.n_truncated == 1
    pair = encode_sentences(tok, ["p"], ["ana are"], ["ion vede"], [3.5], max_length=32, regression=True)
    assert tok.convert_ids_to_tokens(pair.features[0]["input_ids"]) == [
        "[CLS]",
        "ana",
        "are",
        "[SEP]",
        "ion",
        "vede",
        "[SEP]",
    ]
    assert pair.gold.dtype == np.float32 and pair.features[0]["labels"] == 3.5


def test_stable_subset_is_seed_and_order_independent():
    ids = [f"ex{i}" for i in range(100)]
    a = stable_subset(ids, 10)
    shuffled = ids[::-1]
    b = stable_subset(shuffled, 10)
    assert sorted(ids[i] for i in a) == sorted(shuffled[i] for i in b)
    assert a == sorted(a) and len(set(a)) == 10
    assert stable_subset(ids, None) == list(range(100))


def test_length_grouped_batches_cover_every_example_once():
    lengths = [random.Random(1).randint(3, 60) for _ in range(70)]
    batches = length_grouped_batches(lengths, 8, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(70))
    assert all(len(b) <= 8 for b in batches)


def test_sts_regression_head_shape_and_mse_loss(tiny_models):
    tok = _tokenizer()
    for path in tiny_models.values():
        model = build_task_model(str(path), "sts", None)
        assert model.config.num_labels == 1 and model.config.problem_type == "regression"
        enc = tok(["ana are", "ion vede casa"], ["mere", "casa mare"], padding=True, return_tensors="pt")
        enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        labels = torch.tensor([1.0, 4.5])
        out = model(**enc, labels=labels)
        assert out.logits.shape == (2, 1)
        assert torch.allclose(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels))


def _tagging_dataset(n: int = 40):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    names = ["O", "B-PERSON", "I-PERSON", "B-GPE", "I-GPE"]
    rng = random.Random(0)
    rows = {"id": [], "tokens": [], "labels": []}
    for i in range(n):
        toks, labs = [], []
        for _ in range(rng.randint(3, 9)):
            w = rng.choice(WORDS)
            toks.append(w)
            labs.append(1 if w in ("ana", "ion") else 3 if w == "oras" else 0)
        rows["id"].append(f"sent{i}")
        rows["tokens"].append(toks)
        rows["labels"].append(labs)
    feats = Features(
        {"id": Value("string"), "tokens": Sequence(Value("string")), "labels": Sequence(ClassLabel(names=names))}
    )
    ds = Dataset.from_dict(rows, features=feats)
    dd = DatasetDict(train=ds, validation=ds.select(range(10)), test=ds.select(range(10, 20)))
    for split, kind in (("train", "substitute"), ("validation", "official"), ("test", "official")):
        # the provenance record rokd.data attaches to each split (read by rokd.data.split_provenance)
        dd[split] = dd[split].flatten_indices()
        dd[split].info.description = json.dumps({"kind": kind, "source": "fixture", "note": f"{split} of a fixture"})
    return dd


def _sts_dataset(n: int = 40):
    from datasets import Dataset, DatasetDict, Features, Value

    rng = random.Random(1)
    rows = {"id": [], "text": [], "text_pair": [], "label": []}
    for i in range(n):
        a = " ".join(rng.choice(WORDS) for _ in range(4))
        b = " ".join(rng.choice(WORDS) for _ in range(4))
        rows["id"].append(f"pair{i}")
        rows["text"].append(a)
        rows["text_pair"].append(b)
        rows["label"].append(round(5 * len(set(a.split()) & set(b.split())) / 4, 2))
    ds = Dataset.from_dict(
        rows,
        features=Features(
            {"id": Value("string"), "text": Value("string"), "text_pair": Value("string"), "label": Value("float32")}
        ),
    )
    return DatasetDict(train=ds, validation=ds.select(range(12)), test=ds.select(range(12, 24)))


def _profile() -> Profile:
    return Profile(
        name="unit",
        device="cpu",
        evaluate=EvalConfig(
            tasks=["ner", "sts"],
            seeds=[1],
            max_length=12,
            max_train_examples=30,
            max_eval_examples=10,
            epochs=2,
            batch_size=8,
            lr=1e-3,
            evals_per_epoch=2,
        ),
    )


def test_evaluate_model_ner_end_to_end_and_idempotent(tiny_models, tmp_path):
    prof = _profile()
    dd = _tagging_dataset()
    metrics = evaluate_model(
        prof, str(tiny_models["tiny-distil"]), "ner", 1, dataset=dd, results_dir=tmp_path, log=None
    )
    assert set(metrics) == {"macro_f1", "micro_f1", "macro_f1_strict", "token_accuracy"}
    preds = load_predictions(predictions_path(tmp_path, "tiny-distil", "ner", 1))
    test_words = sum(len(t) for t in dd["test"]["tokens"])
    assert len(preds.ids) == test_words and preds.ids[0] == "sent10#0"
    assert preds.probs.shape == (test_words, 5) and np.allclose(preds.probs.sum(1), 1, atol=1e-5)
    assert preds.label_names[1] == "B-PERSON"
    run = json.loads(predictions_path(tmp_path, "tiny-distil", "ner", 1).with_suffix(".run.json").read_text())
    # Model selection: validation scored at several points, test once with the best one.
    assert len(run["history"]) >= 2 and run["selected"]["step"] in [h["step"] for h in run["history"]]
    best_val = max(h["val_macro_f1"] for h in run["history"])
    assert run["selected"]["val_macro_f1"] == best_val
    assert run["sizes"]["train"]["examples"] == 30 and run["max_length"] == 12
    rows = read_scores(tmp_path / "scores.csv")
    assert {(r["model"], r["task"], r["metric"]) for r in rows} == {("tiny-distil", "ner", m) for m in metrics}
    mtime = predictions_path(tmp_path, "tiny-distil", "ner", 1).stat().st_mtime_ns
    again = evaluate_model(prof, str(tiny_models["tiny-distil"]), "ner", 1, dataset=dd, results_dir=tmp_path, log=None)
    assert again == metrics
    assert predictions_path(tmp_path, "tiny-distil", "ner", 1).stat().st_mtime_ns == mtime  # reused, not re-run
    # The results chapter reads split sizes / truncation from the run records.
    from rokd.report import split_provenance_table

    prov = split_provenance_table("unit", tmp_path)
    assert prov["split"].tolist() == ["train", "validation", "test"]
    assert prov["kind"].tolist() == ["substitute", "official", "official"]
    assert prov["examples used"].tolist() == [30, 10, 10] and set(prov["max_length"]) == {12}


def test_evaluate_model_sts_writes_raw_scores(tiny_models, tmp_path):
    prof = _profile()
    metrics = evaluate_model(
        prof, str(tiny_models["tiny-bert"]), "sts", 2, dataset=_sts_dataset(), results_dir=tmp_path, log=None
    )
    assert set(metrics) == {"pearson", "spearman"}
    preds = load_predictions(predictions_path(tmp_path, "tiny-bert", "sts", 2))
    assert preds.is_regression and preds.pred.dtype == np.float32 and len(preds.pred) == 10
    assert preds.meta["task"] == "sts" and preds.meta["max_length"] == 12


def test_label_inventory_is_train_and_validation_tags_only():
    from rokd.tasks.encode import LabelInventory

    names = ["ADJ", "NOUN", "SYM", "VERB"]
    inv = LabelInventory.build("upos", names, [[[1, 3], [1]], [[0]]])  # train: NOUN VERB NOUN; validation: ADJ
    assert inv.model_names == ["ADJ", "NOUN", "VERB"] and inv.left_out == ["SYM"]
    assert inv.to_model([[0, 1, 3]]) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="SYM"):
        inv.to_model([[2]])
    pred, probs = inv.to_source(np.array([2, 0]), np.array([[0.2, 0.1, 0.7], [0.5, 0.3, 0.2]], dtype=np.float32))
    assert pred.tolist() == [3, 0]  # model class 2 is VERB (dataset id 3)
    np.testing.assert_allclose(probs, [[0.2, 0.1, 0.0, 0.7], [0.5, 0.3, 0.0, 0.2]])  # no mass on SYM
    expected = {"classes": 3, "dataset_labels": 4, "left_out": ["SYM"], "test_rows_outside": 2}
    assert inv.record(np.array([2, 1, 2])) == expected
    # NER (and the sentence tasks): the annotation scheme's labels, whatever the sample holds
    assert LabelInventory.build("ner", ["O", "B-X", "I-X"], [[[0]]]).model_names == ["O", "B-X", "I-X"]


def _upos_dataset_with_a_test_only_tag():
    """Tags by word; ``oras`` is tagged SYM (id 2) only in the test split."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    names = ["ADJ", "NOUN", "SYM", "VERB"]
    tag = {"ana": 1, "ion": 1, "mere": 1, "pere": 1, "casa": 1, "are": 3, "vede": 3, "mare": 0, "bun": 0, "rau": 0}
    feats = Features(
        {"id": Value("string"), "tokens": Sequence(Value("string")), "labels": Sequence(ClassLabel(names=names))}
    )
    rng = random.Random(3)

    def split(prefix, n, extra=None):
        rows = {"id": [], "tokens": [], "labels": []}
        for i in range(n):
            toks = [rng.choice(sorted(tag)) for _ in range(rng.randint(2, 6))] + ([extra] if extra else [])
            rows["id"].append(f"{prefix}{i}")
            rows["tokens"].append(toks)
            rows["labels"].append([tag.get(w, 2) for w in toks])
        return Dataset.from_dict(rows, features=feats)

    return DatasetDict(train=split("a", 30), validation=split("b", 10), test=split("c", 10, extra="oras"))


def test_upos_test_tag_unseen_in_training_counts_as_an_error(tiny_models, tmp_path):
    from rokd.tasks.baselines import score_baseline

    prof = _profile()
    dd = _upos_dataset_with_a_test_only_tag()
    metrics = evaluate_model(prof, str(tiny_models["tiny-bert"]), "upos", 1, dataset=dd, results_dir=tmp_path, log=None)
    preds = load_predictions(predictions_path(tmp_path, "tiny-bert", "upos", 1))
    sym = preds.gold == 2
    assert sym.sum() == 10  # one "oras" per test sentence
    assert (preds.pred[sym] != 2).all() and (preds.probs[:, 2] == 0).all()  # the model has no SYM output
    assert preds.label_names == ["ADJ", "NOUN", "SYM", "VERB"]  # files keep the dataset's ids and names
    assert metrics["accuracy"] == pytest.approx(float((preds.pred == preds.gold).mean()))
    assert metrics["accuracy"] <= 1 - sym.mean()
    run = json.loads(predictions_path(tmp_path, "tiny-bert", "upos", 1).with_suffix(".run.json").read_text())
    assert run["labels"] == {"classes": 3, "dataset_labels": 4, "left_out": ["SYM"], "test_rows_outside": 10}
    assert run["headline_metric"] == "accuracy" and "val_accuracy" in run["selected"]
    # A baseline on the same profile and data scores exactly the same rows.
    score_baseline(prof, "baseline-lexical", "upos", [1], dataset=dd, results_dir=tmp_path, log=None)
    base = load_predictions(predictions_path(tmp_path, "baseline-lexical", "upos", 1))
    assert base.ids.tolist() == preds.ids.tolist() and base.gold.tolist() == preds.gold.tolist()
    assert (base.pred[sym] != 2).all()  # "oras" is unseen: the most frequent tag


# ------------------------------------------------------------------ fine-tuning through rokd.trainer


def _encoded_ner(tok, dd):
    from rokd.tasks.finetune import encode_split

    return encode_split(dd["train"], "ner", tok, 12, 30), encode_split(dd["validation"], "ner", tok, 12, 10)


def _fresh_ner_model(path, seed=0):
    torch.manual_seed(seed)  # the new head's initialisation
    return build_task_model(str(path), "ner", ["O", "B-PERSON", "I-PERSON", "B-GPE", "I-GPE"])


def test_task_batches_resume_from_their_state():
    from rokd.tasks.encode import Encoded
    from rokd.tasks.finetune import TaskBatches

    feats = [{"input_ids": [2] + [5] * n + [3], "attention_mask": [1] * (n + 2), "labels": 0} for n in range(1, 12)]
    enc = Encoded(features=feats, row_ids=[str(i) for i in range(11)], gold=np.zeros(11), n_examples=11)
    names = ("input_ids", "attention_mask")
    stream = TaskBatches(enc, 4, seed=3, pad_id=0, input_names=names, tagging=False, regression=False)
    seen = [next(stream)["input_ids"] for _ in range(5)]  # 3 batches per epoch: crosses into the second epoch
    state = stream.state_dict()
    rest = [next(stream)["input_ids"] for _ in range(4)]
    again = TaskBatches(enc, 4, seed=3, pad_id=0, input_names=names, tagging=False, regression=False)
    again.load_state_dict(state)
    assert again.drawn == 5
    assert all(torch.equal(a, next(again)["input_ids"]) for a in rest)
    # every example once per epoch, in the order of length_grouped_batches consumed from its end
    first_epoch = length_grouped_batches(enc.lengths, 4, random.Random(3))[::-1]
    assert [b.shape[0] for b in seen[:3]] == [len(b) for b in first_epoch]
    with pytest.raises(ValueError, match="seed"):
        other_seed = TaskBatches(enc, 4, seed=4, pad_id=0, input_names=names, tagging=False, regression=False)
        other_seed.load_state_dict(state)


def test_fine_tuning_resumes_bit_for_bit(tiny_models, tmp_path, one_thread):
    """Kill after 3 of 8 steps (checkpoints every 2), resume in fresh objects: the selected weights are
    torch.equal to an uninterrupted run's, and so is the validation history (dropout is on)."""
    from transformers import AutoTokenizer

    from rokd.tasks.finetune import train_and_select

    tok = AutoTokenizer.from_pretrained(tiny_models["tiny-distil"])
    train, val = _encoded_ner(tok, _tagging_dataset())
    cfg = EvalConfig(epochs=2, batch_size=8, lr=1e-3, evals_per_epoch=2, checkpoint_every=2, precision="fp32")
    labels = ["O", "B-PERSON", "I-PERSON", "B-GPE", "I-GPE"]
    ref_model = _fresh_ner_model(tiny_models["tiny-distil"])
    ref = train_and_select(ref_model, train, val, "ner", labels, cfg, 1, tmp_path / "ref", device="cpu")
    assert ref.completed and ref.precision.name == "fp32" and len(ref.history) == 4  # 4 steps/epoch, 2 scorings/epoch

    part = train_and_select(
        _fresh_ner_model(tiny_models["tiny-distil"]),
        train,
        val,
        "ner",
        labels,
        cfg,
        1,
        tmp_path / "run",
        device="cpu",
        max_steps_this_run=3,
    )
    assert not part.completed and [h["step"] for h in part.history] == [2]
    resumed_model = _fresh_ner_model(tiny_models["tiny-distil"], seed=99)  # other weights: the checkpoint must win
    resumed = train_and_select(resumed_model, train, val, "ner", labels, cfg, 1, tmp_path / "run", device="cpu")
    assert resumed.resumed_from == 3 and resumed.completed
    assert resumed.history == [{**h, "elapsed_s": r["elapsed_s"]} for h, r in zip(ref.history, resumed.history)]
    sa, sb = ref_model.state_dict(), resumed_model.state_dict()
    assert not [k for k in sa if not torch.equal(sa[k], sb[k])]
    # the selected state is the best scoring's, not simply the last one
    best = max((h for h in ref.history if h.get("best")), key=lambda h: h["step"])
    assert json.loads((tmp_path / "run" / "best.json").read_text())["step"] == best["step"]


def test_fine_tuning_records_precision_and_cleans_up(tiny_models, tmp_path, one_thread):
    prof = _profile()
    metrics = evaluate_model(
        prof, str(tiny_models["tiny-distil"]), "ner", 1, dataset=_tagging_dataset(), results_dir=tmp_path, log=None
    )
    run = json.loads(predictions_path(tmp_path, "tiny-distil", "ner", 1).with_suffix(".run.json").read_text())
    assert run["runtime"]["precision"] in ("fp32", "bf16") and run["runtime"]["torch_threads"] >= 1
    assert run["runtime"]["cpu_memory"] == precision.apply_cpu_memory()  # the allocator that served it
    assert run["config"]["precision"] == run["runtime"]["precision"] and run["metrics"] == metrics
    assert "threads" not in run["config"]["evaluate"]  # bookkeeping, not part of what decides the outputs
    assert not (tmp_path / ".work").exists()  # checkpoints are removed once the run is written
    # a run stopped early returns None and leaves a checkpoint that the next call continues from
    model = str(tiny_models["tiny-distil"])
    stopped = evaluate_model(
        prof, model, "ner", 2, dataset=_tagging_dataset(), results_dir=tmp_path, max_steps_this_run=2, log=None
    )
    assert stopped is None
    done = evaluate_model(prof, model, "ner", 2, dataset=_tagging_dataset(), results_dir=tmp_path, log=None)
    again = json.loads(predictions_path(tmp_path, "tiny-distil", "ner", 2).with_suffix(".run.json").read_text())
    assert again["resumed_from"] == 2 and again["metrics"] == done


def test_learning_curve_is_the_validation_history_of_one_run(tiny_models, tmp_path):
    from rokd.tasks.curves import curve_table, run_curve

    dd = _upos_dataset_with_a_test_only_tag()
    overrides = {"epochs": 3, "evals_per_epoch": 2, "lr": 5e-4}
    test = run_curve(_profile(), str(tiny_models["tiny-bert"]), "upos", "c1", overrides, tmp_path, dataset=dd, log=None)
    table = curve_table(tmp_path)
    run = json.loads(predictions_path(tmp_path, "c1", "upos", 1).with_suffix(".run.json").read_text())
    assert run["config"]["evaluate"]["epochs"] == 3 and run["config"]["evaluate"]["lr"] == 5e-4
    assert table["val"].tolist() == [h["val_accuracy"] for h in run["history"]]
    assert table["epoch"].tolist() == sorted(table["epoch"]) and table["epoch"].iloc[-1] == 3
    assert table["examples_seen"].iloc[-1] == 3 * 30  # 30 training sentences, three epochs
    assert (table["test"] == test["accuracy"]).all() and set(table["name"]) == {"c1"}
