"""A student of your own: teachers given as folders (or hub IDs) of four tokenizer families, a corpus of your
own, from Python (`rokd.distill.distill`), the command line (`rokd distill --teacher ...`) and a YAML spec.
Each student loads with AutoModelForMaskedLM and answers in the fill-mask pipeline."""

import json
import shutil

import pytest
from family_fixtures import ROMANIAN_TEXT, save_teacher
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

from rokd.config import ConfigError, save_config
from rokd.distill.api import DistillSpec, corpus_sources, distill, load_spec, prepare_corpus

pytestmark = pytest.mark.usefixtures("one_thread")

# Tiny settings: a few steps of 4 sentences x <= 32 tokens.
FAST = dict(steps=2, batch_size=4, max_length=32, heldout_lines=5, device="cpu")
STUDENT_CLASS = {
    "bert-cased": "DistilBertForMaskedLM",
    "bert-uncased": "DistilBertForMaskedLM",
    "xlm-roberta": "XLMRobertaForMaskedLM",
    "roberta": "RobertaForMaskedLM",
}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Four teacher folders (different widths), a corpus folder, rokd's cache and artifacts in tmp_path."""
    monkeypatch.setenv("ROKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    widths = {"bert-cased": 32, "bert-uncased": 48, "xlm-roberta": 32, "roberta": 40}
    teachers = {
        k: save_teacher(k, tmp_path / "teachers" / k, hidden=w, seed=i) for i, (k, w) in enumerate(widths.items())
    }
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("\n".join(ROMANIAN_TEXT[:30]) + "\n", encoding="utf-8")
    (corpus / "b.txt").write_text("\n\n".join(ROMANIAN_TEXT[30:]) + "\n", encoding="utf-8")
    return teachers, corpus, tmp_path


def check_student(out, first_kind: str, second: str | None = None) -> dict:
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert type(model).__name__ == STUDENT_CLASS[first_kind]
    assert model.config.num_hidden_layers == 2 and model.config.rokd_teacher_layers == [0, 3]
    tok = AutoTokenizer.from_pretrained(out)
    fill = pipeline("fill-mask", model=model, tokenizer=tok, device="cpu")
    answers = fill(f"Ana are {tok.mask_token} și pere.")
    assert len(answers) == 5 and all(isinstance(a["token_str"], str) and 0 <= a["score"] <= 1 for a in answers)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2
    if second is not None:
        cov = summary["coverage"][second]
        print(
            f"\n{first_kind} student <- {second}: masked positions covered {cov['masked_positions_covered']:.1%}, "
            f"label mapped {cov['masked_positions_label_mapped']:.1%}, "
            f"mapped mass {cov['mapped_probability_mass']:.1%}, "
            f"families {cov['student_family']} <- {cov['teacher_family']}"
        )
        assert 0 < cov["masked_positions_covered"] <= 1 and 0 < cov["mapped_probability_mass"] <= 1
        assert cov["masked_positions_label_mapped"] > 0.3
    return summary


# Six runs: every unordered pair of families once, every family once as the student.
PAIRS = [
    ("bert-cased", "bert-uncased"),
    ("bert-cased", "xlm-roberta"),
    ("xlm-roberta", "roberta"),
    ("roberta", "bert-uncased"),
    ("bert-uncased", "xlm-roberta"),
    ("roberta", "bert-cased"),
]


@pytest.mark.parametrize("first, second", PAIRS)
def test_distil_from_two_teachers_of_any_families(world, first, second):
    teachers, corpus, root = world
    messages = []
    out = distill(
        teachers=[teachers[first], teachers[second]],
        corpus=corpus,
        output_dir=root / "students" / "mine",
        progress=False,
        log=messages.append,
        **FAST,
    )
    summary = check_student(out, first, second)
    assert summary["teacher_sources"] == {first: str(teachers[first]), second: str(teachers[second])}
    assert any("vocabulary map" in m and second in m for m in messages)  # the run's log names the map's reach
    assert any("covered" in m and "mapped probability mass" in m for m in messages)
    cfg = json.loads((out / "distill_config.json").read_text())
    assert cfg["teachers"] == [first, second] and cfg["batch_size"] == 4 and cfg["max_length"] == 32
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(f"stat_label_mapped.{second}" in r for r in log)


def test_command_line_with_student_layers_and_weights(world, capsys):
    from rokd.cli import main

    teachers, corpus, root = world
    out = root / "students" / "cli"
    argv = [
        "distill",
        "--teacher",
        str(teachers["xlm-roberta"]),
        "--teacher",
        str(teachers["bert-cased"]),
        "--teacher-weights",
        "2",
        "1",
        "--corpus",
        str(corpus / "a.txt"),
        "--corpus",
        str(corpus / "b.txt"),
        "--output-dir",
        str(out),
        "--student-layers",
        "0,3",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "32",
        "--heldout-lines",
        "5",
    ]
    assert main(argv) == 0
    assert str(out) in capsys.readouterr().out
    summary = check_student(out, "xlm-roberta", "bert-cased")
    assert summary["teacher_weights"] == pytest.approx([2 / 3, 1 / 3])
    assert summary["teacher_layers_kept"] == [0, 3]
    # The run's spec is kept beside the student, and gives back the command that made it.
    from rokd.distill.report import own_command

    command = own_command(summary, out)
    for part in (
        f"--teacher {teachers['xlm-roberta']}",
        "--teacher-weights 2.0 1.0",
        "--student-layers 0,3",
        "--max-length 32",
    ):
        assert part in command
    assert load_spec(out / "distill_spec.yaml").corpus == [str(corpus / "a.txt"), str(corpus / "b.txt")]
    # The same command again: the finished student is reused.
    assert main(argv) == 0
    assert "up to date" in capsys.readouterr().out


def test_yaml_spec_round_trips_and_runs(world, tmp_path, capsys):
    from rokd.cli import main

    teachers, corpus, root = world
    spec = DistillSpec(
        teachers=[str(teachers["roberta"])],
        corpus=[str(corpus)],
        output_dir=str(root / "students" / "spec"),
        student_depth=2,
        steps=1,
        batch_size=4,
        max_length=32,
        heldout_lines=5,
        device="cpu",
    )
    path = save_config(spec, tmp_path / "spec.yaml")
    assert load_spec(path) == spec
    # Command-line options override the spec's fields.
    assert main(["distill", "--spec", str(path), "--steps", "2"]) == 0
    out = root / "students" / "spec"
    summary = check_student(out, "roberta")
    assert summary["coverage"] == {}  # one teacher: nothing to map
    bad = "teachers: [x]\ncorpus: [y]\noutput_dir: z\nstudnet_depth: 2\n"
    (tmp_path / "bad.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown field.*studnet_depth"):
        load_spec(tmp_path / "bad.yaml")


def test_hub_ids_load_through_from_pretrained(world, tmp_path, monkeypatch):
    """A hub ID is loaded with from_pretrained: here from a local hub cache, offline (the hub is unreachable)."""
    teachers, corpus, root = world
    cache = tmp_path / "hub"
    for hub_id, kind in (("rokd-test/tiny-xlmr", "xlm-roberta"), ("rokd-test/tiny-bert", "bert-cased")):
        repo = cache / ("models--" + hub_id.replace("/", "--"))
        snapshot = repo / "snapshots" / "0123456789abcdef"
        shutil.copytree(teachers[kind], snapshot)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    out = distill(
        teachers=["rokd-test/tiny-xlmr", "rokd-test/tiny-bert"],
        corpus=corpus,
        output_dir=root / "students" / "hub",
        progress=False,
        log=lambda m: None,
        **FAST,
    )
    summary = check_student(out, "xlm-roberta", "tiny-bert")
    cfg = json.loads((out / "distill_config.json").read_text())
    assert cfg["teacher_fingerprints"] == {
        "tiny-xlmr": "hub:rokd-test/tiny-xlmr",
        "tiny-bert": "hub:rokd-test/tiny-bert",
    }
    assert summary["teacher_sources"]["tiny-xlmr"] == "rokd-test/tiny-xlmr"
    # An ID that is not in the cache: one clear message, no traceback from the command line.
    from rokd.cli import main

    one_line_error(
        main,
        ["distill", "--teacher", "rokd-test/absent", "--corpus", str(corpus), "--output-dir", str(root / "x")],
        "hub is unreachable",
    )


def one_line_error(main, argv, pattern):
    """``rokd`` exits with a one-line ``rokd: error:`` message matching ``pattern`` (no traceback)."""
    import contextlib
    import io
    import re

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    text = err.getvalue().strip()
    assert code in (1, 2) and len(text.splitlines()) == 1 and text.startswith("rokd: error:"), text
    assert re.search(pattern, text), text


def test_bad_inputs_are_one_line_errors(world, tmp_path):
    from rokd.cli import main

    teachers, corpus, root = world
    t = str(teachers["bert-cased"])
    own = ["distill", "--teacher", t, "--corpus", str(corpus), "--output-dir", str(root / "x")]
    one_line_error(main, ["distill", "--teacher", t, "--output-dir", str(root / "x")], "needs --corpus")
    one_line_error(
        main,
        ["distill", "--teacher", t, "--corpus", str(tmp_path / "missing.txt"), "--output-dir", str(root / "x")],
        "neither a file nor a folder",
    )
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Ştefan şi Ţara\n".encode("cp1250") * 20)
    one_line_error(
        main,
        ["distill", "--teacher", t, "--corpus", str(latin), "--output-dir", str(root / "x")],
        "latin1.txt is not UTF-8",
    )
    one_line_error(main, [*own, "--student-layers", "0,7"], "student layers must be distinct.*0..3")
    one_line_error(main, [*own, "--student-layers", "0", "--student-depth", "1"], "layers.*or its depth")
    one_line_error(
        main,
        ["distill", "--student", "distil-bert-base-ro", "--corpus", str(corpus)],
        "--corpus is for a student of your own",
    )


def test_prepare_corpus_holds_out_lines_by_seed(tmp_path):
    folder = tmp_path / "c"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.txt").write_text("\n".join(f"linia {i}" for i in range(40)) + "\n", encoding="utf-8")
    (folder / "sub" / "y.txt").write_text("\n\n".join(f"rândul {i}" for i in range(20)) + "\n", encoding="utf-8")
    (folder / "notes.md").write_text("not text of the corpus\n", encoding="utf-8")
    assert [p.name for p in corpus_sources([folder])] == ["y.txt", "x.txt"]  # sorted paths: sub/y.txt < x.txt
    train, heldout = prepare_corpus([folder], heldout_lines=100, seed=1, cache=tmp_path / "cache")
    held = heldout.read_text(encoding="utf-8").split("\n")[:-1]
    kept = train.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(held) == 6 and len(kept) == 54  # at most a tenth of the 60 non-empty lines
    assert not set(held) & set(kept) and "not text of the corpus" not in kept
    again = prepare_corpus([folder], heldout_lines=100, seed=1, cache=tmp_path / "cache2")
    assert again[1].read_text(encoding="utf-8").split("\n")[:-1] == held  # the seed decides
    other = prepare_corpus([folder], heldout_lines=100, seed=2, cache=tmp_path / "cache3")
    assert other[1].read_text(encoding="utf-8").split("\n")[:-1] != held


def test_heldout_comparison_reads_the_ablation_only_between_students_of_the_same_teacher(tmp_path):
    """The 02 chapter's ablation decision (now rokd.distill.report.heldout_comparison): a row and a sentence
    for the one-teacher student only when both were distilled from the same teacher weights."""
    import json

    from rokd.distill.report import heldout_comparison
    from rokd.spec import MULTI_STUDENT, SINGLE_STUDENT

    multi = {"heldout_mlm_accuracy": {MULTI_STUDENT: 0.5, "bert-base-ro": 0.6, "robert-base": 0.55}}
    single = {"heldout_mlm_accuracy": {SINGLE_STUDENT: 0.45, "bert-base-ro": 0.6}}
    table, note = heldout_comparison("p", tmp_path, MULTI_STUDENT, multi)
    assert len(table) == 3 and "not been distilled" in note
    for key, summary, fingerprint in ((MULTI_STUDENT, multi, "sha256:a"), (SINGLE_STUDENT, single, "sha256:b")):
        (tmp_path / key).mkdir()
        (tmp_path / key / "summary.json").write_text(json.dumps(summary))
        (tmp_path / key / "distill_config.json").write_text(
            json.dumps({"teacher_fingerprints": {"bert-base-ro": fingerprint}})
        )
    table, note = heldout_comparison("p", tmp_path, MULTI_STUDENT, multi)
    assert len(table) == 3 and "rebuilt since" in note
    (tmp_path / SINGLE_STUDENT / "distill_config.json").write_text(
        json.dumps({"teacher_fingerprints": {"bert-base-ro": "sha256:a"}})
    )
    table, note = heldout_comparison("p", tmp_path, MULTI_STUDENT, multi)
    assert len(table) == 5 and "**0.5000**" in note and "**0.4500**" in note and "+0.0500" in note
    assert heldout_comparison("p", tmp_path, SINGLE_STUDENT, single)[1] is None
