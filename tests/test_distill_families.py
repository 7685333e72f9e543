"""Cross-tokenizer distillation across tokenizer families: family detection, surface forms, the vocabulary
map (hand-checked), character-span alignment (a differently split word is aligned or abstains), coverage of
masked positions for every ordered pair of four families, and students of each family architecture."""

import itertools

import numpy as np
import pytest
import torch
from family_fixtures import HELDOUT, KINDS, ROMANIAN_TEXT, family_tokenizers, tiny_teacher

from rokd import mlm
from rokd.distill.batching import (
    CrossTokenizerView,
    DistillCollator,
    PairedLines,
    assign_student_words,
    one_to_one_rows,
    unique_spans,
)
from rokd.distill.ensemble import VocabularyMap
from rokd.distill.vocab import WORDPIECE, TokenizerFamily, TokenizerFamilyError, surface_form, tokenizer_family

pytestmark = pytest.mark.usefixtures("one_thread")

SP = TokenizerFamily("sentencepiece", word_start="▁")
BYTE = TokenizerFamily("byte-bpe", word_start=" ")


def test_tokenizer_family_is_read_from_the_pipeline():
    toks = family_tokenizers()
    fams = {k: tokenizer_family(t) for k, t in toks.items()}
    assert {k: f.kind for k, f in fams.items()} == {
        "bert-cased": "wordpiece",
        "bert-uncased": "wordpiece",
        "xlm-roberta": "sentencepiece",
        "roberta": "byte-bpe",
    }
    assert [fams[k].uncased for k in KINDS] == [False, True, False, False]
    assert not any(f.strips_accents for f in fams.values())  # RoBERT-style: lower-cased, diacritics kept
    assert fams["bert-cased"].continuation == "##" and fams["xlm-roberta"].word_start == "▁"

    class Slow:  # a tokenizer without offsets (not backed by `tokenizers`)
        is_fast = False

    with pytest.raises(TokenizerFamilyError, match="not a fast tokenizer.*offsets"):
        tokenizer_family(Slow())


@pytest.mark.parametrize(
    "token, family, expected",
    [
        ("casa", WORDPIECE, ("casa", True)),
        ("##sa", WORDPIECE, ("sa", False)),
        ("##", WORDPIECE, ("##", True)),
        ("▁casa", SP, ("casa", True)),
        ("sa", SP, ("sa", False)),
        ("▁", SP, None),  # a lone marker stands for no character
        ("ĠCasa", BYTE, ("Casa", True)),
        ("PreÈĻ", BYTE, ("Preș", False)),  # the byte alphabet decoded to UTF-8
        ("Å", BYTE, None),  # the first byte of a two-byte character
        ("ÅŀtefÄĥ", BYTE, ("Ștefă", False)),  # cedilla Ş (from its bytes) -> comma-below Ș
        ("ţară", WORDPIECE, ("țară", True)),
        ("e\u0301", WORDPIECE, ("é", True)),  # NFC
    ],
)
def test_surface_form_hand_checked(token, family, expected):
    assert surface_form(token, family) == expected


def test_surface_form_folds_case_and_accents_only_when_asked():
    assert surface_form("Țară", WORDPIECE) == ("Țară", True)
    assert surface_form("Țară", WORDPIECE, fold_case=True) == ("țară", True)
    assert surface_form("Țară", WORDPIECE, fold_case=True, strip_accents=True) == ("tara", True)


ROLES = {0: "pad_token", 1: "mask_token"}


def test_vocabulary_map_across_families_hand_checked():
    # WordPiece student (cased), SentencePiece teacher (cased): markers differ, punctuation starts a word
    # in one and not in the other.
    student = {"[PAD]": 0, "[MASK]": 1, "casa": 2, "##sa": 3, "sa": 4, ".": 5, "Casa": 6}
    teacher = {"<pad>": 0, "<mask>": 1, "▁casa": 2, "sa": 3, "▁sa": 4, ".": 5, "▁.": 6, "mere": 7}
    vm = VocabularyMap(
        student, teacher, student_family=WORDPIECE, teacher_family=SP, student_special=ROLES, teacher_special=ROLES
    )
    assert not vm.fold_case  # both cased: Casa has no counterpart
    assert vm.target.tolist() == [0, 1, 2, 3, 4, 6, -1]  # same-form edges: "." (start) <- "▁." (start)
    p = torch.tensor([[0.0, 0.0, 0.1, 0.2, 0.3, 0.15, 0.05, 0.2]])
    # At a word-internal position on both sides only word-internal tokens count: "sa" -> "##sa", and
    # the mass of the other tokens is lost (mapped share 0.2 + teacher-internal "." 0.15 + "mere" 0.2).
    both_inside = vm.row_forms(torch.tensor([3]), torch.tensor([3]))
    assert both_inside.tolist() == [0]
    mapped, mass = vm.map_probs(p, forms=both_inside)
    assert mass.item() == pytest.approx(0.2)  # "sa" only: "." and "mere" (internal) have no internal student form
    assert mapped[0].tolist() == pytest.approx([0, 0, 0, 1.0, 0, 0, 0])
    # A "." that starts a word in the student but follows a word in the teacher (form 1).
    dot = vm.row_forms(torch.tensor([5]), torch.tensor([5]))
    assert dot.tolist() == [1]
    mapped, mass = vm.map_probs(p, forms=dot)
    # internal teacher tokens -> word-start student tokens: "sa" -> "sa", "." -> "."
    assert mass.item() == pytest.approx(0.2 + 0.15)
    assert mapped[0].tolist() == pytest.approx([0, 0, 0, 0, 0.2 / 0.35, 0.15 / 0.35, 0])
    assert vm.label_mapped(torch.tensor([5, 2, 6]), torch.tensor([5, 2, 2])).tolist() == [True, True, False]


def test_vocabulary_map_uncased_student_takes_every_cased_form():
    student = {"[PAD]": 0, "casa": 1, "##sa": 2}
    teacher = {"[PAD]": 0, "Casa": 1, "casa": 2, "CASA": 3, "##sa": 4}
    vm = VocabularyMap(
        student,
        teacher,
        student_family=TokenizerFamily("wordpiece", continuation="##", uncased=True),
        teacher_family=WORDPIECE,
    )
    assert vm.fold_case
    p = torch.tensor([[0.0, 0.3, 0.2, 0.1, 0.4]])
    mapped, mass = vm.map_probs(p)
    assert mass.item() == pytest.approx(1.0)
    assert mapped[0].tolist() == pytest.approx([0.0, 0.6, 0.4])  # casa <- Casa + casa + CASA


def test_assign_student_words_by_character_overlap():
    # "Ana are mere." -- student (WordPiece): Ana | are | me ##re | . ; teacher (SentencePiece): ▁Ana ▁are ▁mer e.
    s_words = np.array([-1, 0, 1, 2, 2, 3, -1])
    s_spans = np.array([[0, 0], [0, 3], [4, 7], [8, 10], [10, 12], [12, 13], [0, 0]])
    t_words = np.array([-1, 0, 1, 2, 2, -1])
    t_spans = np.array([[0, 0], [0, 3], [4, 7], [8, 11], [11, 13], [0, 0]])
    assert assign_student_words(s_words, s_spans, t_words, t_spans).tolist() == [-1, 0, 1, 2, 2, -1]
    # "e." straddles "mere" and "."; when only "." is masked it takes "."'s decision (never shows a masked character).
    actions = np.array([0, 0, 0, mlm.ACTION_MASK])
    assert assign_student_words(s_words, s_spans, t_words, t_spans, actions).tolist() == [-1, 0, 1, 2, 3, -1]
    # A lone marker token (empty span) follows the other tokens of its word.
    t_words2, t_spans2 = np.array([-1, 0, 0, -1]), np.array([[0, 0], [0, 0], [0, 3], [0, 0]])
    assert assign_student_words(s_words, s_spans, t_words2, t_spans2).tolist() == [-1, 0, 0, -1]


def test_duplicate_or_empty_spans_abstain():
    # A byte-level BPE cuts Ş into two byte tokens with the same span (0, 1): neither aligns.
    t_spans = np.array([[0, 0], [0, 1], [0, 1], [1, 3], [3, 3]])
    assert unique_spans(t_spans) == {(1, 3): 3}
    s_spans = np.array([[0, 0], [0, 1], [1, 3]])
    rows = one_to_one_rows([(0, 1), (0, 2)], [(0, 1), (0, 2), (0, 3)], [s_spans], [t_spans])
    assert rows == [-1, 2]


def _masked_batch(s_kind, t_kind, texts=HELDOUT, seed=3):
    """Every word of ``texts`` masked in the student's tokenization (p -> 1), mapped into the teacher's."""
    toks = family_tokenizers()
    s = mlm.tokenize_lines(texts, toks[s_kind], 64)
    t = mlm.tokenize_lines(texts, toks[t_kind], 128)
    masking = mlm.WholeWordMaskCollator(toks[s_kind], 0.999, seed=seed)
    coll = DistillCollator(masking, [CrossTokenizerView("t", toks[t_kind])])
    data = PairedLines(s, {"t": t})
    return coll([data[i] for i in range(len(data))]), s, t


def pair_coverage(s_kind, t_kind, legacy: bool = False, texts=ROMANIAN_TEXT) -> tuple[float, float]:
    """(aligned share, label-mapped share) of the student's masked positions on ``texts``.

    ``legacy``: the map rokd had before tokenizer families (a student token takes the teacher token of the
    same string, or of its lower-cased string), as the control.
    """
    toks = family_tokenizers()
    vm = VocabularyMap.from_tokenizers(toks[s_kind], toks[t_kind])
    batch, _, _ = _masked_batch(s_kind, t_kind, texts)
    rows = batch["t.row_of_student_row"]
    aligned = rows >= 0
    s_tok = batch["labels"][batch["labels"] != -100][aligned]
    t_tok = batch["t.labels"][batch["t.labels"] != -100][rows[aligned]]
    if legacy:
        t_vocab = toks[t_kind].get_vocab()
        s_strings = toks[s_kind].convert_ids_to_tokens(s_tok.tolist())
        old = torch.tensor([t_vocab.get(x, t_vocab.get(x.lower(), -1)) for x in s_strings], dtype=torch.long)
        hits = (old == t_tok).sum()
    else:
        hits = vm.label_mapped(s_tok, t_tok).sum()
    return float(aligned.float().mean()), float(hits) / len(rows)


@pytest.mark.parametrize("s_kind, t_kind", list(itertools.permutations(KINDS, 2)))
def test_coverage_of_masked_positions_for_every_family_pair(s_kind, t_kind):
    # The whole text: 40 sentences the tokenizers were trained on, as the frequent words a real tokenizer
    # knows, and 10 held out, whose unseen words each tokenizer cuts its own way (printed apart).
    aligned, coverage = pair_coverage(s_kind, t_kind)
    _, legacy = pair_coverage(s_kind, t_kind, legacy=True)
    _, heldout = pair_coverage(s_kind, t_kind, texts=HELDOUT)
    print(
        f"\n{s_kind} student <- {t_kind} teacher: {coverage:.1%} of the masked positions map "
        f"({aligned:.1%} aligned; held-out sentences alone {heldout:.1%}); "
        f"exact / lower-cased string match: {legacy:.1%}"
    )
    assert coverage >= 0.5
    assert coverage == pytest.approx(aligned)  # every one-to-one position's tokens correspond through the map
    toks = family_tokenizers()
    if tokenizer_family(toks[s_kind]).kind != tokenizer_family(toks[t_kind]).kind:
        assert legacy < coverage - 0.25  # markers and the byte alphabet not understood: word starts lost


@pytest.mark.parametrize(
    "s_kind, t_kind", [("bert-uncased", "xlm-roberta"), ("roberta", "bert-cased"), ("xlm-roberta", "bert-cased")]
)
def test_a_word_split_differently_is_aligned_or_abstains(s_kind, t_kind):
    word = "Magazinul"  # held out: the tokenizers never saw it, each cuts it its own way
    text = [f"{word} se închide la ora zece seara."]
    toks = family_tokenizers()
    s_pieces, t_pieces = toks[s_kind].tokenize(text[0])[:4], toks[t_kind].tokenize(text[0])[:4]
    batch, s, t = _masked_batch(s_kind, t_kind, texts=text)
    vm = VocabularyMap.from_tokenizers(toks[s_kind], toks[t_kind])
    s_pos = (batch["labels"] != -100).nonzero().tolist()
    t_pos = (batch["t.labels"] != -100).nonzero().tolist()
    rows = batch["t.row_of_student_row"].tolist()
    in_word = [
        i for i, (_, p) in enumerate(s_pos) if s[0]["char_spans"][p][1] <= len(word) and s[0]["word_ids"][p] >= 0
    ]
    assert in_word
    outcomes = []
    for i in in_word:
        s_span = tuple(s[0]["char_spans"][s_pos[i][1]].tolist())
        if rows[i] < 0:  # abstains: no teacher token covers exactly these characters
            assert s_span not in unique_spans(t[0]["char_spans"]) or s_span[0] == s_span[1]
            outcomes.append("abstain")
            continue
        t_span = tuple(t[0]["char_spans"][t_pos[rows[i]][1]].tolist())
        assert t_span == s_span  # aligned: exactly the same characters ...
        s_id = batch["labels"][0, s_pos[i][1]]
        t_id = batch["t.labels"][0, t_pos[rows[i]][1]]
        assert bool(vm.label_mapped(s_id[None], t_id[None]))  # ... and the tokens correspond
        outcomes.append("aligned")
    print(f"\n{word}: {s_kind} {s_pieces} vs {t_kind} {t_pieces}: {outcomes}")
    assert "abstain" in outcomes  # the split differs, so some piece has no counterpart


# --- students of every family -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xlm-roberta", "roberta"])
def test_same_architecture_student_copies_alternate_layers(kind):
    from rokd.distill.student import make_student

    teacher = tiny_teacher(kind, layers=4)
    student = make_student(teacher)
    assert type(student) is type(teacher) and student.config.num_hidden_layers == 2
    assert student.config.rokd_teacher_layers == [0, 3]
    t, s = teacher.state_dict(), student.state_dict()
    query = "roberta.encoder.layer.{}.attention.self.query.weight"
    assert torch.equal(s[query.format(1)], t[query.format(3)])
    assert torch.equal(s["roberta.embeddings.word_embeddings.weight"], t["roberta.embeddings.word_embeddings.weight"])
    assert torch.equal(s["lm_head.dense.weight"], t["lm_head.dense.weight"])
    # Explicit layers; every layer kept computes the teacher's function exactly.
    assert make_student(teacher, layers=[1, 2]).config.rokd_teacher_layers == [1, 2]
    full = make_student(teacher, depth=4).eval()
    enc = family_tokenizers()[kind](["Ana are mere și pere."], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(full(**enc).logits, teacher(**enc).logits, atol=1e-5)
    with pytest.raises(ValueError, match="increasing order"):
        make_student(teacher, layers=[2, 1])


@pytest.mark.parametrize(
    "model_type, layer_list",
    [
        ("electra", "electra.encoder.layer"),
        ("camembert", "roberta.encoder.layer"),
        ("distilbert", "distilbert.transformer.layer"),
    ],
)
def test_student_table_covers_other_encoder_families(model_type, layer_list):
    from transformers import AutoConfig, AutoModelForMaskedLM

    from rokd import mlm
    from rokd.distill.student import make_student

    torch.manual_seed(0)
    kw = (
        dict(n_layers=4, dim=32, n_heads=2, hidden_dim=64)
        if model_type == "distilbert"
        else dict(num_hidden_layers=4, hidden_size=32, num_attention_heads=2, intermediate_size=64)
    )
    config = AutoConfig.for_model(model_type, vocab_size=50, max_position_embeddings=40, **kw)
    teacher = AutoModelForMaskedLM.from_config(config)
    student = make_student(teacher)
    assert student.config.model_type == model_type and student.config.num_hidden_layers == 2
    part = "output_layer_norm" if model_type == "distilbert" else "output.dense"
    key = f"{layer_list}.1.{part}.weight"
    assert torch.equal(student.state_dict()[key], teacher.state_dict()[key.replace(".1.", ".3.")])
    mlm.mlm_head(student)(torch.zeros(2, 32))  # its MLM head is known to the sparse-logits code


def test_unknown_family_is_a_clear_error():
    from transformers import AutoConfig, AutoModelForMaskedLM

    from rokd.distill.student import make_student

    teacher = AutoModelForMaskedLM.from_config(
        AutoConfig.for_model(
            "albert", vocab_size=30, hidden_size=16, num_attention_heads=2, intermediate_size=32, embedding_size=8
        )
    )
    with pytest.raises(ValueError, match="no student recipe for a 'albert' teacher.*STUDENT_BUILDERS"):
        make_student(teacher)


def test_alignment_example_table_for_two_families():
    from rokd.distill.report import alignment_example

    toks = family_tokenizers()
    table = alignment_example("Magazinul din București este mare.", toks["bert-cased"], toks["xlm-roberta"])
    assert table["word"].tolist() == ["Magazinul", "din", "București", "este", "mare", "."]
    row = table.set_index("word").loc["din"]
    assert (
        row["teacher sub-words"] == "▁din"
        and row["aligned one-to-one"] == "1/1"
        and row["vocabulary map hits"] == "din"
    )
    aligned, total = map(int, table.set_index("word").loc["Magazinul", "aligned one-to-one"].split("/"))
    assert aligned < total  # cut differently: some pieces abstain
