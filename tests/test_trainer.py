"""Tests of rokd.trainer: exact resume, non-finite loss, LR schedule, gradient accumulation, checkpoints, log.
CPU only, tiny models built from configs."""

from __future__ import annotations

import json
import math
import os
import random
import signal

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

from rokd import mlm
from rokd.config import ConfigError, load_config
from rokd.errors import CorruptFileError, OutputDirError
from rokd.trainer import NonFiniteLossError, TrainerConfig, latest_checkpoint, list_checkpoints, parameter_groups, train

WORDS = (
    "casa mare frumoasă copilul aleargă prin parcul orașului seara când soarele apune încet peste dealuri și râuri"
).split()


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


def make_tokenizer() -> PreTrainedTokenizerFast:
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "." for _ in range(200)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        lines, trainers.WordPieceTrainer(vocab_size=80, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.lines = lines  # the fixture text travels with it
    return fast


def make_net(tokenizer, seed: int) -> mlm.SparseMLM:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        attn_implementation="sdpa",
    )
    return mlm.SparseMLM(BertForMaskedLM(cfg))


def make_stream(tokenizer) -> mlm.BatchStream:
    corpus = mlm.tokenize_lines(tokenizer.lines, tokenizer, 16)
    return mlm.BatchStream(
        corpus,
        mlm.LengthGroupedBatchSampler(corpus.lengths, 8, seed=4),
        mlm.WholeWordMaskCollator(tokenizer, 0.2, seed=9),
    )


def mlm_step(net, batch):
    out = net(batch["input_ids"], batch["attention_mask"], batch["labels"])
    ce = torch.nn.functional.cross_entropy(out.logits.float(), out.targets)
    aux = out.last_hidden_state.pow(2).mean()  # a second named term, as distillation has
    return {"mlm": ce, "aux": aux, "loss": ce + 0.01 * aux}


def config(tmp_path, name, **kw) -> TrainerConfig:
    base = dict(
        output_dir=str(tmp_path / name),
        steps=10,
        lr=2e-3,
        warmup_steps=3,
        grad_accum=2,
        checkpoint_every=3,
        max_grad_norm=1.0,
        seed=21,
        progress=False,
    )
    base.update(kw)
    return TrainerConfig(**base)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"parameters differ: {different[:5]}"


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in conftest.py


# ---------------------------------------------------------------------------- exact resume


def test_resume_gives_bit_identical_weights(tmp_path, tokenizer):
    reference = train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), config(tmp_path, "ref"))
    assert reference.completed and reference.final_step == 10

    # (a) stopped cleanly after 5 steps, then resumed in a new "process" (fresh objects, other init seed)
    cfg = config(tmp_path, "stopped")
    part = train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, max_steps_this_run=5)
    assert part.final_step == 5 and not part.completed
    assert [p.name for p in list_checkpoints(cfg.output_dir)] == ["checkpoint-3", "checkpoint-5"]
    resumed = train(make_net(tokenizer, 123), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert resumed.resumed_from == 5 and resumed.completed
    assert_same_weights(reference.module, resumed.module)
    assert resumed.losses == reference.losses

    # (b) crashed by an exception inside step 8; resumed from checkpoint-6, steps 7-8 redone
    cfg = config(tmp_path, "crashed")
    calls = {"n": 0}

    def crashing_step(net, batch):
        calls["n"] += 1
        if calls["n"] == 2 * 7 + 1:  # first micro-batch of optimizer step 8
            raise KeyboardInterrupt("simulated kill")
        return mlm_step(net, batch)

    with pytest.raises(KeyboardInterrupt):
        train(make_net(tokenizer, 0), crashing_step, make_stream(tokenizer), cfg)
    assert latest_checkpoint(cfg.output_dir).name == "checkpoint-6"
    # what a kill can leave behind: a half-written checkpoint and a log line cut short
    (tmp_path / "crashed" / "checkpoints" / ".tmp-checkpoint-9").mkdir()
    with (tmp_path / "crashed" / "train_log.jsonl").open("a") as f:
        f.write('{"step": 8, "lo')
    resumed = train(make_net(tokenizer, 7), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert resumed.resumed_from == 6
    assert not (tmp_path / "crashed" / "checkpoints" / ".tmp-checkpoint-9").exists()
    assert_same_weights(reference.module, resumed.module)

    # the log of the resumed run reads as one run: steps 1..10 once each, same losses as the reference
    log = [json.loads(line) for line in (tmp_path / "crashed" / "train_log.jsonl").read_text().splitlines()]
    ref_log = [json.loads(line) for line in (tmp_path / "ref" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 11))
    assert [r["loss"] for r in log] == [r["loss"] for r in ref_log]

    # control: the weights really depend on the random draws (dropout, masks), so equality above means something
    other_seed = train(
        make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), config(tmp_path, "other", seed=22, checkpoint_every=0)
    )
    assert not all(torch.equal(p, q) for p, q in zip(reference.module.parameters(), other_seed.module.parameters()))

    # resuming a finished run does nothing and returns its state
    again = train(make_net(tokenizer, 9), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert again.final_step == 10 and again.resumed_from == 10
    assert_same_weights(reference.module, again.module)


@pytest.fixture
def ctrl_c_raises():
    """SIGINT as in a terminal session (pytest-xdist workers and background jobs start with it ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("ctrl_c_raises")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_resume_loses_nothing(tmp_path, tokenizer, sig):
    """SIGTERM / Ctrl-C during step 5 (checkpoints every 3): the step finishes, checkpoint-5 is saved (not only
    checkpoint-3), TrainingStopped says so; resuming ends with the uninterrupted run's weights and losses."""
    from rokd.trainer import TrainingStopped

    reference = train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), config(tmp_path, "ref", log_every=1))
    cfg = config(tmp_path, "stopped", log_every=1)
    calls = {"n": 0}

    def signalled_step(net, batch):
        calls["n"] += 1
        if calls["n"] == 2 * 4 + 1:  # first micro-batch of optimizer step 5
            os.kill(os.getpid(), sig)
        return mlm_step(net, batch)

    before = signal.getsignal(sig)
    with pytest.raises(TrainingStopped, match=f"{signal.Signals(sig).name} after step 5 of 10.*checkpoint-5"):
        train(make_net(tokenizer, 0), signalled_step, make_stream(tokenizer), cfg)
    assert signal.getsignal(sig) is before  # the handler is the caller's again
    assert latest_checkpoint(cfg.output_dir).name == "checkpoint-5"
    resumed = train(make_net(tokenizer, 5), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert resumed.resumed_from == 5 and resumed.completed
    assert_same_weights(reference.module, resumed.module)
    log = [json.loads(line) for line in (tmp_path / "stopped" / "train_log.jsonl").read_text().splitlines()]
    ref_log = [json.loads(line) for line in (tmp_path / "ref" / "train_log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in log] == [(r["step"], r["loss"]) for r in ref_log]


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_second_signal_stops_at_once(tmp_path, tokenizer):
    """Two Ctrl-C: the second interrupts the step under way, as if there were no handler (no new checkpoint)."""
    cfg = config(tmp_path, "twice")
    calls = {"n": 0}

    def step_twice_interrupted(net, batch):
        calls["n"] += 1
        if calls["n"] == 2 * 4 + 1:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return mlm_step(net, batch)

    with pytest.raises(KeyboardInterrupt) as caught:
        train(make_net(tokenizer, 0), step_twice_interrupted, make_stream(tokenizer), cfg)
    assert type(caught.value) is KeyboardInterrupt  # not TrainingStopped: nothing was saved for step 5
    assert latest_checkpoint(cfg.output_dir).name == "checkpoint-3"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_signal_stays_ignored(tmp_path, tokenizer):
    """A background job starts with SIGINT ignored: training must not make it stoppable by a terminal's Ctrl-C."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        calls = {"n": 0}

        def step_with_ctrl_c(net, batch):
            calls["n"] += 1
            if calls["n"] == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return mlm_step(net, batch)

        done = train(make_net(tokenizer, 0), step_with_ctrl_c, make_stream(tokenizer), config(tmp_path, "bg", steps=4))
        assert done.completed and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_low_memory_mode_only_when_asked_and_the_allocator_recorded(tmp_path, tokenizer, monkeypatch):
    """Giving freed memory back costs kernel time every step: CPU training does it only with ROKD_LOW_MEMORY=1.
    The training log says which allocator served the run (a preloaded one takes glibc's place)."""
    from rokd import precision

    calls = []
    monkeypatch.setattr(precision, "return_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(precision, "preloaded_allocator", lambda: None)
    monkeypatch.delenv("ROKD_LOW_MEMORY", raising=False)
    recorded = {}

    def run(name):
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), config(tmp_path, name, steps=1, warmup_steps=0))
        log = (tmp_path / name / "train_log.jsonl").read_text().splitlines()
        recorded[name] = {json.loads(line)["cpu_memory"] for line in log}

    run("default")
    assert calls == []
    monkeypatch.setenv("ROKD_LOW_MEMORY", "1")
    run("low")
    assert calls == [1]
    monkeypatch.setattr(precision, "preloaded_allocator", lambda: "jemalloc")
    monkeypatch.setenv("MALLOC_CONF", "dirty_decay_ms:-1")
    run("jemalloc")
    assert calls == [1]  # glibc's setting would not reach a preloaded allocator
    assert recorded == {
        "default": {"glibc"},
        "low": {"glibc, freed memory returned"},
        "jemalloc": {"jemalloc dirty_decay_ms:-1"},
    }


def test_resume_refuses_changed_config(tmp_path, tokenizer):
    cfg = config(tmp_path, "run", steps=4, checkpoint_every=2)
    train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, max_steps_this_run=2)
    changed = config(tmp_path, "run", steps=4, checkpoint_every=2, lr=1e-2)
    with pytest.raises(ConfigError, match="lr"):
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), changed, resume=True)


def test_checkpoint_loading_refuses_pickled_objects(tmp_path, tokenizer):
    cfg = config(tmp_path, "run", steps=4, warmup_steps=1, checkpoint_every=1)
    train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, max_steps_this_run=2)
    ckpt = latest_checkpoint(cfg.output_dir)
    torch.save({"state": {}, "param_groups": [], "evil": ConfigError("arbitrary object")}, ckpt / "optimizer.pt")
    # the recorded checksum catches the swap before anything is unpickled
    with pytest.raises(CorruptFileError, match="optimizer.pt.*sha256") as err:
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert "weights_only" not in str(err.value)
    # a checkpoint without checksums (older rokd): torch's weights_only loader refuses it, and the message
    # names the file without passing on torch's advice to retry with weights_only=False
    state_file = ckpt / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["files_sha256"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(CorruptFileError, match=f"{ckpt / 'optimizer.pt'}.*delete {ckpt}") as err:
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert "weights_only" not in str(err.value) and "UnpicklingError" in str(err.value)


def test_corrupt_checkpoint_is_refused_naming_the_file(tmp_path, tokenizer):
    cfg = config(tmp_path, "run", steps=4, warmup_steps=1, checkpoint_every=1)
    train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, max_steps_this_run=2)
    ckpt = latest_checkpoint(cfg.output_dir)
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight: safetensors itself would load this silently
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="model.safetensors.*sha256"):
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, resume=True)
    # a trainer_state.json cut short by a full disk
    (ckpt / "trainer_state.json").write_text('{"version": 1, "st')
    with pytest.raises(CorruptFileError, match="trainer_state.json"):
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, resume=True)


def test_fresh_run_never_deletes_foreign_files_in_checkpoints(tmp_path, tokenizer):
    cfg = config(tmp_path, "run", steps=2, warmup_steps=1, checkpoint_every=1)
    root = tmp_path / "run" / "checkpoints"
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="notes.txt"):
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg)
    assert (root / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------- non-finite loss


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path, tokenizer):
    cfg = config(tmp_path, "nan", steps=10, checkpoint_every=2, grad_accum=1)
    calls = {"n": 0}

    def step(net, batch):
        calls["n"] += 1
        terms = mlm_step(net, batch)
        if calls["n"] == 5:
            terms["mlm"] = terms["mlm"] * float("nan")
            terms["loss"] = terms["mlm"] + terms["aux"]
        return terms

    with pytest.raises(NonFiniteLossError) as info:
        train(make_net(tokenizer, 0), step, make_stream(tokenizer), cfg)
    err = info.value
    assert err.step == 5 and "step 5" in str(err) and "mlm=nan" in str(err)
    assert err.last_checkpoint.name == "checkpoint-4" and "checkpoint-4" in str(err)
    assert [p.name for p in list_checkpoints(cfg.output_dir)] == ["checkpoint-2", "checkpoint-4"]
    from safetensors.torch import load_file

    weights = load_file(err.last_checkpoint / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    # the message tells the truth: the kept checkpoint, and how to resume from it with a lower lr
    assert f"kept: the last good checkpoint {err.last_checkpoint}" in str(err)
    assert "lr=0.001, allow_lr_change=True" in str(err)  # half of 2e-3
    # unchanged, the run goes on from the good checkpoint (bit-exact resumption is the default)
    result = train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert result.resumed_from == 4 and result.completed


def test_lower_lr_resumes_from_the_kept_checkpoint_when_asked(tmp_path, tokenizer):
    cfg = config(tmp_path, "run", steps=8, warmup_steps=2, checkpoint_every=4, grad_accum=1)
    train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, max_steps_this_run=4)
    lower = config(tmp_path, "run", steps=8, warmup_steps=2, checkpoint_every=4, grad_accum=1, lr=1e-3)
    with pytest.raises(ConfigError, match="allow_lr_change"):  # not silently: the run would not be bit-exact
        train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), lower, resume=True)
    lower.allow_lr_change = True
    result = train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), lower, resume=True)
    assert result.resumed_from == 4 and result.completed
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    # linear decay from the peak at step 2 to 0 at step 8: step 5 (index 4 of the schedule) = peak * 4/6
    by_step = {r["step"]: r["lr"] for r in log}
    assert by_step[4] == pytest.approx(2e-3 * 5 / 6)  # before: the old peak
    assert by_step[5] == pytest.approx(1e-3 * 4 / 6)  # after: the new peak, same point of the schedule
    assert by_step[8] == pytest.approx(1e-3 * 1 / 6)


def test_infinite_loss_is_caught_too(tmp_path, tokenizer):
    def step(net, batch):
        terms = mlm_step(net, batch)
        terms["loss"] = terms["loss"] + float("inf")
        return terms

    with pytest.raises(NonFiniteLossError, match="step 1.*no checkpoint"):
        train(make_net(tokenizer, 0), step, make_stream(tokenizer), config(tmp_path, "inf"))


def test_nan_statistic_with_finite_total_does_not_stop(tmp_path):
    def step(model, batch):
        return {**toy_step(model, batch), "coverage": torch.tensor(float("nan"))}

    result = train(
        toy_model(), step, ToyBatches(4), TrainerConfig(output_dir=str(tmp_path / "s"), steps=3, progress=False)
    )
    assert result.completed and math.isnan(result.losses["coverage"])


# ---------------------------------------------------------------------------- schedule, accumulation


class ToyBatches:
    """Endless deterministic regression batches; position held in ``state_dict`` like a BatchStream."""

    def __init__(self, batch_size: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(64, 6, generator=g)
        self.y = self.x @ torch.randn(6, 2, generator=g) + 0.1 * torch.randn(64, 2, generator=g)
        self.batch_size, self.i = batch_size, 0

    def __iter__(self):
        return self

    def __next__(self):
        idx = [(self.i + k) % 64 for k in range(self.batch_size)]
        self.i += self.batch_size
        return {"x": self.x[idx], "y": self.y[idx], "attention_mask": torch.ones(self.batch_size, 3, dtype=torch.long)}

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, state):
        self.i = int(state["i"])


def toy_step(model, batch):
    return {"loss": torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])}


def toy_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def test_schedule_is_linear_warmup_then_linear_decay(tmp_path):
    cfg = TrainerConfig(output_dir=str(tmp_path / "s"), steps=20, lr=1e-2, warmup_steps=5, progress=False)
    train(toy_model(), toy_step, ToyBatches(4), cfg)
    log = [json.loads(line) for line in (tmp_path / "s" / "train_log.jsonl").read_text().splitlines()]
    assert all(r["tokens"] == 4 * 3 for r in log)  # attention_mask sum of the step's batch (4 rows x 3 tokens)
    lrs = [r["lr"] for r in log]
    assert len(lrs) == 20
    expected = [1e-2 * s / 5 if s < 5 else 1e-2 * (20 - s) / 15 for s in range(20)]  # lr used at optimizer step s+1
    assert lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert max(lrs) == pytest.approx(1e-2) and lrs.index(max(lrs)) == 5


def test_grad_accumulation_matches_bigger_batch(tmp_path):
    # fp32: the claim is arithmetic (a bf16 autocast rounds a batch of 8 and two of 4 differently), and `auto`
    # resolves to bf16 on CPUs with fast bf16
    common = dict(steps=6, lr=1e-2, warmup_steps=2, max_grad_norm=0.5, progress=False, mixed_precision="fp32")
    accum = train(
        toy_model(), toy_step, ToyBatches(4), TrainerConfig(output_dir=str(tmp_path / "a"), grad_accum=2, **common)
    )
    big = train(
        toy_model(), toy_step, ToyBatches(8), TrainerConfig(output_dir=str(tmp_path / "b"), grad_accum=1, **common)
    )
    moved = False
    for (name, p), q in zip(accum.module.named_parameters(), big.module.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5), name
        moved |= not torch.allclose(p, toy_model().state_dict()[name])
    assert moved
    assert accum.losses["loss"] == pytest.approx(big.losses["loss"], rel=1e-5)


def test_parameter_groups_skip_decay_on_bias_and_layernorm():
    model = BertForMaskedLM(
        BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(not n.endswith("bias") and "LayerNorm" not in n for n in (names[id(p)] for p in decay["params"]))
    assert any("LayerNorm.weight" in names[id(p)] for p in no_decay["params"])


# ---------------------------------------------------------------------------- outputs


def test_log_config_checkpoints_and_result(tmp_path, tokenizer):
    cfg = config(tmp_path, "out", steps=6, checkpoint_every=2, keep_checkpoints=2)
    stream = make_stream(tokenizer)
    result = train(make_net(tokenizer, 0), mlm_step, stream, cfg)
    out = tmp_path / "out"
    assert load_config(TrainerConfig, out / "trainer_config.json") == cfg
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    for r in log:
        assert {
            "step",
            "mlm",
            "aux",
            "loss",
            "lr",
            "grad_norm",
            "tokens",
            "tokens_per_s",
            "elapsed_s",
            "peak_mem_mb",
        } <= r.keys()
        assert r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["peak_mem_mb"] > 0
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-4", "checkpoint-6"]  # keep the last 2
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    ckpt = result.checkpoint
    assert {
        "model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng-0.pt",
        "rng-0.json",
        "data-0.pt",
        "trainer_state.json",
    } <= {p.name for p in ckpt.iterdir()}
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["tokens"] == sum(r["tokens"] for r in log)
    data = torch.load(ckpt / "data-0.pt", weights_only=True)
    assert (
        data["sampler"]["position"] + data["sampler"]["epoch"] * stream.batch_sampler.batches_per_epoch() == 12
    )  # 6 steps x 2
    assert result.final_step == 6 and result.losses.keys() == {"mlm", "aux", "loss"} and result.tokens_per_s > 0


def test_stateless_batches_warn_that_resume_restarts_the_data(tmp_path):
    with pytest.warns(UserWarning, match="no state_dict"):
        train(
            toy_model(),
            toy_step,
            iter([{"x": torch.randn(2, 6), "y": torch.randn(2, 2)}] * 2),
            TrainerConfig(output_dir=str(tmp_path / "w"), steps=2, progress=False),
        )


def test_step_fn_without_total_loss_is_an_error(tmp_path):
    with pytest.raises(KeyError, match="'loss'"):
        train(
            toy_model(),
            lambda m, b: {"mse": toy_step(m, b)["loss"]},
            ToyBatches(4),
            TrainerConfig(output_dir=str(tmp_path / "x"), steps=2, progress=False),
        )


def test_non_scalar_loss_term_is_an_error(tmp_path):
    def step(model, batch):
        return {"loss": toy_step(model, batch)["loss"], "per_example": model(batch["x"]).sum(-1)}

    with pytest.raises(TypeError, match="per_example"):
        train(toy_model(), step, ToyBatches(4), TrainerConfig(output_dir=str(tmp_path / "x"), steps=2, progress=False))


def test_accelerator_with_other_settings_in_the_same_process():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from rokd.trainer import make_accelerator

    AcceleratorState._reset_state(reset_partial_state=True)  # whatever earlier tests set up
    Accelerator(mixed_precision="bf16", cpu=True)  # e.g. an earlier cell of the same notebook
    acc = make_accelerator(TrainerConfig(mixed_precision="no", cpu=True))
    assert acc.mixed_precision == "no"


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainerConfig(steps=10, warmup_steps=20)
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainerConfig(mixed_precision="fp8")
    from rokd.trainer import resolve_mixed_precision

    assert resolve_mixed_precision("no", cpu=True).name == "fp32"
    assert resolve_mixed_precision("bf16", cpu=True).name == "bf16"  # asked for: honoured on any CPU
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_mixed_precision("fp16", cpu=True)


def test_frozen_modules_stay_frozen_and_out_of_the_optimizer(tmp_path):
    teacher = toy_model()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = torch.nn.Linear(6, 2)
    start = student.weight.detach().clone()

    def distil_step(model, batch):
        assert not teacher.training
        with torch.inference_mode():
            target = teacher(batch["x"])
        return {"loss": torch.nn.functional.mse_loss(model(batch["x"]), target.clone())}

    result = train(
        student,
        distil_step,
        ToyBatches(4),
        TrainerConfig(output_dir=str(tmp_path / "d"), steps=5, lr=1e-2, progress=False),
        frozen_modules=[teacher],
    )
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not torch.equal(result.module.weight, start)  # the student did train


def test_fresh_run_replaces_an_earlier_run_in_the_same_directory(tmp_path):
    cfg = TrainerConfig(output_dir=str(tmp_path / "r"), steps=6, checkpoint_every=2, keep_checkpoints=5, progress=False)
    train(toy_model(), toy_step, ToyBatches(4), cfg)
    short = TrainerConfig(
        output_dir=str(tmp_path / "r"), steps=3, checkpoint_every=2, keep_checkpoints=5, progress=False
    )
    train(toy_model(), toy_step, ToyBatches(4), short)  # resume=False: a new run
    assert [p.name for p in list_checkpoints(tmp_path / "r")] == ["checkpoint-2", "checkpoint-3"]
    assert len((tmp_path / "r" / "train_log.jsonl").read_text().splitlines()) == 3


DDP_SCRIPT = r"""
import json, sys
import torch
sys.path.insert(0, sys.argv[2])
torch.set_num_threads(1)
from test_trainer import make_net, make_tokenizer, mlm_step
from rokd import mlm
from rokd.trainer import TrainerConfig, make_accelerator, train

root, tok = sys.argv[1], make_tokenizer()

def stream(acc):
    corpus = mlm.tokenize_lines(tok.lines, tok, 16)
    sampler = mlm.LengthGroupedBatchSampler(corpus.lengths, 8, seed=4, num_shards=acc.num_processes,
                                            shard_index=acc.process_index)
    return mlm.BatchStream(corpus, sampler, mlm.WholeWordMaskCollator(tok, 0.2, seed=9 + acc.process_index))

def cfg(name):
    return TrainerConfig(output_dir=f"{root}/{name}", steps=8, lr=2e-3, warmup_steps=2, grad_accum=2,
                         checkpoint_every=3, seed=21, progress=False, cpu=True)

acc = make_accelerator(cfg("ref"))
ref = train(make_net(tok, 0), mlm_step, stream(acc), cfg("ref"), accelerator=acc)
train(make_net(tok, 0), mlm_step, stream(acc), cfg("part"), accelerator=acc, max_steps_this_run=4)
res = train(make_net(tok, 5), mlm_step, stream(acc), cfg("part"), accelerator=acc, resume=True)
same = all(torch.equal(a, b) for a, b in zip(ref.module.state_dict().values(), res.module.state_dict().values()))
flat = torch.cat([p.detach().flatten() for p in res.module.parameters()])
gathered = acc.gather(flat[None])
with open(f"{root}/result-{acc.process_index}.json", "w") as f:  # files, not stdout: the ranks' prints interleave
    json.dump({"rank": acc.process_index, "world": acc.num_processes, "same": same,
               "replicas_equal": bool(torch.equal(gathered[0], gathered[1])), "resumed_from": res.resumed_from}, f)
"""


@pytest.mark.slow
@pytest.mark.ddp
def test_two_process_ddp_resume_is_exact(tmp_path):
    """Two CPU processes (gloo) under torchrun: DDP wrapping, per-rank data shards/RNG, exact resumption."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(port),
            str(script),
            str(tmp_path / "runs"),
            str(Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("result-*.json"))]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["world"] == 2 and r["same"] and r["replicas_equal"] and r["resumed_from"] == 4 for r in results)
    ckpt = tmp_path / "runs" / "part" / "checkpoints" / "checkpoint-8"
    assert {"data-0.pt", "data-1.pt", "rng-0.pt", "rng-1.pt"} <= {p.name for p in ckpt.iterdir()}
