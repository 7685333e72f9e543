"""The precision policy (rokd.precision): how `auto` resolves, that bf16 training resumes exactly and
stays close to fp32, and that every record says what a run computed in. CPU only, tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_trainer import assert_same_weights, config, make_net, make_stream, make_tokenizer, mlm_step

from rokd import precision as P
from rokd.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("ROKD_PRECISION", raising=False)
    monkeypatch.delenv("ROKD_CUDNN_SDPA", raising=False)


@pytest.fixture(autouse=True)
def cudnn_attention_switch():
    """Resolving a half precision on "cuda" flips a process-wide torch switch: put it back."""
    before = torch.backends.cuda.cudnn_sdp_enabled()
    yield
    torch.backends.cuda.enable_cudnn_sdp(before)


# ------------------------------------------------------------------------------ auto, on a CPU


def _cpu(monkeypatch, amx: bool, avx512_bf16: bool, speedup: float | None):
    """A CPU with these instructions whose probe measures ``speedup`` (None: the probe must not run)."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)

    def probe(threads):
        if speedup is None:
            raise AssertionError("the probe ran on a CPU without bf16 instructions")
        return speedup

    monkeypatch.setattr(P, "cpu_bf16_speedup", probe)


def test_auto_picks_bf16_on_a_cpu_with_amx_that_is_faster(monkeypatch, no_env):
    _cpu(monkeypatch, amx=True, avx512_bf16=True, speedup=3.1)
    got = P.resolve_precision("auto", "cpu")
    assert (got.name, got.dtype) == ("bf16", torch.bfloat16) and "amx" in got.reason and "3.10x" in got.reason


def test_auto_keeps_fp32_when_bf16_instructions_are_slower(monkeypatch, no_env):
    # This project's Xeon without AMX: AVX512-BF16 present, a bf16 step at 0.61x.
    _cpu(monkeypatch, amx=False, avx512_bf16=True, speedup=0.61)
    got = P.resolve_precision("auto", "cpu")
    assert got.name == "fp32" and "avx512_bf16" in got.reason and "0.61x" in got.reason
    # a probe barely above 1 is noise: the margin must be beaten
    _cpu(monkeypatch, amx=True, avx512_bf16=True, speedup=P.PROBE_MARGIN - 0.01)
    assert P.resolve_precision("auto", "cpu").name == "fp32"


def test_auto_keeps_fp32_without_bf16_instructions_and_does_not_probe(monkeypatch, no_env):
    _cpu(monkeypatch, amx=False, avx512_bf16=False, speedup=None)
    got = P.resolve_precision("auto", "cpu")
    assert got.name == "fp32" and "no bf16 instructions" in got.reason
    assert P.cpu_bf16_instructions() is None


def test_explicit_settings_and_the_environment_override(monkeypatch, no_env):
    _cpu(monkeypatch, amx=False, avx512_bf16=False, speedup=None)
    assert P.resolve_precision("bf16", "cpu").name == "bf16"  # asked for: honoured (slow or not)
    assert P.resolve_precision("fp32", "cpu").name == "fp32"
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        P.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="choose one of"):
        P.resolve_precision("fp8", "cpu")
    monkeypatch.setenv("ROKD_PRECISION", "bf16")  # a machine-wide pin replaces `auto` only
    assert P.resolve_precision("auto", "cpu").reason == "ROKD_PRECISION"
    assert P.resolve_precision("fp32", "cpu").name == "fp32"


def test_the_probe_times_a_real_step_and_is_cached():
    P.cpu_bf16_speedup.cache_clear()
    ratio = P.cpu_bf16_speedup(1)
    assert 0.05 < ratio < 50  # a measured ratio (this CPU's: see the speed chapter), not a constant
    assert P.cpu_bf16_speedup(1) == ratio and P.cpu_bf16_speedup.cache_info().hits >= 1


# ------------------------------------------------------------------------------ auto, on a GPU


def test_auto_on_cuda_picks_bf16_or_fp16_with_a_scaler(monkeypatch, no_env):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    got = P.resolve_precision("auto", "cuda")
    assert (got.name, got.device, got.accelerate_name) == ("bf16", "cuda", "bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a T4 / V100
    got = P.resolve_precision("auto", "cuda")
    assert (got.name, got.accelerate_name) == ("fp16", "fp16") and "scaler" in got.reason
    with pytest.raises(ValueError, match="no bf16"):
        P.resolve_precision("bf16", "cuda")
    assert P.resolve_precision("fp16", "cuda").dtype == torch.float16


def test_half_precision_on_cuda_keeps_attention_off_cudnn(monkeypatch, no_env):
    """cuDNN attention builds a plan per new batch shape (a bf16 distillation step 10x slower on an H200):
    resolving bf16/fp16 on CUDA takes it out of SDPA's backends; fp32, the CPU and ROKD_CUDNN_SDPA=1 do not."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for setting, device in (("fp32", "cuda"), ("bf16", "cpu")):
        torch.backends.cuda.enable_cudnn_sdp(True)
        P.resolve_precision(setting, device)
        assert torch.backends.cuda.cudnn_sdp_enabled(), (setting, device)
    monkeypatch.setenv("ROKD_CUDNN_SDPA", "1")
    assert P.runtime_record(P.resolve_precision("auto", "cuda"))["cudnn_attention"] is True
    monkeypatch.delenv("ROKD_CUDNN_SDPA")
    for setting in ("auto", "bf16", "fp16"):
        torch.backends.cuda.enable_cudnn_sdp(True)
        got = P.resolve_precision(setting, "cuda")
        assert not torch.backends.cuda.cudnn_sdp_enabled(), setting
        assert P.runtime_record(got)["cudnn_attention"] is False
    assert "cudnn_attention" not in P.runtime_record(P.resolve_precision("fp32", "cpu"))


def test_trainer_on_a_gpu_machine_resolves_through_cuda(monkeypatch, no_env):
    from rokd.trainer import resolve_mixed_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_mixed_precision("auto").name == "fp16"
    _cpu(monkeypatch, amx=False, avx512_bf16=False, speedup=None)
    assert resolve_mixed_precision("auto", cpu=True).name == "fp32"  # `cpu: true` wins over the GPU


# ------------------------------------------------------------------------------ training in bf16


def test_bf16_training_resumes_bit_for_bit(tmp_path, tokenizer):
    """Forced bf16 autocast on the CPU (fp32 master weights): kill after 5 of 10 steps and resume in fresh
    objects; the weights are torch.equal to an uninterrupted bf16 run's."""
    reference = train(
        make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), config(tmp_path, "ref", mixed_precision="bf16")
    )
    assert reference.precision == "bf16" and reference.completed
    cfg = config(tmp_path, "stopped", mixed_precision="bf16")
    part = train(make_net(tokenizer, 0), mlm_step, make_stream(tokenizer), cfg, max_steps_this_run=5)
    assert part.final_step == 5
    resumed = train(make_net(tokenizer, 123), mlm_step, make_stream(tokenizer), cfg, resume=True)
    assert resumed.resumed_from == 5
    assert_same_weights(reference.module, resumed.module)
    assert all(p.dtype == torch.float32 for p in resumed.module.parameters())  # master weights stay fp32
    log = [json.loads(line) for line in (tmp_path / "stopped" / "train_log.jsonl").read_text().splitlines()]
    assert {r["precision"] for r in log} == {"bf16"} and all(r["threads"] >= 1 for r in log)


# bf16 keeps 8 significant bits: each matmul input is rounded by at most 2**-9 (0.2 %) relative, while
# accumulation, softmax and the loss stay fp32, so a step's loss should move by about that much, not more.
# 0.5 % leaves room for the drift of 80 steps (measured: 0.02 % at most on a Xeon with AVX512-BF16), and is
# tighter than a genuine change: training with another dropout seed alone moves the losses by up to 1.7 %.
BF16_LOSS_TOLERANCE = 0.005


def test_bf16_losses_agree_with_fp32_within_tolerance(tmp_path, tokenizer):
    def losses(name, **kw):
        train(
            make_net(tokenizer, 0),
            mlm_step,
            make_stream(tokenizer),
            config(tmp_path, name, steps=80, lr=5e-3, checkpoint_every=0, **kw),
        )
        return np.array(
            [json.loads(line)["mlm"] for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
        )

    fp32, bf16 = losses("fp32", mixed_precision="fp32"), losses("bf16", mixed_precision="bf16")
    assert fp32[-10:].mean() < fp32[:10].mean() - 0.5  # the model did learn: the comparison spans real training
    assert np.max(np.abs(bf16 - fp32) / fp32) <= BF16_LOSS_TOLERANCE
    assert not np.array_equal(bf16, fp32)  # bf16 really ran (the numbers differ, a little)
    control = losses("control", mixed_precision="fp32", seed=22)
    assert np.max(np.abs(control - fp32) / fp32) > BF16_LOSS_TOLERANCE  # the tolerance can fail


# ------------------------------------------------------------------------------ records


def test_runtime_records_and_the_produced_by_line(monkeypatch, no_env):
    from rokd.runinfo import RunInfo

    got = P.resolve_precision("bf16", "cpu")
    rec = P.runtime_record(got)
    assert rec == {
        "precision": "bf16",
        "precision_reason": "asked for",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu_memory": P.apply_cpu_memory(),  # which allocator served a CPU run
    }
    assert "cpu_memory" not in P.runtime_record(P.Precision("fp32", "cuda", "asked for"))  # the GPU's own memory
    assert "bf16" in P.process_runtime()["precision"].split("+")
    info = RunInfo(
        "mini",
        "x",
        git_commit="abc",
        hardware="Intel(R) Xeon(R) Processor, 2 cores",
        torch_version="2.13.0+cpu",
        started="2026-11-27T12:00:00+00:00",
    ).finish()
    line = info.markdown()
    assert f"precision {info.precision}, {info.threads} thread" in line
    back = RunInfo.from_markdown(line)
    assert (back.precision, str(back.threads), back.hardware) == (info.precision, str(info.threads), info.hardware)
    # a line written before precision was recorded (committed mini chapters) still parses
    old = (
        "**Produced by** profile `mini`, seed 2, commit `abc`, on AMD EPYC 7B13, 2 cores; torch 2.13.0+cpu; "
        "started 2026-11-24T18:00:00+00:00; wall time 12 s."
    )
    back = RunInfo.from_markdown(old)
    assert (back.hardware, back.wall_time_s, back.precision, back.threads) == (
        "AMD EPYC 7B13, 2 cores",
        12.0,
        None,
        None,
    )


HEAP_PATTERN = """
import sys, torch
from rokd.precision import return_freed_memory
if sys.argv[1] == "fixed":
    assert return_freed_memory()
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
base, retained, keep = rss_mb(), [], []
for _ in range(3):  # like training steps
    big = torch.empty(8_000_000); del big                # freeing 32 MB raises glibc's dynamic mmap threshold
    blocks = []
    for _ in range(50):  # 400 MB of 8 MB activation-sized buffers, each followed by a small live block
        blocks.append(torch.ones(2_000_000))
        keep.append(torch.ones(16_000))
    del blocks
    retained.append(rss_mb() - base)
print(max(retained))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")
def test_training_returns_freed_activation_memory_to_the_os():
    """Without the fixed mmap threshold, 400 MB of freed buffers stay in the process (the control); with it
    they go back to the OS. Separate processes: the setting is process-wide."""

    def retained_mb(mode):
        out = subprocess.run([sys.executable, "-c", HEAP_PATTERN, mode], capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    assert retained_mb("default") > 300
    assert retained_mb("fixed") < 50


def test_cpu_runs_cap_the_primitive_caches_unless_the_user_set_them(monkeypatch, no_env):
    """bf16 matmuls on a CPU cache a primitive per shape in oneDNN and in ideep above it; rokd's shapes change
    every step, so those caches (1,024 each by default) grew a build to 24 GB. Resolving a CPU precision and CPU
    training cap both; a value in the environment is the user's and stays."""
    capped = {env: str(P.PRIMITIVE_CACHE_CAPACITY) for env in P.PRIMITIVE_CACHE_ENVS}
    assert set(capped) == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"}
    for env in capped:
        monkeypatch.delenv(env, raising=False)
    P.resolve_precision("fp32", "cpu")
    assert {env: P.os.environ[env] for env in capped} == capped
    for env in capped:
        monkeypatch.delenv(env)
    assert P.apply_cpu_memory() and {env: P.os.environ[env] for env in capped} == capped  # the trainer's call
    monkeypatch.setenv(P.IDEEP_CACHE_ENV, "1024")
    P.resolve_precision("fp32", "cpu")
    P.apply_cpu_memory()
    assert P.os.environ[P.IDEEP_CACHE_ENV] == "1024" and P.os.environ[P.ONEDNN_CACHE_ENV] == capped[P.ONEDNN_CACHE_ENV]
    assert P.cap_primitive_caches() == {P.ONEDNN_CACHE_ENV: capped[P.ONEDNN_CACHE_ENV], P.IDEEP_CACHE_ENV: "1024"}
