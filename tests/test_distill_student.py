"""Students: layer mapping, initialisation from the teacher, AutoModel round trip."""

import pytest
import torch
from distill_fixtures import tiny_bert, tokenizers
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from rokd import io
from rokd.distill.student import init_student_from_teacher, layer_map, save_student, weight_correspondence
from rokd.errors import OutputDirError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_layer_map_distilbert_recipe_and_general_rule():
    assert layer_map(12) == [0, 2, 4, 7, 9, 11]  # the DistilBERT recipe
    assert layer_map(6) == [0, 2, 5]
    assert layer_map(4) == [0, 3]
    assert layer_map(2) == [0]
    assert layer_map(1) == [0]
    assert layer_map(24) == [0, 2, 4, 6, 8, 10, 13, 15, 17, 19, 21, 23]
    for n in range(1, 16):
        for k in range(1, n + 1):
            m = layer_map(n, k)
            assert len(m) == k and m == sorted(set(m)) and 0 <= m[0] and m[-1] < n
    with pytest.raises(ValueError):
        layer_map(4, 5)


def test_student_copies_teacher_weights():
    cased, _ = tokenizers()
    teacher = tiny_bert(cased, hidden=32, layers=4)
    student = init_student_from_teacher(teacher)
    assert student.config.n_layers == 2 and student.config.dim == 32 and student.config.vocab_size == len(cased)
    t, s = dict(teacher.named_parameters()), dict(student.named_parameters())
    pairs = weight_correspondence(layer_map(4))
    assert (
        "distilbert.transformer.layer.1.attention.q_lin.weight",
        "bert.encoder.layer.3.attention.self.query.weight",
    ) in pairs
    for s_name, t_name in pairs:
        assert torch.equal(s[s_name], t[t_name]), s_name
    # Position table = teacher positions + the segment-0 vector (no token-type table in DistilBERT).
    expected = t["bert.embeddings.position_embeddings.weight"] + t["bert.embeddings.token_type_embeddings.weight"][0]
    assert torch.equal(s["distilbert.embeddings.position_embeddings.weight"], expected)
    # The output projection stays tied to the word embeddings.
    assert student.vocab_projector.weight.data_ptr() == student.distilbert.embeddings.word_embeddings.weight.data_ptr()


def test_full_depth_student_computes_the_teacher_function():
    # With every layer kept the copy is exact: same logits as the teacher (single-segment input).
    cased, _ = tokenizers()
    teacher = tiny_bert(cased, hidden=32, layers=4)
    student = init_student_from_teacher(teacher, n_layers=4).eval()
    enc = cased(["Ana are mere și pere.", "Casa mare"], padding=True, return_tensors="pt")
    with torch.no_grad():
        t = teacher(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        s = student(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    mask = enc["attention_mask"].bool()
    assert torch.allclose(t[mask], s[mask], atol=1e-5)


def test_saved_student_loads_with_automodel(tmp_path):
    cased, _ = tokenizers()
    student = init_student_from_teacher(tiny_bert(cased)).eval()
    out = save_student(student, cased, tmp_path / "student")
    assert (out / "model.safetensors").is_file() and [p.name for p in tmp_path.iterdir()] == ["student"]  # no stage
    assert io.weights_problem(out) is None
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OutputDirError, match="not made by rokd"):  # a user's folder is never replaced
        save_student(student, cased, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert out.stat().st_mode & 0o755 == 0o755  # readable by others, like every artifact
    loaded = AutoModelForMaskedLM.from_pretrained(out)
    assert type(loaded).__name__ == "DistilBertForMaskedLM"
    base = AutoModel.from_pretrained(out)
    assert type(base).__name__ == "DistilBertModel"
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok(["Ion citește o carte."], return_tensors="pt")
    assert enc["input_ids"].tolist() == cased(["Ion citește o carte."], return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        a = student(input_ids=enc["input_ids"]).logits
        b = loaded.eval()(input_ids=enc["input_ids"]).logits
    assert torch.allclose(a, b, atol=1e-6)
