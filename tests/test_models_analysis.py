"""Teacher analysis: linear CKA, word-level alignment across tokenizers, vocabularies, fertility, sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from distill_fixtures import tiny_bert

from rokd.models.analysis import (
    align_words,
    cka_matrix,
    diacritics_table,
    inference_throughput,
    linear_cka,
    normalization_summary,
    split_words,
    student_size_ratio,
    teacher_cka,
    tokenization_stats,
    vocab_overlap,
    word_representations,
)
from rokd.models.tokenizers import train_wordpiece

TEXTS = [
    "Ștefan citește o carte la București.",
    "Maria scrie o scrisoare lungă acasă.",
    "Copilul caută flori în grădină, iar bunica face pâine.",
    "Profesorul vede elevii la școală.",
] * 10


def test_linear_cka_hand_computed_value():
    # one feature each: CKA equals the squared Pearson correlation; centred x=(-1,0,1), y=(0,-1,1) -> r = 1/2
    assert linear_cka(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [0.0], [2.0]])) == pytest.approx(0.25)


def test_linear_cka_invariances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0)  # rotation, isotropic scale, shift
    assert linear_cka(x, rng.normal(size=(50, 8))) < 0.5
    with pytest.raises(ValueError, match="same items"):
        linear_cka(x, x[:10])


def test_split_words_and_alignment():
    assert split_words("Ana, ți-am spus!") == ["Ana", ",", "ți", "-", "am", "spus", "!"]
    ia, ib = align_words([(0, 0), (0, 1), (1, 0)], [(0, 1), (1, 0), (1, 1)])
    assert ia.tolist() == [1, 2] and ib.tolist() == [0, 1]


def _tiny_bert(tok, layers=2, seed=0):
    return tiny_bert(tok, hidden=16, layers=layers, seed=seed)


def test_word_level_cka_across_different_tokenizers():
    cased = train_wordpiece(TEXTS, vocab_size=80, lowercase=False)
    uncased = train_wordpiece(TEXTS, vocab_size=60, lowercase=True)
    sentences = [split_words(t) for t in TEXTS[:4]]
    layers, kept = word_representations(_tiny_bert(cased), cased, sentences)
    assert len(layers) == 3  # embeddings + 2 layers
    assert len(kept) == sum(len(s) for s in sentences)  # one row per word, whatever the subword count
    # a word's row is the mean of its subwords' embedding-layer states
    model = _tiny_bert(cased)
    enc = cased([sentences[0]], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        h0 = model(**enc, output_hidden_states=True).hidden_states[0][0]
    wids = enc.word_ids(0)
    word0 = h0[[i for i, w in enumerate(wids) if w == 0]].mean(0).numpy()
    layers0, _ = word_representations(model, cased, sentences[:1])
    np.testing.assert_allclose(layers0[0][0], word0, atol=1e-5)

    matrix, n_words = teacher_cka(_tiny_bert(cased, 2), cased, _tiny_bert(uncased, 3, seed=1), uncased, TEXTS[:8])
    assert matrix.shape == (3, 4) and n_words == sum(len(split_words(t)) for t in TEXTS[:8])
    assert np.all((matrix >= 0) & (matrix <= 1 + 1e-9))
    same = cka_matrix(layers, layers)
    np.testing.assert_allclose(np.diag(same), 1.0, atol=1e-9)


def test_truncated_words_are_dropped():
    tok = train_wordpiece(TEXTS, vocab_size=80, lowercase=False)
    long_sentence = split_words(" ".join(TEXTS[:4]))
    _, kept = word_representations(_tiny_bert(tok), tok, [long_sentence], max_length=12)
    enc = tok([long_sentence], is_split_into_words=True, truncation=True, max_length=12)
    present = {w for w in enc.word_ids(0) if w is not None}
    assert len(kept) == len(present) - 1  # the last, possibly cut word is excluded
    assert all(w in present for _, w in kept)


def test_vocab_overlap_exact_and_casefolded():
    class Vocab:
        def __init__(self, words):
            self.v = {w: i for i, w in enumerate(words)}

        def get_vocab(self):
            return self.v

    out = vocab_overlap(Vocab(["Ana", "ana", "##re", "mere"]), Vocab(["ana", "##re", "pere"]))
    assert out["shared_exact"] == 2 and out["jaccard_exact"] == pytest.approx(2 / 5)
    assert out["casefolded_a"] == 3 and out["shared_casefolded"] == 2
    assert out["jaccard_casefolded"] == pytest.approx(2 / 4)


def test_fertility_and_unknown_rate():
    tok = train_wordpiece(TEXTS, vocab_size=80, lowercase=False)
    stats = tokenization_stats(tok, ["Maria citește", "ζζ"])
    words = 3
    subwords = len(tok.tokenize("Maria")) + len(tok.tokenize("citește")) + len(tok.tokenize("ζζ"))
    assert stats["words"] == words and stats["subwords"] == subwords
    assert stats["fertility"] == pytest.approx(subwords / words)
    assert stats["unk_word_rate"] == pytest.approx(1 / 3)  # Greek letters are not in the alphabet


def test_diacritics_and_normalization_tables():
    cased = train_wordpiece(TEXTS, vocab_size=80, lowercase=False)
    uncased = train_wordpiece(TEXTS, vocab_size=60, lowercase=True)
    table = diacritics_table({"cased": cased, "uncased": uncased}, probes=["Ștefan", "ştiinţă"])
    assert table.loc["Ștefan", "uncased"].replace(" ##", "").startswith("ștefan")
    summary = normalization_summary({"cased": cased, "uncased": uncased})
    assert bool(summary.loc["uncased", "lowercases"]) and not bool(summary.loc["cased", "lowercases"])
    assert summary["keeps diacritics"].all()


def test_student_size_ratio_reproduces_the_paper_counts():
    r = student_size_ratio(50000, 768, 12, 12, 3072, 512)
    assert round(r["teacher_parameters"] / 1e6) == 124  # BERT-base-ro: 124 M
    assert round(r["student_parameters"] / 1e6) == 81  # Distil-BERT-base-ro: 81 M
    assert r["reduction"] == pytest.approx(0.35, abs=0.01)


def test_inference_throughput_counts_tokens():
    tok = train_wordpiece(TEXTS, vocab_size=80, lowercase=False)
    out = inference_throughput(_tiny_bert(tok), tok, TEXTS[:8], batch_size=4)
    assert out["sentences"] == 8 and out["tokens"] == sum(len(tok(t)["input_ids"]) for t in TEXTS[:8])
    assert out["tokens_per_s"] > 0 and out["sentences_per_s"] > 0


def test_quality_summary_compares_each_measure_with_the_baseline():
    from rokd.models.analysis import quality_frame, quality_summary

    q = {
        "mlm_accuracy": 0.2,
        "unigram_mlm_accuracy": 0.05,
        "pseudo_perplexity": 1200.0,
        "whole_word_pseudo_perplexity": 300.0,
        "unigram_pseudo_perplexity": 1000.0,
        "single_mask_accuracy": 0.1,
        "unigram_single_mask_accuracy": 0.05,
        "train_wall_s": 600.0,
        "torch_threads": 2,
        "device": "cpu",
    }
    text = quality_summary({"T": q})
    assert "MLM accuracy **0.200** vs 0.050 for the unigram baseline (4.0x)" in text
    assert "whole-word pseudo-perplexity **300** vs 1,000 (beats the baseline, ratio 0.30)" in text
    assert "single-token pseudo-perplexity **1,200** vs 1,000 (does not beat the baseline, ratio 1.20)" in text
    assert "pretrained in 10 min on cpu at 2 torch thread(s)." in text
    resumed = quality_summary({"T": {**q, "trained_s": 13800.0}})  # resumed: the trainer's clock counts every sitting
    assert "pretrained in 230 min on cpu at 2 torch thread(s) (over several sittings; the last took 10 min)" in resumed
    old = {k: v for k, v in q.items() if k != "whole_word_pseudo_perplexity"}  # a quality.json from before the measure
    assert len(quality_frame({"T": old})) == 3 and len(quality_frame({"T": q})) == 4


def test_save_tokenizer_replaces_its_own_folder_and_refuses_a_users(tmp_path):
    from transformers import AutoTokenizer

    from rokd.errors import OutputDirError
    from rokd.models.tokenizers import save_tokenizer

    tok = train_wordpiece(TEXTS, vocab_size=80, lowercase=False)
    out = save_tokenizer(tok, tmp_path / "tok")
    assert AutoTokenizer.from_pretrained(str(out)).tokenize("Maria citește") == tok.tokenize("Maria citește")
    save_tokenizer(train_wordpiece(TEXTS, vocab_size=60, lowercase=True), out)  # rokd's own folder: replaced
    assert len(AutoTokenizer.from_pretrained(str(out))) == 60
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputDirError, match="not made by rokd"):
        save_tokenizer(tok, users)
    assert (users / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "tok"]  # no stage left behind
