"""Issue 12: never lose a user's files, never count a broken step as done.

One section per finding of the review: (1) output folders rokd replaces, (2) locks, (3) pipeline state,
(4) one-line errors through ``rokd.cli.main``, (5) validation of profiles and result files, (6) outputs
stay under the configured folders, (7) the NaN guard's advice. Elsewhere: checkpoints and the NaN guard's
resumption in test_trainer.py, students in test_distill_e2e.py, teachers in test_models_teachers.py, the
download cap in test_data.py. Fixtures are written by the tests; notebooks are tiny.
"""

from __future__ import annotations

import contextlib
import io as stdio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pipeline import PARAMS, write_notebook

from rokd import io
from rokd.cli import main
from rokd.config import ConfigError
from rokd.errors import CorruptFileError, LockedError, OutputDirError, UsageError
from rokd.pipeline import STATE_DIR, Step, StepFailed, not_done_reason, plan, run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("ROKD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ROKD_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ROKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROKD_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.delenv("ROKD_DEBUG", raising=False)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("rokd: error: "), err
    return lines[0]


@contextlib.contextmanager
def held_lock(path: Path):
    """Another process holding ``path`` with rokd.io.lock until the block ends; yields its pid."""
    code = (
        "import sys\nfrom rokd import io\nwith io.lock(sys.argv[1], 'held'):\n"
        "    print('locked', flush=True)\n    sys.stdin.read()\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------ rokd.io


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "x.json"
    io.atomic_write_json(target, {"v": 1})
    io.atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_lock_records_its_holder_and_refuses_a_second_taker(tmp_path):
    path = tmp_path / "out.lock"
    with held_lock(path) as pid:
        info = json.loads(path.read_text())
        assert info["pid"] == pid and info["started"]
        with pytest.raises(LockedError, match=re.escape(f"pid {pid}, started {info['started']}")):
            with io.lock(path, "the thing"):
                pass
    with io.lock(path, "the thing"):  # released when its holder ended
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_lock_waits_when_asked(tmp_path):
    path = tmp_path / "out.lock"
    messages = []
    with held_lock(path) as pid:
        import threading

        done = threading.Event()

        def take():
            with io.lock(path, "the thing", wait=True, log=messages.append):
                done.set()

        t = threading.Thread(target=take)
        t.start()
        time.sleep(0.5)
        assert not done.is_set()  # still waiting while the other process holds it
    t.join(timeout=10)
    assert done.is_set() and f"pid {pid}" in messages[0]


def test_replace_dir_replaces_rokd_folders_and_refuses_a_users(tmp_path):
    target = tmp_path / "out"
    stage = io.make_stage(target, "test output")
    (stage / "a.txt").write_text("1")
    io.replace_dir(stage, target, "test output")
    assert (target / "a.txt").read_text() == "1" and (target / io.OUTPUT_MARKER).is_file()
    stage = io.make_stage(target, "test output")
    (stage / "b.txt").write_text("2")
    io.replace_dir(stage, target, "test output")  # marked: replaced
    assert sorted(p.name for p in target.iterdir()) == [io.OUTPUT_MARKER, "b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no stage or old copy left beside it

    users = tmp_path / "mine"
    (users / "important").mkdir(parents=True)
    (users / "important" / "notes.txt").write_text("keep me")
    stage = io.make_stage(users, "test output")
    with pytest.raises(OutputDirError, match="not made by rokd"):
        io.replace_dir(stage, users, "test output")
    with pytest.raises(OutputDirError):
        io.remove_dir(users, "test output")
    assert (users / "important" / "notes.txt").read_text() == "keep me"


def test_weights_problem_catches_truncation_and_bit_flips(tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"w": torch.arange(64, dtype=torch.float32)}, folder / "model.safetensors")
    assert io.weights_problem(folder) is None  # no checksum yet: the structural check passes
    io.write_weights_sha256(folder)
    assert io.weights_problem(folder) is None
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-3] ^= 0x10
    (folder / "model.safetensors").write_bytes(bytes(data))
    assert "sha256" in io.weights_problem(folder)
    (folder / "model.safetensors").write_bytes(bytes(data[:-20]))
    (folder / io.WEIGHTS_SHA_FILE).unlink()  # a folder from before checksums: truncation is still caught
    assert "truncated" in io.weights_problem(folder)


# -------------------------------------------------------------- (1) output folders and --output-dir


def test_distill_output_dir_dot_refuses_and_leaves_every_file(tmp_path, monkeypatch, capsys):
    here = tmp_path / "work"
    (here / "important").mkdir(parents=True)
    (here / "README").write_text("my readme")
    (here / "important" / "notes.txt").write_text("my notes")
    monkeypatch.chdir(here)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(["distill", "--profile", "smoke", "--student", "distil-bert-base-ro", "--output-dir", "."])
    assert code == 2
    line = one_error_line(capsys)
    assert f"refusing to use {here}" in line and "README" in line and "new or empty folder" in line
    assert (here / "README").read_text() == "my readme" and (here / "important" / "notes.txt").read_text() == "my notes"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing added beside it either


def test_distill_into_a_users_folder_is_refused(tmp_path, capsys):
    users = tmp_path / "results-of-mine"
    users.mkdir()
    (users / "thesis.tex").write_text("x")
    assert main(["distill", "--profile", "smoke", "--student", "distil-bert-base-ro", "--output-dir", str(users)]) == 2
    assert "thesis.tex" in one_error_line(capsys)
    assert [p.name for p in users.iterdir()] == ["thesis.tex"]


def test_book_refuses_a_build_dir_that_is_not_rokds(tmp_path, monkeypatch, capsys):
    users = tmp_path / "site"
    users.mkdir()
    (users / "index.html").write_text("my site")
    monkeypatch.setenv("ROKD_BUILD_DIR", str(users))
    assert main(["book", "--profile", "smoke", "--fresh"]) == 2
    assert "index.html" in one_error_line(capsys)
    assert (users / "index.html").read_text() == "my site"


# ------------------------------------------------------------------------------------ (2) locks


def test_a_second_pipeline_of_a_profile_stops_naming_the_first(tmp_path, capsys):
    lock = tmp_path / "results" / "smoke" / STATE_DIR / "lock"
    with held_lock(lock) as pid:
        assert main(["pipeline", "--profile", "smoke"]) == 1
        line = one_error_line(capsys)
    assert f"pipeline of profile 'smoke' is in use by another rokd run (pid {pid}, started " in line
    assert "--wait" in line


def test_a_second_distill_on_the_same_output_stops_naming_the_first(tmp_path, capsys):
    out = tmp_path / "student"
    with held_lock(tmp_path / ".student.lock") as pid:
        args = ["distill", "--profile", "smoke", "--student", "distil-bert-base-ro", "--output-dir", str(out)]
        assert main(args) == 1
        line = one_error_line(capsys)
    assert f"the student folder {out} is in use by another rokd run (pid {pid}" in line
    assert not out.exists()


def test_a_second_evaluation_of_the_same_run_stops(tmp_path, capsys):
    from transformers import BertConfig

    model = tmp_path / "m"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(model)
    lock = tmp_path / "results" / "smoke" / "predictions" / "m" / "sts" / ".seed1.lock"
    with held_lock(lock) as pid:
        assert main(["evaluate", "--profile", "smoke", "--model", str(model), "--task", "sts", "--seed", "1"]) == 1
        assert f"the evaluation m / sts / seed 1 is in use by another rokd run (pid {pid}" in one_error_line(capsys)


SLEEPY_RUN = """
import sys, io
from pathlib import Path
from rokd.errors import LockedError
from rokd.pipeline import Step, run
nbs, out, wait = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "wait"
try:
    run("x", steps=[Step("slow", "slow", {"profile": "x"})], notebook_dir=nbs, output_dir=out,
        force=sys.argv[4] == "force", wait=wait)
except LockedError as e:
    print("LOCKED", e, flush=True)
    sys.exit(1)
"""


def _pipeline_process(nbs, out, wait="nowait", force="noforce"):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-c", SLEEPY_RUN, str(nbs), str(out), wait, force],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_for_line(proc, needle: str, timeout: float = 60) -> list[str]:
    seen, t0 = [], time.time()
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not printed; got {seen}")


def test_two_concurrent_pipelines(tmp_path):
    """A runs a step; B, started meanwhile, stops naming A (and leaves A's work alone); C waits for A."""
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    body = "```{code-cell} ipython3\nimport time\ntime.sleep(4)\nprint('A done')\n```\n"
    write_notebook(nbs / "slow.md", [PARAMS, body])
    a = _pipeline_process(nbs, out)
    _wait_for_line(a, "running")
    b = _pipeline_process(nbs, out, force="force")
    b_out, _ = b.communicate(timeout=60)
    assert b.returncode == 1 and f"pid {a.pid}" in b_out and "LOCKED" in b_out
    c = _pipeline_process(nbs, out, wait="wait")
    a_rest, _ = a.communicate(timeout=120)
    assert a.returncode == 0 and "1 ran" in a_rest
    c_out, _ = c.communicate(timeout=60)
    assert c.returncode == 0 and "waiting for the pipeline" in c_out and "1 cached" in c_out
    executed = json.loads((out / "notebooks" / "slow.ipynb").read_text())
    assert "A done" in json.dumps(executed)
    assert (out / STATE_DIR / "slow.json").is_file()


# --------------------------------------------------------------------------- (3) pipeline state


def _step_with_output(nbs: Path, target: Path) -> list[Step]:
    body = "```{code-cell} ipython3\nfrom pathlib import Path\nPath(target).write_text('made')\n```\n"
    write_notebook(nbs / "a.md", [PARAMS.replace("value = 1", "value = 1\ntarget = ''"), body])
    return [Step("a-1", "a", {"profile": "x", "target": str(target)}, outputs=[target])]


def _statuses(steps, nbs, out, **kw) -> list[str]:
    return [r["status"] for r in run("x", steps=steps, notebook_dir=nbs, output_dir=out, out=stdio.StringIO(), **kw)]


@pytest.fixture
def one_step(tmp_path):
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    target = tmp_path / "made.txt"
    steps = _step_with_output(nbs, target)
    assert _statuses(steps, nbs, out) == ["ran"]
    assert _statuses(steps, nbs, out) == ["cached"]
    return steps, nbs, out, target


def test_a_zero_byte_notebook_is_not_cached(one_step):
    steps, nbs, out, _ = one_step
    executed = out / "notebooks" / "a-1.ipynb"
    executed.write_bytes(b"")  # what a SIGKILL during the old in-place write left
    assert _statuses(steps, nbs, out) == ["ran"]
    assert json.loads(executed.read_text())["cells"]


def test_a_truncated_stamp_reruns_instead_of_crashing(one_step):
    steps, nbs, out, _ = one_step
    (out / STATE_DIR / "a-1.json").write_text('{"key": "0f3')
    assert _statuses(steps, nbs, out) == ["ran"]


def test_a_deleted_or_emptied_output_reruns_its_step(one_step):
    steps, nbs, out, target = one_step
    target.unlink()
    assert _statuses(steps, nbs, out) == ["ran"] and target.read_text() == "made"
    target.write_text("")
    assert _statuses(steps, nbs, out) == ["ran"] and target.read_text() == "made"


def test_kill_during_notebook_write_is_not_done(one_step):
    """Simulated kill: a notebook cut mid-write (and a temp file of the killed run) -> the step runs again."""
    steps, nbs, out, _ = one_step
    executed = out / "notebooks" / "a-1.ipynb"
    good = executed.read_bytes()
    executed.write_bytes(good[: len(good) // 2])
    stale_tmp = out / "notebooks" / ".a-1.99999.tmp.ipynb"
    stale_tmp.write_text('{"cells": [')
    key = json.loads((out / STATE_DIR / "a-1.json").read_text())["key"]
    reason = not_done_reason(steps[0], key, executed, out / STATE_DIR / "a-1.json")
    assert reason == "executed notebook changed or incomplete"
    assert _statuses(steps, nbs, out) == ["ran"]
    assert not stale_tmp.exists() and json.loads(executed.read_text())["cells"]


def test_sigkill_during_a_step_keeps_the_old_notebook_and_marks_the_step_not_done(tmp_path):
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    write_notebook(nbs / "slow.md", [PARAMS, "```{code-cell} ipython3\nimport time\ntime.sleep(1)\n```\n"])
    first = _pipeline_process(nbs, out)
    assert first.wait(timeout=120) == 0
    good = (out / "notebooks" / "slow.ipynb").read_bytes()
    write_notebook(nbs / "slow.md", [PARAMS, "```{code-cell} ipython3\nimport time\ntime.sleep(30)\n```\n"])
    second = _pipeline_process(nbs, out, force="force")
    _wait_for_line(second, "running")
    time.sleep(3)  # inside the notebook
    os.killpg(second.pid, signal.SIGKILL)  # the kernel runs in its own session and ends with its parent
    second.wait(timeout=30)
    assert (out / "notebooks" / "slow.ipynb").read_bytes() == good  # the published notebook is untouched
    assert not (out / STATE_DIR / "slow.json").exists()  # removed before the step ran: not done
    step = Step("slow", "slow", {"profile": "x"})
    assert not_done_reason(step, "any", out / "notebooks" / "slow.ipynb", out / STATE_DIR / "slow.json") == "no stamp"
    from rokd.book import _chapter_json

    with pytest.raises(Exception, match="did not finish"):  # the kill left its running marker: the book refuses
        _chapter_json(out / "notebooks" / "slow.ipynb", "slow", out / STATE_DIR, "x")


def test_published_chapters_without_stamps_are_judged_by_their_content(tmp_path):
    """A fresh clone has the committed notebooks and no stamps (the lock may have made the stamp folder):
    complete notebooks are accepted, one with an error output is refused."""
    from rokd.book import _chapter_json

    state = tmp_path / STATE_DIR
    state.mkdir()  # what taking the pipeline lock leaves in a fresh clone
    good = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "ok"}]}]}
    (tmp_path / "good.ipynb").write_text(json.dumps(good))
    assert _chapter_json(tmp_path / "good.ipynb", "good", state, "mini") == good
    bad = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "error", "ename": "ValueError"}]}]}
    (tmp_path / "bad.ipynb").write_text(json.dumps(bad))
    with pytest.raises(Exception, match="failed: .*ValueError"):
        _chapter_json(tmp_path / "bad.ipynb", "bad", state, "mini")


def test_a_failed_rerun_is_not_done_and_the_book_refuses_it(one_step, monkeypatch):
    from rokd.book import _chapter_json

    steps, nbs, out, _ = one_step
    write_notebook(nbs / "a.md", [PARAMS, "```{code-cell} ipython3\nraise ValueError('broken')\n```\n"])
    with pytest.raises(StepFailed):
        run("x", steps=steps, notebook_dir=nbs, output_dir=out, out=stdio.StringIO())
    assert not (out / STATE_DIR / "a-1.json").exists()  # the earlier stamp was removed before the step ran
    with pytest.raises(Exception, match="did not finish"):
        _chapter_json(out / "notebooks" / "a-1.ipynb", "a-1", out / STATE_DIR, "x")


def test_editing_a_profile_yaml_given_as_a_path_invalidates_the_cache(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "a.md", [PARAMS, "```{code-cell} ipython3\nprint(profile)\n```\n"])
    yaml_path = tmp_path / "my.yaml"
    yaml_path.write_text("name: mine\ndistill: {steps: 5}\n")
    steps = [Step("a-1", "a", {"profile": str(yaml_path)})]

    def statuses():
        return [r["status"] for r in run(str(yaml_path), steps=steps, notebook_dir=nbs, out=stdio.StringIO())]

    assert statuses() == ["ran"]
    # the outputs went to results/<profile name>, never next to (or into) the YAML's path
    assert (tmp_path / "results" / "mine" / "notebooks" / "a-1.ipynb").is_file()
    assert statuses() == ["cached"]
    yaml_path.write_text("name: mine\ndistill: {steps: 6}\n")
    assert statuses() == ["ran"]


def test_a_step_whose_rows_left_a_shared_scores_file_is_not_done(tmp_path):
    from rokd.tasks.scores import merge_scores

    scores = merge_scores(tmp_path / "scores.csv", "model-a", "sts", 1, {"pearson": 0.5})
    step = Step("e-b", "e", score_rows=(scores, "model-b"))
    assert plan("smoke")[5].score_rows[1] == "bert-base-ro"  # every evaluation step checks its own rows
    executed, stamp = tmp_path / "e-b.ipynb", tmp_path / "e-b.json"
    executed.write_text("{}")
    io.atomic_write_json(stamp, {"key": "k", "notebook_sha256": io.file_sha256(executed)})
    # scores.csv deleted, then rebuilt by another model's step: model-b's rows are gone
    assert not_done_reason(step, "k", executed, stamp) == f"no rows of model-b in {scores}"
    merge_scores(scores, "model-b", "sts", 1, {"pearson": 0.6})
    assert not_done_reason(step, "k", executed, stamp) is None
    scores.write_text(scores.read_text()[:-3])  # cut mid-row
    assert not_done_reason(step, "k", executed, stamp) == f"{scores} unreadable"


# ------------------------------------------------------------------- (4) one-line errors via main


def test_unknown_profile_is_one_line_with_exit_code_2(capsys):
    assert main(["pipeline", "--profile", "nope"]) == 2
    line = one_error_line(capsys)
    assert "unknown profile 'nope'" in line and "smoke" in line


def test_debug_flag_and_env_keep_the_traceback(capsys, monkeypatch):
    assert main(["pipeline", "--profile", "nope", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("ROKD_DEBUG", "1")
    assert main(["pipeline", "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("rokd: error: unknown profile")


def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndistill:\n  steps: [1,\n  lr: 3\n")
    assert main(["teachers", "build", "--profile", str(bad)]) == 2
    line = one_error_line(capsys)
    assert f"{bad}, line " in line and "invalid YAML" in line


def test_bad_yaml_key_names_file_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndistill: {temprature: 3}\n")
    assert main(["distill", "--profile", str(bad), "--student", "distil-bert-base-ro"]) == 2
    line = one_error_line(capsys)
    assert str(bad) in line and "distill: unknown field(s) ['temprature']" in line


def test_missing_data_mirror_is_one_line(tmp_path, capsys):
    assert main(["data", "summary", "--data-dir", str(tmp_path / "no-mirror")]) == 1
    assert str(tmp_path / "no-mirror") in one_error_line(capsys)


def test_checksum_mismatch_is_one_line(tmp_path, monkeypatch, capsys):
    import data_fixtures as fx

    mirror = fx.write_mirror(tmp_path / "mirror", monkeypatch)
    with open(mirror / "rosts" / "RO-STS.test.tsv", "a", encoding="utf-8") as f:
        f.write("1.0\tO propoziție.\tAlta.\n")
    assert main(["data", "summary", "--data-dir", str(mirror)]) == 1
    line = one_error_line(capsys)
    assert "checksum mismatch for" in line and "RO-STS.test.tsv" in line


def test_corpus_file_in_the_wrong_encoding_names_the_file(tmp_path, monkeypatch, capsys):
    import data_fixtures as fx

    mirror = fx.write_mirror(tmp_path / "mirror", monkeypatch)
    latin = mirror / "corpus" / "eltec-rom" / "ROM002.txt"
    latin.write_bytes("Ştefan cel Mare a fost domn al Moldovei.\n".encode("cp1250"))
    monkeypatch.setenv("ROKD_DATA_DIR", str(mirror))
    assert main(["data", "corpus", "--profile", "smoke"]) == 1
    line = one_error_line(capsys)
    assert str(latin) in line and "not UTF-8" in line


def test_corrupt_parsed_data_cache_names_the_folder(tmp_path, monkeypatch, capsys):
    import data_fixtures as fx

    mirror = fx.write_mirror(tmp_path / "mirror", monkeypatch)
    assert main(["data", "summary", "--json", "--data-dir", str(mirror)]) == 0
    capsys.readouterr()
    arrow = sorted((tmp_path / "cache" / "datasets").glob("sts-*/test/*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[:100])
    assert main(["data", "summary", "--data-dir", str(mirror)]) == 1
    line = one_error_line(capsys)
    assert "parsed-data cache" in line and str(arrow.parent.parent) in line and "delete that folder" in line


def test_corrupt_teacher_weights_name_the_folder(tmp_path, capsys):
    from distill_fixtures import tiny_bert, tokenizers

    yaml_path = tmp_path / "t.yaml"
    yaml_path.write_text("name: t\ndevice: cpu\n")
    folder = tmp_path / "artifacts" / "t" / "teachers" / "robert-base"
    tok = tokenizers()[1]
    tiny_bert(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    capsys.readouterr()  # the fixture's own progress bars
    assert main(["teachers", "quality", "--profile", str(yaml_path), "--key", "robert-base"]) == 1
    line = one_error_line(capsys)
    assert f"teacher model folder {folder} is unreadable or corrupt" in line and "rokd teachers build" in line


def test_corrupt_predictions_file_names_it(tmp_path, capsys):
    from loyalty_fixtures import write_synthetic_predictions

    written = write_synthetic_predictions(tmp_path / "results" / "smoke")
    victim = written[3]
    victim.write_bytes(victim.read_bytes()[:50])
    capsys.readouterr()
    assert main(["loyalty", "--profile", "smoke"]) == 1
    line = one_error_line(capsys)
    assert f"predictions file {victim} is unreadable or corrupt" in line and "delete it" in line


def test_evaluating_a_truncated_student_names_its_folder(tmp_path, capsys):
    from distill_fixtures import tiny_bert, tokenizers

    folder = tmp_path / "artifacts" / "smoke" / "students" / "distil-bert-base-ro"
    tok = tokenizers()[0]
    tiny_bert(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    io.write_weights_sha256(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    capsys.readouterr()
    args = ["evaluate", "--profile", "smoke", "--model", "distil-bert-base-ro", "--task", "sts", "--seed", "1"]
    assert main(args) == 1
    line = one_error_line(capsys)
    assert f"model folder {folder} is unreadable or corrupt" in line and "sha256" in line


# --------------------------------------------------------------------------------- (5) validation


@pytest.mark.parametrize(
    "yaml_text, problem",
    [
        ("distill: {steps: 60.5}", "distill.steps: expected a whole number, got 60.5"),
        ("distill: {batch_size: '16'}", "distill.batch_size: expected a whole number, got '16'"),
        ("teachers: {steps: true}", "teachers.steps: expected a whole number, got True"),
        ("distill: {lr: sixty}", "distill.lr: expected a finite number, got 'sixty'"),
        ("distill: {smoothed_masking: 'no'}", "distill.smoothed_masking: expected true or false"),
        ("device: gpu", "device: 'gpu' is not allowed; choose one of ['auto', 'cpu', 'cuda']"),
        ("teachers: {precision: fp8}", "teachers.precision: 'fp8' is not allowed"),
        ("teachers: {source: cloud}", "teachers.source: 'cloud' is not allowed; choose one of ['build', 'hub']"),
        ("distill: {source: zoo}", "distill.source: 'zoo' is not allowed"),
        ("distill: {strategy: mean}", "distill.strategy: 'mean' is not allowed; choose one of ['span-map', 'uld'"),
        ("name: ../escape", "name: '../escape' is not a plain name"),
    ],
)
def test_profile_fields_are_validated_on_load(tmp_path, yaml_text, problem):
    from rokd.profiles import load_profile

    path = tmp_path / "p.yaml"
    path.write_text(("name: p\n" if not yaml_text.startswith("name") else "") + yaml_text + "\n")
    with pytest.raises(UsageError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_valid_numbers_still_load(tmp_path):
    from rokd.profiles import load_profile

    path = tmp_path / "p.yaml"
    path.write_text("name: p\ndistill: {steps: 60.0, lr: 5e-4, temperature: 2}\n")  # YAML reads 5e-4 as text
    prof = load_profile(path)
    assert prof.distill.steps == 60 and prof.distill.lr == 5e-4 and prof.distill.temperature == 2.0


def test_wrong_type_through_the_cli_is_one_line(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ndistill: {steps: 60.5}\n")
    assert main(["distill", "--profile", str(path), "--student", "distil-bert-base-ro"]) == 2
    assert "distill.steps: expected a whole number, got 60.5" in one_error_line(capsys)


def test_scores_file_cut_mid_row_is_an_error_naming_it(tmp_path):
    from rokd.tasks.scores import merge_scores, read_scores

    path = merge_scores(tmp_path / "scores.csv", "m", "ner", 1, {"f1": 0.8125, "precision": 0.75})
    assert len(read_scores(path)) == 2
    text = path.read_text()
    path.write_text(text[: text.rindex("0.75") + 2])  # "...,0." : the old reader returned 0.0
    with pytest.raises(CorruptFileError, match=f"{path}.*cut short"):
        read_scores(path)
    path.write_text(text.splitlines()[0] + "\nm,ner,f1,1\n")  # a row with fields missing
    with pytest.raises(CorruptFileError, match="line 2 does not have the 5 fields"):
        read_scores(path)


def test_loyalty_file_cut_mid_row_is_an_error_naming_it(tmp_path):
    from rokd.loyalty import LOYALTY_COLUMNS, read_loyalty

    path = tmp_path / "loyalty.csv"
    good = ",".join(LOYALTY_COLUMNS) + "\ndistil-bert-base-ro,bert-base-ro,ner,1,L-L,0.91\n"
    path.write_text(good)
    assert len(read_loyalty("smoke", tmp_path)) == 1
    path.write_text(good + "distil-bert-base-ro,bert-base-ro,ner,1,P-L,0.")
    with pytest.raises(CorruptFileError, match=f"{path}.*cut short"):
        read_loyalty("smoke", tmp_path)
    path.write_text(good + "distil-bert-base-ro,bert-base-ro,ner\n")
    with pytest.raises(CorruptFileError, match="line 3 is incomplete"):
        read_loyalty("smoke", tmp_path)
    path.write_text(good.replace(",1,", ",one,"))
    with pytest.raises(CorruptFileError, match="seed must be whole numbers"):
        read_loyalty("smoke", tmp_path)


# ------------------------------------------------------------ (6) outputs stay under their folders


def test_evaluate_name_with_a_path_is_refused(tmp_path, capsys):
    args = ["evaluate", "--profile", "smoke", "--model", "bert-base-ro", "--task", "sts", "--name", "../../../x"]
    assert main(args) == 2
    assert "--name: '../../../x' is not a plain name" in one_error_line(capsys)
    with pytest.raises(UsageError):
        from rokd.tasks.predictions import predictions_path

        predictions_path(tmp_path, "a/b", "sts", 1)
    assert not (tmp_path / "x").exists()


def test_a_profile_path_never_becomes_an_output_path(tmp_path):
    yaml_path = tmp_path / "cfg" / "exp.yaml"
    yaml_path.parent.mkdir()
    yaml_path.write_text("name: exp1\n")
    steps = plan(str(yaml_path))
    assert steps[0].parameters["profile"] == str(yaml_path)
    results = tmp_path / "results" / "exp1"
    outputs = [Path(p) for s in steps for p in s.outputs]
    assert outputs and all(results in p.parents or (tmp_path / "artifacts" / "exp1") in p.parents for p in outputs)


def test_book_writes_to_rokd_build_dir(tmp_path, monkeypatch):
    from rokd import book, paths

    target = tmp_path / "site" / "book"
    monkeypatch.setenv("ROKD_BUILD_DIR", str(target))
    assert paths.build_dir() == target
    cmd, link_home = book._jupyter_book_command(target)
    try:
        assert cmd[cmd.index("--path-output") + 1] == str(link_home)
        # jupyter-book writes to <path-output>/_build: that is the configured folder
        assert (link_home / "_build").resolve() == target.resolve()
    finally:
        import shutil

        shutil.rmtree(link_home)
    cmd, link_home = book._jupyter_book_command(tmp_path / "x" / "_build")
    assert link_home is None and cmd[cmd.index("--path-output") + 1] == str(tmp_path / "x")
    cmd, _ = book._jupyter_book_command(paths.REPO_ROOT / "_build")
    assert "--path-output" not in cmd


def test_output_folders_take_the_profile_name_never_its_path(tmp_path):
    from rokd.paths import artifacts_dir, results_dir

    yaml_path = tmp_path / "cfg" / "exp.yaml"
    yaml_path.parent.mkdir()
    yaml_path.write_text("name: exp1\n")
    assert results_dir(str(yaml_path)) == tmp_path / "results" / "exp1"
    assert artifacts_dir(yaml_path) == tmp_path / "artifacts" / "exp1"
    with pytest.raises(UsageError, match="not a plain name"):
        results_dir("..")


# ------------------------------------------- (7) the NaN guard's advice (the download cap: test_data.py)


def test_config_error_is_still_a_value_error():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, UsageError)


def test_nan_advice_is_phrased_as_the_command(tmp_path):
    from rokd.distill.distiller import DistillOverrides, distill_command
    from rokd.trainer import NonFiniteLossError

    err = NonFiniteLossError(7, {"loss": float("nan")}, tmp_path / "checkpoint-6", lr=1e-3)
    cmd = distill_command("smoke", "distil-bert-base-ro", DistillOverrides(steps=60), None)
    advised = err.advise(f"`{cmd}`", "x")
    assert f"kept: the last good checkpoint {tmp_path / 'checkpoint-6'}" in str(advised)
    assert "`rokd distill --profile smoke --student distil-bert-base-ro --steps 60 --lr 0.0005 --resume-lr`" in str(
        advised
    )
