"""Tokenizers, miniature teacher pretraining, save/load round trip and quality measurement."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from rokd.models import teachers as teachers_mod
from rokd.models.quality import (
    UnigramBaseline,
    measure_quality,
    pseudo_perplexity,
    unigram_counts,
    whole_word_pseudo_perplexity,
)
from rokd.models.tokenizers import save_tokenizer, train_wordpiece
from rokd.profiles import BertShape, Profile, TeachersConfig

SUBJECTS = ["Ana", "Ștefan", "Maria", "Ion", "bunica", "profesorul", "copilul"]
VERBS = ["citește", "scrie", "cumpără", "vede", "caută"]
OBJECTS = ["o carte", "un ziar", "o scrisoare", "mere", "pâine", "flori"]
PLACES = ["la București", "în Iași", "acasă", "la școală", "în grădină"]


def tiny_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}." for _ in range(n)]


def test_wordpiece_training_cased_and_uncased_keep_diacritics(tmp_path):
    texts = tiny_lines(300)
    cased = train_wordpiece(texts, vocab_size=120, lowercase=False)
    uncased = train_wordpiece(texts, vocab_size=100, lowercase=True)
    assert len(cased) <= 120 and len(uncased) <= 100
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} <= set(cased.get_vocab())
    # cased keeps case and diacritics; uncased lower-cases but keeps ș/â (RoBERT: strip_accents=False)
    assert "Ștefan" in "".join(cased.tokenize("Ștefan")).replace("##", "")
    assert "".join(uncased.tokenize("Ștefan PÂINE")).replace("##", "") == "ștefanpâine"
    # special tokens first, in BERT's order; the rest sorted (ids are a function of the token set)
    vocab = cased.get_vocab()
    assert [vocab[t] for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]] == [0, 1, 2, 3, 4]
    rest = sorted((i, t) for t, i in vocab.items() if i > 4)
    assert [t for _, t in rest] == sorted(t for _, t in rest)
    ids = cased("Ana citește o carte.")["input_ids"]
    assert ids[0] == cased.cls_token_id and ids[-1] == cased.sep_token_id

    from transformers import AutoTokenizer

    save_tokenizer(uncased, tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.is_fast and loaded.tokenize("Ștefan PÂINE") == uncased.tokenize("Ștefan PÂINE")
    assert loaded.get_vocab() == uncased.get_vocab()


def test_wordpiece_training_rejects_empty_text():
    with pytest.raises(ValueError):
        train_wordpiece([], vocab_size=3, lowercase=False)
    with pytest.raises(FileNotFoundError):
        train_wordpiece(files=["/no/such/file.txt"], vocab_size=100, lowercase=False)


TINY_SHAPE = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32
)


def tiny_profile(name: str = "tinytest", steps: int = 60) -> Profile:
    cfg = TeachersConfig(
        cased=BertShape(vocab_size=150, lowercase=False, **TINY_SHAPE),
        uncased=BertShape(vocab_size=120, lowercase=True, **TINY_SHAPE),
        max_length=24,
        steps=steps,
        batch_size=16,
        lr=3e-3,
        warmup_steps=min(5, steps),
        checkpoint_every=0,
        eval_lines=40,
        pppl_lines=5,
        seed=3,
    )
    return Profile(name=name, device="cpu", teachers=cfg)


@pytest.fixture
def tiny_corpus(tmp_path, monkeypatch):
    """A tiny train/held-out corpus wired in place of rokd.data's corpus; artifacts under tmp_path."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("\n".join(tiny_lines(600, seed=1)) + "\n", encoding="utf-8")
    (corpus / "heldout.txt").write_text("\n".join(tiny_lines(60, seed=2)) + "\n", encoding="utf-8")
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setattr(teachers_mod, "corpus_files", lambda profile: (corpus / "train.txt", corpus / "heldout.txt"))
    return corpus


def test_tiny_pretraining_loss_falls_and_round_trips(tiny_corpus, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    torch.set_num_threads(1)
    prof = tiny_profile()
    built = teachers_mod.build_teachers(prof, keys=["bert-base-ro"], log=lambda *_: None)
    folder = built["bert-base-ro"]
    assert folder == tmp_path / "artifacts" / "tinytest" / "teachers" / "bert-base-ro"
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "train_log.jsonl",
        "teacher_config.json",
        "quality.json",
    ]:
        assert (folder / name).exists(), name

    log = teachers_mod.read_train_log(folder / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 61))
    assert all(r["tokens_per_s"] > 0 for r in log)
    first = sum(r["loss"] for r in log[:5]) / 5
    last = sum(r["loss"] for r in log[-5:]) / 5
    assert last < first - 1.0, (first, last)

    # save/load round trip: the saved model and tokenizer give the in-memory model's outputs
    model = AutoModelForMaskedLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "BertForMaskedLM"
    assert model.config.vocab_size == len(tok) and model.config._attn_implementation == "sdpa"
    enc = tok(["Ana citește o carte la București."], return_tensors="pt")
    again = AutoModelForMaskedLM.from_pretrained(folder)
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, again(**enc).logits)

    q = json.loads((folder / "quality.json").read_text())
    # this grammar is predictable from context: the trained model must beat token frequencies
    assert q["mlm_accuracy"] > q["unigram_mlm_accuracy"]
    assert q["pseudo_perplexity"] < q["unigram_pseudo_perplexity"]
    assert q["parameters"] == sum(p.numel() for p in model.parameters())

    # idempotent: same config -> kept; changed config -> rebuilt
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    teachers_mod.build_teachers(prof, keys=["bert-base-ro"], log=lambda *_: None)
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    teachers_mod.build_teachers(tiny_profile(steps=3), keys=["bert-base-ro"], log=lambda *_: None)
    assert len(teachers_mod.read_train_log(folder / "train_log.jsonl")) == 3


def test_hub_profile_builds_nothing():
    out = teachers_mod.build_teachers("paper")
    assert {k: str(v) for k, v in out.items()} == {
        "bert-base-ro": "dumitrescustefan/bert-base-romanian-cased-v1",
        "robert-base": "readerbench/RoBERT-base",
    }


def test_unigram_baseline_matches_hand_computed_values():
    texts = tiny_lines(50)
    tok = train_wordpiece(texts, vocab_size=100, lowercase=False)
    counts = unigram_counts(tok, texts)
    base = UnigramBaseline(counts, len(tok))
    top, n_top = counts.most_common(1)[0]
    assert base.top == top
    import math

    assert base.log_prob(top) == pytest.approx(math.log((n_top + 1) / (sum(counts.values()) + len(tok))))


def test_pseudo_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    """A model whose logits are all equal assigns 1/V to every token: PPPL must equal V exactly."""
    from transformers import BertConfig, BertForMaskedLM

    texts = tiny_lines(30)
    tok = train_wordpiece(texts, vocab_size=90, lowercase=False)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    )
    with torch.no_grad():
        model.cls.predictions.decoder.weight.zero_()
        model.cls.predictions.bias.zero_()
    out = pseudo_perplexity(model, tok, texts[:3])
    assert out["pseudo_perplexity"] == pytest.approx(len(tok), rel=1e-5)
    assert out["pppl_tokens"] == sum(len(tok.tokenize(t)) for t in texts[:3])
    ww = whole_word_pseudo_perplexity(model, tok, texts[:3])
    assert ww["whole_word_pseudo_perplexity"] == pytest.approx(len(tok), rel=1e-5)
    assert ww["whole_word_pppl_tokens"] == out["pppl_tokens"]  # the same subwords, masked word by word
    q = measure_quality(model, tok, texts[:10], texts, pppl_lines=2)
    assert 0.0 <= q["mlm_accuracy"] <= 1.0 and q["mlm_masked_tokens"] > 0
    assert q["whole_word_pseudo_perplexity"] == pytest.approx(len(tok), rel=1e-5)


def test_whole_word_pseudo_perplexity_masks_every_piece_of_the_word():
    """Against a hand-built loop: mask all subwords of one word, score them, next word."""
    import math

    from distill_fixtures import tiny_bert

    texts = tiny_lines(30)
    tok = train_wordpiece(texts, vocab_size=60, lowercase=False)  # small vocabulary: multi-piece words
    model = tiny_bert(tok, hidden=16, layers=1, seed=0)
    line = texts[0]
    enc = tok(line)
    ids, wids = enc["input_ids"], enc.word_ids()
    assert any(wids.count(w) > 1 for w in set(wids) if w is not None), "the test needs a multi-piece word"
    nll, n = 0.0, 0
    with torch.no_grad():
        for w in sorted({w for w in wids if w is not None}):
            pos = [j for j, x in enumerate(wids) if x == w]
            masked = torch.tensor([ids])
            masked[0, pos] = tok.mask_token_id
            logp = torch.log_softmax(model(input_ids=masked).logits[0], -1)
            nll -= sum(float(logp[j, ids[j]]) for j in pos)
            n += len(pos)
    out = whole_word_pseudo_perplexity(model, tok, [line], batch_size=3)
    assert out["whole_word_pppl_tokens"] == n
    assert out["whole_word_pseudo_perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_cli_build_and_quality(tiny_corpus, tmp_path, capsys):
    from rokd.cli import main
    from rokd.config import save_config

    torch.set_num_threads(1)
    yaml_path = save_config(tiny_profile(name="clitest", steps=8), tmp_path / "clitest.yaml")
    assert main(["teachers", "build", "--profile", str(yaml_path), "--key", "robert-base"]) == 0
    out = capsys.readouterr().out
    assert "robert-base" in out and "MLM accuracy" in out
    folder = tmp_path / "artifacts" / "clitest" / "teachers" / "robert-base"
    before = json.loads((folder / "quality.json").read_text())
    assert main(["teachers", "quality", "--profile", str(yaml_path), "--key", "robert-base"]) == 0
    printed = json.loads(capsys.readouterr().out)
    after = json.loads((folder / "quality.json").read_text())
    assert (
        printed["robert-base"]["mlm_accuracy"] == after["mlm_accuracy"] == before["mlm_accuracy"]
    )  # same seed, same masks
    assert after["train_wall_s"] == before["train_wall_s"]  # training facts are kept


def test_an_interrupted_build_resumes_with_its_own_tokenizer(tiny_corpus, tmp_path, monkeypatch):
    from rokd import precision, trainer

    torch.set_num_threads(1)
    prof = tiny_profile(name="resumetest", steps=12)
    prof.teachers.checkpoint_every = 6
    real_train = trainer.train

    def interrupted(*args, **kwargs):
        real_train(*args, **kwargs, max_steps_this_run=6)
        raise KeyboardInterrupt  # as if the machine stopped after the first checkpoint

    monkeypatch.setattr(trainer, "train", interrupted)
    monkeypatch.setattr(precision, "preloaded_allocator", lambda: "jemalloc")  # the first sitting's allocator
    monkeypatch.setenv("MALLOC_CONF", "dirty_decay_ms:-1")
    monkeypatch.setattr(trainer, "hardware", lambda: "machine A, 2 cores")  # the first sitting's machine ...
    monkeypatch.setenv("ROKD_PRECISION", "fp32")  # ... and precision
    with pytest.raises(KeyboardInterrupt):
        teachers_mod.build_teachers(prof, keys=["robert-base"], log=lambda *_: None)
    work = tmp_path / "artifacts" / "resumetest" / "runs" / "teachers" / "robert-base"
    saved_vocab = json.loads((work / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    first_half = teachers_mod.read_train_log(work / "run" / "train_log.jsonl")
    assert [r["step"] for r in first_half] == list(range(1, 7))
    assert not (tmp_path / "artifacts" / "resumetest" / "teachers" / "robert-base").exists()  # nothing half-written

    monkeypatch.setattr(trainer, "train", real_train)
    monkeypatch.setattr(precision, "preloaded_allocator", lambda: None)
    monkeypatch.delenv("ROKD_LOW_MEMORY", raising=False)
    monkeypatch.setattr(trainer, "hardware", lambda: "machine B, 2 cores")  # resumed elsewhere, in bf16
    monkeypatch.setenv("ROKD_PRECISION", "bf16")
    messages = []
    folder = teachers_mod.build_teachers(prof, keys=["robert-base"], log=messages.append)["robert-base"]
    assert any("resuming" in m for m in messages)
    assert json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"] == saved_vocab
    log = teachers_mod.read_train_log(folder / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 13))
    assert log[:6] == first_half  # steps 1-6 were not redone: the run resumed from its checkpoint
    # the teacher's record names every allocator that served a sitting (speed and memory: rokd.precision)
    quality = json.loads((folder / "quality.json").read_text())
    assert quality["cpu_memory"] == "glibc; jemalloc dirty_decay_ms:-1"
    # ... and every machine and precision: the run record's hardware column reads them
    assert quality["hardware"] == "machine A, 2 cores; machine B, 2 cores"
    assert quality["precision"] == "bf16+fp32"


def test_damaged_teacher_weights_count_as_not_built(tiny_corpus, tmp_path):
    from rokd import io

    torch.set_num_threads(1)
    prof = tiny_profile(name="damaged", steps=3)
    folder = teachers_mod.build_teachers(prof, keys=["robert-base"], log=lambda *_: None)["robert-base"]
    assert (folder / io.WEIGHTS_SHA_FILE).is_file() and (folder / io.OUTPUT_MARKER).is_file()
    weights = folder / "model.safetensors"
    for damage in (lambda b: b[:-64], lambda b: b[:-9] + bytes([b[-9] ^ 1]) + b[-8:]):  # truncated; one bit flipped
        weights.write_bytes(damage(weights.read_bytes()))
        messages = []
        teachers_mod.build_teachers(prof, keys=["robert-base"], log=messages.append)
        assert not any("up to date" in m for m in messages), messages
        assert io.weights_problem(folder) is None  # rebuilt


def test_a_users_folder_in_the_teachers_place_is_refused(tiny_corpus, tmp_path):
    from rokd.errors import OutputDirError

    folder = tmp_path / "artifacts" / "usertest" / "teachers" / "robert-base"
    folder.mkdir(parents=True)
    (folder / "my-model.bin").write_bytes(b"mine")
    with pytest.raises(OutputDirError, match="my-model.bin"):
        teachers_mod.build_teachers(tiny_profile(name="usertest", steps=3), keys=["robert-base"], log=lambda *_: None)
    assert [p.name for p in folder.iterdir()] == ["my-model.bin"]


def test_a_second_teacher_build_stops_or_waits(tiny_corpus, tmp_path):
    from test_reliability import held_lock

    from rokd.errors import LockedError

    lock = tmp_path / "artifacts" / "locktest" / "teachers" / ".robert-base.lock"
    with held_lock(lock) as pid:
        with pytest.raises(LockedError, match=f"pid {pid}"):
            teachers_mod.build_teacher(
                tiny_profile(name="locktest", steps=3), "robert-base", wait=False, log=lambda *_: None
            )


def test_nan_advice_for_teachers_resumes_with_the_lowered_lr(tiny_corpus, tmp_path, monkeypatch, capsys):
    import shlex

    from rokd import trainer
    from rokd.cli import main
    from rokd.config import save_config

    torch.set_num_threads(1)
    prof = tiny_profile(name="nantest", steps=12)
    prof.teachers.checkpoint_every = 6
    yaml_path = save_config(prof, tmp_path / "nantest.yaml")
    real_train = trainer.train

    def nan_after_six(net, step_fn, batches, config, **kwargs):
        real_train(net, step_fn, batches, config, **kwargs, max_steps_this_run=6)
        raise trainer.NonFiniteLossError(
            7, {"loss": float("nan")}, trainer.latest_checkpoint(config.output_dir), config.lr
        )

    monkeypatch.setattr(trainer, "train", nan_after_six)
    assert main(["teachers", "build", "--profile", str(yaml_path), "--key", "robert-base"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "kept: the last good checkpoint" in err and "checkpoint-6" in err
    assert f"set teachers.lr to 0.0015 in {yaml_path}" in err
    command = err.split("`")[1]
    assert command == f"rokd teachers build --profile {yaml_path} --key robert-base --resume-lr"

    monkeypatch.setattr(trainer, "train", real_train)
    yaml_path.write_text(yaml_path.read_text().replace("lr: 0.003", "lr: 0.0015"))
    assert main(shlex.split(command)[1:]) == 0
    folder = tmp_path / "artifacts" / "nantest" / "teachers" / "robert-base"
    log = teachers_mod.read_train_log(folder / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 13))
    assert log[5]["lr"] > log[6]["lr"] * 1.5  # steps 7-12 ran at the lowered rate, resumed from step 6
    assert json.loads((folder / "teacher_config.json").read_text())["training"]["lr"] == 0.0015


def test_load_quality_reads_the_training_time_of_every_sitting_from_the_log(tmp_path):
    import json

    from rokd.models.teachers import load_quality

    (tmp_path / "quality.json").write_text(json.dumps({"mlm_accuracy": 0.2, "train_wall_s": 100.0}))
    assert "trained_s" not in load_quality(tmp_path)  # no log: nothing to add
    log = [{"step": 1, "elapsed_s": 900.0}, {"step": 2, "elapsed_s": 1234.5}]  # resumed after step 1
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")
    assert load_quality(tmp_path)["trained_s"] == 1234.5
    assert json.loads((tmp_path / "quality.json").read_text()) == {"mlm_accuracy": 0.2, "train_wall_s": 100.0}


def test_pretraining_in_data_workers_resumes_to_the_same_teacher(tiny_corpus, tmp_path, monkeypatch):
    """teachers.data_workers (a GPU run) masks each batch from (seed, batch number) in worker processes: a build
    whose processes all get SIGTERM during step 4 (Slurm, systemd; it saves a checkpoint of that step) and
    resumed -- with another number of workers -- ends with the weights of an uninterrupted build."""
    from safetensors.torch import load_file

    from rokd import trainer

    torch.set_num_threads(1)
    prof = tiny_profile(name="workers", steps=12)
    prof.teachers.checkpoint_every = 6
    prof.teachers.data_workers = 2

    def build(artifacts):
        monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / artifacts))
        return teachers_mod.build_teachers(prof, keys=["bert-base-ro"], log=lambda *_: None)["bert-base-ro"]

    whole = build("whole")
    stamp = json.loads((whole / "teacher_config.json").read_text())
    # other masks than the in-process stream's: another build; the same masks for any number of workers
    assert stamp["training"]["masking_seeds"] == "per-batch" and "data_workers" not in stamp["training"]
    # WordPiece training is not deterministic (huggingface/tokenizers#1794: hash-map order breaks count ties),
    # so the second build starts from the first one's tokenizer, as a resumed run does from its own
    run = Path("workers") / "runs" / "teachers" / "bert-base-ro"
    shutil.copytree(tmp_path / "whole" / run, tmp_path / "halves" / run, ignore=shutil.ignore_patterns("run"))

    real_train = trainer.train

    def stopped_during_step_4(net, step_fn, *args, **kwargs):
        calls = {"n": 0}

        def step_then_sigterm(module, batch):
            calls["n"] += 1
            if calls["n"] == 4:  # SIGTERM to the whole job while step 4 runs (checkpoints every 6)
                # the data workers first (the harder case), sent by another process as Slurm's is: torch's own
                # worker handler takes a SIGTERM from the training process itself for a quiet shutdown
                workers = [str(w.pid) for w in multiprocessing.active_children()]
                subprocess.run(["kill", "-TERM", *workers], check=True)
                os.kill(os.getpid(), signal.SIGTERM)
            return step_fn(module, batch)

        return real_train(net, step_then_sigterm, *args, **kwargs)

    monkeypatch.setattr(trainer, "train", stopped_during_step_4)
    with pytest.raises(trainer.TrainingStopped, match="after step 4 of 12"):
        build("halves")
    assert trainer.latest_checkpoint(tmp_path / "halves" / run / "run").name == "checkpoint-4"
    monkeypatch.setattr(trainer, "train", real_train)
    prof.teachers.data_workers = 1  # e.g. started on a GPU machine, finished on a CPU
    halves = build("halves")

    losses = [r["loss"] for r in teachers_mod.read_train_log(halves / "train_log.jsonl")]
    assert losses == [r["loss"] for r in teachers_mod.read_train_log(whole / "train_log.jsonl")]
    a, b = load_file(whole / "model.safetensors"), load_file(halves / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_command_line_shows_pretraining_progress_in_a_terminal(tiny_corpus, capsys):
    """A build of hours must not be silent: with progress on (``rokd teachers build`` in a terminal) the steps
    show as a bar; off (notebooks, log files), nothing but the build's own lines."""
    prof = tiny_profile(name="bar", steps=4)
    teachers_mod.build_teachers(prof, keys=["bert-base-ro"], log=lambda *_: None, progress=True)
    assert "4/4" in capsys.readouterr().err
    teachers_mod.build_teachers(prof, keys=["robert-base"], log=lambda *_: None)
    assert "4/4" not in capsys.readouterr().err
