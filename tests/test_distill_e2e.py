"""distill_student end to end on tiny teachers saved in a temporary artifacts folder: outputs, AutoModel
loading, summary with coverage, idempotence, and the CLI."""

import json

import pytest
from distill_fixtures import SENTENCES, tiny_bert, tokenizers
from transformers import AutoModelForMaskedLM, AutoTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

PROFILE_YAML = """name: tinytest
description: tiny profile for the distillation tests
device: cpu
distill:
  max_length: 32
  steps: 4
  batch_size: 4
  lr: 3.0e-3
  warmup_steps: 1
  checkpoint_every: 2
  mlm_probability: 0.3
  eval_lines: 8
"""


@pytest.fixture
def tiny_world(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    profile = tmp_path / "tinytest.yaml"
    profile.write_text(PROFILE_YAML, encoding="utf-8")
    train, heldout = tmp_path / "train.txt", tmp_path / "heldout.txt"
    train.write_text("\n".join(SENTENCES * 2) + "\n", encoding="utf-8")
    heldout.write_text("\n".join(SENTENCES[:8]) + "\n", encoding="utf-8")
    cased, uncased = tokenizers()
    teachers = {"bert-base-ro": (cased, 32), "robert-base": (uncased, 48)}
    folders = {}
    for i, (key, (tok, width)) in enumerate(teachers.items()):
        folder = tmp_path / "artifacts" / "tinytest" / "teachers" / key
        tiny_bert(tok, hidden=width, seed=i).save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[key] = folder

    import rokd.models.teachers as teachers_mod

    monkeypatch.setattr(teachers_mod, "corpus_files", lambda prof: (train, heldout))
    monkeypatch.setattr(
        teachers_mod, "build_teachers", lambda prof, keys=None, **kw: {k: folders[k] for k in (keys or folders)}
    )
    return profile, tmp_path


def test_distill_student_end_to_end(tiny_world):
    from rokd.distill.distiller import DistillOverrides, distill_student

    profile, root = tiny_world
    messages = []
    out = distill_student(profile, "distilmulti-bert-base-ro", progress=False, log=messages.append)
    assert out == root / "artifacts" / "tinytest" / "students" / "distilmulti-bert-base-ro"
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "train_log.jsonl",
        "distill_config.json",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert not (out.parent / (out.name + ".work")).exists()  # checkpoints removed after success
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert type(model).__name__ == "DistilBertForMaskedLM" and model.config.n_layers == 2
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.get_vocab() == tokenizers()[0].get_vocab()  # the multi student keeps the cased teacher's tokenizer

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(
        k in log[0]
        for k in ("loss", "ce", "mlm", "cos", "lr", "tokens_per_s", "peak_mem_mb", "stat_coverage.robert-base")
    )
    summary = json.loads((out / "summary.json").read_text())
    cov = summary["coverage"]["robert-base"]
    assert 0 < cov["masked_positions_covered"] <= 1 and 0 < cov["mapped_probability_mass"] <= 1
    assert set(summary["heldout_mlm_accuracy"]) == {"distilmulti-bert-base-ro", "bert-base-ro", "robert-base"}
    assert summary["params"] < summary["teacher_sizes"]["bert-base-ro"]["params"]
    assert summary["disk_mb"] > 0 and summary["steps"] == 4
    cfg = json.loads((out / "distill_config.json").read_text())
    assert cfg["teachers"] == ["bert-base-ro", "robert-base"] and cfg["teacher_weights"] == [0.5, 0.5]

    # Idempotent: same config -> reused without training; another config -> rebuilt.
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    messages.clear()
    assert distill_student(profile, "distilmulti-bert-base-ro", progress=False, log=messages.append) == out
    assert any("up to date" in m for m in messages)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    distill_student(
        profile,
        "distilmulti-bert-base-ro",
        DistillOverrides(temperature=3.0, steps=2),
        progress=False,
        log=messages.append,
    )
    assert json.loads((out / "distill_config.json").read_text())["temperature"] == 3.0


def test_cli_distill_single_teacher_student(tiny_world, capsys):
    from rokd.cli import main

    profile, root = tiny_world
    assert main(["distill", "--profile", str(profile), "--student", "distil-robert-base", "--steps", "2"]) == 0
    out = root / "artifacts" / "tinytest" / "students" / "distil-robert-base"
    assert str(out) in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["coverage"] == {}  # one teacher, same vocabulary
    assert AutoTokenizer.from_pretrained(out).get_vocab() == tokenizers()[1].get_vocab()


def test_bad_arguments_are_clear_errors(tiny_world):
    from rokd.config import ConfigError
    from rokd.distill.distiller import DistillOverrides, distill_student, resolve_run

    profile, root = tiny_world
    with pytest.raises(ConfigError, match="unknown student"):
        distill_student(profile, "distil-nothing", progress=False)
    assert not (root / "artifacts" / "tinytest" / "students").exists()  # nothing half-written
    with pytest.raises(ConfigError, match="unknown student"):
        resolve_run(profile, "distil-nothing")
    with pytest.raises(ConfigError, match="first teacher"):
        resolve_run(profile, "distilmulti-bert-base-ro", DistillOverrides(teachers=["robert-base", "bert-base-ro"]))
    with pytest.raises(ConfigError, match="teacher_weights"):
        resolve_run(profile, "distilmulti-bert-base-ro", DistillOverrides(teacher_weights=[1.0]))
    with pytest.raises(ConfigError, match="strategy"):
        resolve_run(profile, "distilmulti-bert-base-ro", DistillOverrides(strategy="majority"))


def test_soft_targets_setting_from_the_profile_or_an_override(tiny_world, tmp_path):
    from rokd.config import ConfigError
    from rokd.distill.distiller import DistillOverrides, resolve_run

    profile, _ = tiny_world
    assert resolve_run(profile, "distil-bert-base-ro").soft_targets == "masked"  # the default
    assert resolve_run(profile, "distil-bert-base-ro", DistillOverrides(soft_targets="all")).soft_targets == "all"
    every = tmp_path / "every.yaml"
    every.write_text(PROFILE_YAML.replace("name: tinytest", "name: every") + "  soft_targets: all\n", encoding="utf-8")
    assert resolve_run(every, "distil-bert-base-ro").soft_targets == "all"
    with pytest.raises(ConfigError, match="soft_targets"):
        resolve_run(profile, "distil-bert-base-ro", DistillOverrides(soft_targets="unmasked"))


def test_damaged_student_weights_are_not_up_to_date(tiny_world):
    from rokd import io
    from rokd.distill.distiller import DistillOverrides, distill_student

    profile, root = tiny_world
    quick = DistillOverrides(steps=2)
    out = distill_student(profile, "distil-bert-base-ro", quick, progress=False, log=lambda *_: None)
    assert (out / io.WEIGHTS_SHA_FILE).is_file() and (out / io.OUTPUT_MARKER).is_file()
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-7] ^= 0x04  # one flipped bit: the config still matches, the weights do not
    weights.write_bytes(bytes(data))
    messages = []
    distill_student(profile, "distil-bert-base-ro", quick, progress=False, log=messages.append)
    assert any("weights are damaged" in m for m in messages) and not any("up to date" in m for m in messages)
    assert io.weights_problem(out) is None


def test_nan_message_gives_the_command_that_resumes_with_a_lower_lr(tiny_world, monkeypatch, capsys):
    import shlex

    import torch

    from rokd.cli import main
    from rokd.distill import losses

    profile, root = tiny_world
    real_combine, calls = losses.combine, {"n": 0}

    def nan_at_step_3(*args, **kwargs):
        calls["n"] += 1
        total = real_combine(*args, **kwargs)
        return total * float("nan") if calls["n"] == 3 else total

    monkeypatch.setattr(losses, "combine", nan_at_step_3)
    args = ["distill", "--profile", str(profile), "--student", "distil-robert-base"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    work = root / "artifacts" / "tinytest" / "students" / "distil-robert-base.work"
    assert err.startswith("rokd: error: non-finite loss at optimizer step 3")
    assert f"kept: the last good checkpoint {work / 'checkpoints' / 'checkpoint-2'}" in err
    command = err.split("`")[1]
    assert command == f"rokd distill --profile {profile} --student distil-robert-base --lr 0.0015 --resume-lr"

    monkeypatch.setattr(losses, "combine", real_combine)
    assert main(shlex.split(command)[1:]) == 0  # exactly what the message says to run
    out = root / "artifacts" / "tinytest" / "students" / "distil-robert-base"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == 2 and summary["steps"] == 4
    assert json.loads((out / "distill_config.json").read_text())["lr"] == 0.0015
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)


def test_a_replica_is_distilled_with_the_next_seed(tiny_world):
    from rokd.distill.distiller import resolve_run

    profile, _ = tiny_world
    first, second = resolve_run(profile, "distil-bert-base-ro"), resolve_run(profile, "distil-bert-base-ro@d2")
    assert second.seed == first.seed + 1 and second.teachers == first.teachers and second.student.endswith("@d2")


def test_the_learning_curve_is_logged_without_changing_the_run(tiny_world):
    from dataclasses import replace

    import torch
    from safetensors.torch import load_file

    from rokd.distill.distiller import DistillOverrides, distill_student
    from rokd.profiles import load_profile

    profile, root = tiny_world
    prof = load_profile(profile)
    quick = DistillOverrides(steps=3)
    plain = distill_student(
        prof, "distil-bert-base-ro", quick, progress=False, log=lambda *_: None, output_dir=root / "plain"
    )
    curved = replace(prof, distill=replace(prof.distill, curve_every=2, curve_lines=5))
    with_curve = distill_student(
        curved, "distil-bert-base-ro", quick, progress=False, log=lambda *_: None, output_dir=root / "curve"
    )
    log = [json.loads(line) for line in (with_curve / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval_heldout_mlm_accuracy" in r] == [2, 3]
    assert all(0.0 <= r["eval_heldout_mlm_accuracy"] <= 1.0 for r in log if "eval_heldout_mlm_accuracy" in r)
    a, b = load_file(str(plain / "model.safetensors")), load_file(str(with_curve / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # evaluating on a forked RNG leaves training unchanged
