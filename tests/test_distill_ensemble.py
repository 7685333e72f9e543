"""Ensembles and the cross-tokenizer mechanism: probability averaging, the vocabulary map (hand-checked),
word and sub-word alignment between two tokenizations of the same text."""

import pytest
import torch
from distill_fixtures import tokenizers

from rokd import mlm
from rokd.distill.batching import CrossTokenizerView, DistillCollator, PairedLines
from rokd.distill.ensemble import VocabularyMap, ensemble_soft_targets

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ensemble_weighted_average_of_probabilities():
    p1 = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    p2 = torch.tensor([[0.6, 0.4], [0.9, 0.1]])
    # weights 3:1 -> 0.75 * p1 + 0.25 * p2 = [0.3, 0.7] on row 1
    out, cov = ensemble_soft_targets([p1, p2], [3.0, 1.0])
    assert torch.allclose(out[0], torch.tensor([0.3, 0.7]))
    uniform, _ = ensemble_soft_targets([p1, p2])
    assert torch.allclose(uniform[1], torch.tensor([0.7, 0.3]))
    # Teacher 2 abstains on row 2: the weights renormalise to teacher 1 alone there.
    out, cov = ensemble_soft_targets([p1, p2], [3.0, 1.0], [None, torch.tensor([True, False])])
    assert torch.allclose(out[1], p1[1]) and cov.all()
    out, cov = ensemble_soft_targets([p2], None, [torch.tensor([True, False])])
    assert cov.tolist() == [True, False] and out[1].sum() == 0
    with pytest.raises(ValueError):
        ensemble_soft_targets([p1, p2], [1.0])


STUDENT_VOCAB = {"[PAD]": 0, "Casa": 1, "casa": 2, "CASA": 3, "Ana": 4, "##re": 5, "xyz": 6}
TEACHER_VOCAB = {"[PAD]": 0, "casa": 1, "ana": 2, "##re": 3, "mere": 4}


def test_vocabulary_map_hand_checked():
    vm = VocabularyMap(STUDENT_VOCAB, TEACHER_VOCAB)
    # exact match first ([PAD], casa, ##re), else lower-case (Casa, CASA -> casa; Ana -> ana); xyz has none.
    assert vm.target.tolist() == [0, 1, 1, 1, 2, 3, -1]
    assert vm.stats() == {"student_tokens_mapped": pytest.approx(6 / 7), "teacher_tokens_mapped": pytest.approx(4 / 5)}
    p = torch.tensor([[0.1, 0.4, 0.2, 0.1, 0.2]])  # teacher: [PAD] .1, casa .4, ana .2, ##re .1, mere .2
    mapped, mass = vm.map_probs(p)
    # "mere" has no student token: 0.8 of the mass maps. Uniform split of casa's 0.4 over 3 cased forms.
    assert mass.item() == pytest.approx(0.8)
    expected = torch.tensor([0.1, 0.4 / 3, 0.4 / 3, 0.4 / 3, 0.2, 0.1, 0.0]) / 0.8
    assert torch.allclose(mapped[0], expected, atol=1e-6)
    # Split by a reference (e.g. the cased teacher): Casa .3, casa .1, CASA 0 -> casa's .4 goes 3:1:0.
    # [PAD] has reference 0 in its one-token group -> uniform within the group (all of it).
    ref = torch.tensor([[0.0, 0.3, 0.1, 0.0, 0.2, 0.1, 0.3]])
    mapped, _ = vm.map_probs(p, ref)
    expected = torch.tensor([0.1, 0.3, 0.1, 0.0, 0.2, 0.1, 0.0]) / 0.8
    assert torch.allclose(mapped[0], expected, atol=1e-6)
    assert mapped.sum().item() == pytest.approx(1.0)


def test_vocabulary_map_real_tokenizers():
    cased, uncased = tokenizers()
    assert cased.get_vocab() != uncased.get_vocab()
    vm = VocabularyMap.from_tokenizers(cased, uncased)
    cv, uv = cased.get_vocab(), uncased.get_vocab()
    for token in ("[MASK]", "[CLS]"):
        assert vm.target[cv[token]] == uv[token]
    for token, sid in cv.items():
        tid = int(vm.target[sid])
        if tid >= 0:
            t_token = uncased.convert_ids_to_tokens(tid)
            assert t_token == token or t_token == token.lower()


def _batch(texts, max_length=32, seed=3, p=0.5):
    cased, uncased = tokenizers()
    s = mlm.tokenize_lines(texts, cased, max_length)
    t = mlm.tokenize_lines(texts, uncased, 2 * max_length)
    data = PairedLines(s, {"robert-base": t})
    coll = DistillCollator(mlm.WholeWordMaskCollator(cased, p, seed=seed), [CrossTokenizerView("robert-base", uncased)])
    return coll([data[i] for i in range(len(data))]), s, t, cased, uncased


def test_cross_tokenizer_batch_masks_the_same_words_and_aligns_subwords():
    texts = ["Casa mare din București este veche.", "Președintele României a vizitat Clujul."]
    batch, s, t, cased, uncased = _batch(texts)
    s_labels, t_labels = batch["labels"], batch["robert-base.labels"]
    for b, text in enumerate(texts):
        ex_s, ex_t = s[b], t[b]

        # Characters of the words masked in each tokenization: the same set.
        def masked_chars(ex, labels):
            spans = [tuple(ex["char_spans"][i]) for i in range(len(ex["input_ids"])) if labels[b, i] != -100]
            return {c for a, e in spans for c in range(a, e)}

        assert masked_chars(ex_s, s_labels) == masked_chars(ex_t, t_labels)
        assert masked_chars(ex_s, s_labels)  # something was masked
        # Each masked teacher sub-word follows its word's action in the student: [MASK] -> the teacher's own
        # [MASK], keep -> the original teacher token.
        t_in = batch["robert-base.input_ids"][b]
        for pt in (t_labels[b] != -100).nonzero().flatten().tolist():
            a, e = ex_t["char_spans"][pt].tolist()
            ps = next(
                i
                for i, (sa, se) in enumerate(ex_s["char_spans"].tolist())
                if ex_s["word_ids"][i] >= 0 and sa < e and a < se
            )
            action = int(batch["word_actions"][b, int(ex_s["word_ids"][ps])])
            if action == mlm.ACTION_MASK:
                assert int(t_in[pt]) == uncased.mask_token_id
            elif action == mlm.ACTION_KEEP:
                assert int(t_in[pt]) == int(ex_t["input_ids"][pt])
            else:
                assert action == mlm.ACTION_RANDOM
    # Aligned rows cover exactly the same characters and the uncased token is the lower-cased student token.
    rows = batch["robert-base.row_of_student_row"]
    s_pos = (s_labels != -100).nonzero().tolist()
    t_pos = (t_labels != -100).nonzero().tolist()
    assert len(rows) == len(s_pos)
    for i, j in enumerate(rows.tolist()):
        if j < 0:
            continue
        (b, ps), (bt, pt) = s_pos[i], t_pos[j]
        assert b == bt and tuple(s[b]["char_spans"][ps]) == tuple(t[b]["char_spans"][pt])
        s_tok = cased.convert_ids_to_tokens(int(s[b]["input_ids"][ps]))
        t_tok = uncased.convert_ids_to_tokens(int(t[b]["input_ids"][pt]))
        assert t_tok == s_tok.lower()
    # Word units: every unit has positions on both sides.
    n = int(batch["robert-base.n_units"])
    assert n > 0
    assert set(batch["robert-base.student_unit"][batch["robert-base.student_unit"] >= 0].tolist()) == set(range(n))
    assert set(batch["robert-base.teacher_unit"][batch["robert-base.teacher_unit"] >= 0].tolist()) == set(range(n))


def test_teacher_input_is_cut_at_the_student_truncation_point():
    text = ["Universitatea din București are mulți studenți și Guvernul a aprobat bugetul pentru anul viitor."]
    batch, s, t, cased, uncased = _batch(text, max_length=8)
    s_end = max(e for (a, e), w in zip(s[0]["char_spans"].tolist(), s[0]["word_ids"].tolist()) if w >= 0)
    t_ids = batch["robert-base.input_ids"][0]
    assert int(t_ids[-1]) == uncased.sep_token_id or uncased.sep_token_id in t_ids.tolist()
    n_t = int(batch["robert-base.attention_mask"][0].sum())
    assert n_t < len(t[0]["input_ids"])  # the teacher's copy was shortened to the student's span
    kept = [tuple(x) for x in t[0]["char_spans"][1 : n_t - 1].tolist()]
    assert all(e <= s_end for _, e in kept)
