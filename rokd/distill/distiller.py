"""The distiller: one student from one or several frozen teachers.

``distill_student(profile, student_key)`` resolves the settings (profile ``distill:`` section, overridden
by the arguments), initialises the student from its first teacher (:mod:`rokd.distill.student`), and
trains it with the shared loop (:func:`rokd.trainer.train`) on the objective

    alpha_ce * KL(ensemble_T || student_T) * T^2  +  alpha_mlm * CE(student, tokens)  +  alpha_cos * (1 - cos)

where every MLM logit (student and teachers) is computed only at the masked positions, teachers run
frozen in ``torch.inference_mode``, batches are grouped by length, and the ensemble soft target is the
weighted mean of the teachers' probabilities mapped onto the student's vocabulary
(:mod:`rokd.distill.ensemble`, :mod:`rokd.distill.adaptors`).

Output: ``artifacts/<profile>/students/<key>/``: the ``DistilBertForMaskedLM`` and its tokenizer
(safetensors, ``AutoModelForMaskedLM`` loads it), ``train_log.jsonl`` (every loss term, lr, tokens/s,
peak memory, coverage per step), ``distill_config.json`` (the resolved :class:`DistillRun`) and
``summary.json`` (sizes, wall time, coverage, final losses, held-out MLM accuracy of the student and of
its teachers). A folder whose ``distill_config.json`` equals the resolved config is reused as is.
Checkpoints live in ``<key>.work/`` while training (``resume=True`` continues a killed run) and are
removed once the student is saved.

Several GPUs: ``accelerate launch --multi_gpu --num_processes 4 -m rokd.cli distill --profile mini
--student distilmulti-bert-base-ro`` (each process takes its shard of the length-grouped batches; only the
trainable student is wrapped by DDP). The ``paper`` profile uses the authors' released students
(``distill.source: hub``); to distil from the hub teachers, copy ``paper.yaml`` with ``distill.source:
build`` and pass the file as ``--profile``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rokd import mlm
from rokd.config import ConfigError, save_config, to_dict
from rokd.distill import losses as L
from rokd.distill.adaptors import TeacherAdaptor, TeacherTargets, make_adaptor, pool_units
from rokd.distill.batching import CrossTokenizerView, DistillCollator, PairedLines
from rokd.distill.ensemble import ensemble_soft_targets
from rokd.distill.student import init_student_from_teacher, layer_map, save_student
from rokd.models.registry import STUDENT_TEACHERS, STUDENTS, TEACHERS, load_model, load_tokenizer, resolve
from rokd.paths import artifacts_dir
from rokd.profiles import Profile, load_profile

STRATEGIES = ("ensemble", "hidden-only")
CONFIG_FILE = "distill_config.json"
SUMMARY_FILE = "summary.json"
LOG_FILE = "train_log.jsonl"
FORMAT_VERSION = 1


@dataclass
class DistillRun:
    """The resolved config of one distillation run (written as ``distill_config.json``)."""

    profile: str
    student: str
    teachers: list[str]
    teacher_weights: list[float]
    teacher_fingerprints: dict[str, str]
    strategy: str
    temperature: float
    alpha_ce: float
    alpha_mlm: float
    alpha_cos: float
    steps: int
    batch_size: int
    grad_accum: int
    max_length: int
    lr: float
    warmup_steps: int
    weight_decay: float
    max_grad_norm: float
    mlm_probability: float
    smoothed_masking: bool
    eval_lines: int
    seed: int
    corpus_sha256: str
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DistillOverrides:
    """Per-run changes to a profile's ``distill:`` section; ``None`` keeps the profile's value.

    The one list of what a user may vary per distillation: the CLI, the notebook and ablations build
    one and pass it to :func:`distill_student` / :func:`resolve_run`.
    """

    teachers: list[str] | None = None  # registry keys; the first gives the student's tokenizer
    strategy: str | None = None
    teacher_weights: list[float] | None = None
    temperature: float | None = None
    alpha_ce: float | None = None
    alpha_mlm: float | None = None
    alpha_cos: float | None = None
    steps: int | None = None


def _profile(profile: str | Profile) -> Profile:
    return profile if isinstance(profile, Profile) else load_profile(profile)


def _teacher_fingerprint(prof: Profile, key: str) -> str:
    from rokd.models.teachers import file_sha256

    ref = resolve(key, prof)
    if ref.source == "hub":
        return f"hub:{ref.name_or_path}"
    weights = Path(ref.name_or_path) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"teacher {key}: no model.safetensors in {ref.name_or_path}; build it with `rokd teachers build --profile {prof.name}`")
    return "sha256:" + file_sha256(weights)


def resolve_run(
    profile: str | Profile,
    student_key: str,
    overrides: DistillOverrides | None = None,
    *,
    corpus_sha256: str = "",
    fingerprints: dict[str, str] | None = None,
) -> DistillRun:
    """The profile's ``distill:`` settings with ``overrides`` applied; validated."""
    prof = _profile(profile)
    d = prof.distill
    o = overrides or DistillOverrides()
    teachers, strategy, teacher_weights, steps = o.teachers, o.strategy, o.teacher_weights, o.steps
    temperature, alpha_ce, alpha_mlm, alpha_cos = o.temperature, o.alpha_ce, o.alpha_mlm, o.alpha_cos
    if student_key not in STUDENTS:
        raise ConfigError(f"unknown student {student_key!r}; choose one of {list(STUDENTS)}")
    teachers = list(teachers) if teachers else list(STUDENT_TEACHERS[student_key])
    bad = [t for t in teachers if t not in TEACHERS]
    if bad or len(set(teachers)) != len(teachers):
        raise ConfigError(f"teachers must be distinct keys among {list(TEACHERS)}, got {teachers}")
    if teachers[0] != STUDENT_TEACHERS[student_key][0]:
        raise ConfigError(
            f"student {student_key} uses the tokenizer of {STUDENT_TEACHERS[student_key][0]}; it must be the first teacher (got {teachers})"
        )
    strategy = strategy or d.strategy
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if teacher_weights is not None:
        weights = [float(w) for w in teacher_weights]
    elif d.teacher_weights is not None:  # the profile's weights are for the first teachers, in order
        weights = [float(w) for w in d.teacher_weights][: len(teachers)]
    else:
        weights = [1.0] * len(teachers)
    if len(weights) != len(teachers) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"teacher_weights: need {len(teachers)} non-negative numbers, not all zero; got {teacher_weights or d.teacher_weights}")
    total = sum(weights)
    run = DistillRun(
        profile=prof.name,
        student=student_key,
        teachers=teachers,
        teacher_weights=[w / total for w in weights],
        teacher_fingerprints=dict(fingerprints or {}),
        strategy=strategy,
        temperature=float(temperature if temperature is not None else d.temperature),
        alpha_ce=float(alpha_ce if alpha_ce is not None else d.alpha_ce),
        alpha_mlm=float(alpha_mlm if alpha_mlm is not None else d.alpha_mlm),
        alpha_cos=float(alpha_cos if alpha_cos is not None else d.alpha_cos),
        steps=int(steps if steps is not None else d.steps),
        batch_size=d.batch_size,
        grad_accum=d.grad_accum,
        max_length=d.max_length,
        lr=d.lr,
        warmup_steps=min(d.warmup_steps, int(steps if steps is not None else d.steps)),
        weight_decay=d.weight_decay,
        max_grad_norm=d.max_grad_norm,
        mlm_probability=d.mlm_probability,
        smoothed_masking=d.smoothed_masking,
        eval_lines=d.eval_lines,
        seed=d.seed,
        corpus_sha256=corpus_sha256,
        extra={"masking_seeds": "per-batch"} if d.data_workers > 0 else {},  # other masks: another run
    )
    if run.temperature <= 0 or run.steps < 1 or min(run.alpha_ce, run.alpha_mlm, run.alpha_cos) < 0:
        raise ConfigError(f"temperature must be > 0, steps >= 1 and loss weights >= 0 (got T={run.temperature}, steps={run.steps}, "
                          f"alphas={run.alpha_ce}/{run.alpha_mlm}/{run.alpha_cos})")
    if run.alpha_ce + run.alpha_mlm + run.alpha_cos == 0:
        raise ConfigError("alpha_ce, alpha_mlm and alpha_cos are all 0: nothing to train")
    return run


# --------------------------------------------------------------------------------------------------
# The trainable module and the step
# --------------------------------------------------------------------------------------------------


class DistillNet(nn.Module):
    """Everything trainable: the student (logits only at masked positions) and one projection per
    teacher from the student's width to the teacher's (identity when equal). Only the student is saved."""

    def __init__(self, student: nn.Module, teacher_hidden_sizes: dict[str, int]):
        super().__init__()
        self.student = mlm.SparseMLM(student)
        width = int(student.config.dim)
        self.projections = nn.ModuleDict(
            {name: (nn.Identity() if h == width else nn.Linear(width, h)) for name, h in teacher_hidden_sizes.items()}
        )

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        targets: dict[str, TeacherTargets],
        soft: torch.Tensor,
        soft_valid: torch.Tensor,
        cos_weights: dict[str, float],
        weights: L.LossWeights,
    ) -> dict[str, torch.Tensor]:
        out = self.student(batch["input_ids"], batch["attention_mask"], batch["labels"])
        terms: dict[str, torch.Tensor] = {}
        if weights.alpha_ce and weights.alpha_mlm:  # both vocabulary terms from one pass over the logits
            rows = None if bool(soft_valid.all()) else soft_valid.nonzero().squeeze(1)
            terms["ce"], terms["mlm"] = L.soft_target_kl_and_mlm(
                out.logits, soft if rows is None else soft[rows], out.targets, weights.temperature, rows)
        elif weights.alpha_ce:
            terms["ce"] = L.soft_target_kl(out.logits[soft_valid], soft[soft_valid], weights.temperature, teacher_is_probs=True)
        elif weights.alpha_mlm:
            terms["mlm"] = L.mlm_cross_entropy(out.logits, out.targets)
        if weights.alpha_cos:
            total_w = sum(cos_weights.values())
            cos = None
            for name, w in cos_weights.items():
                t = targets[name]
                student_vecs = pool_units(out.last_hidden_state, t.student_unit, t.hidden.shape[0], t.units_are_tokens)
                term = L.cosine_alignment(self.projections[name](student_vecs), t.hidden)
                terms[f"cos.{name}"] = term
                cos = w / total_w * term if cos is None else cos + w / total_w * term
            terms["cos"] = cos
        terms["loss"] = L.combine({k: v for k, v in terms.items() if k in ("ce", "mlm", "cos")}, weights)
        return terms


def _outside_inference(x: torch.Tensor) -> torch.Tensor:
    return x.clone() if x.is_inference() else x


def teacher_targets(
    adaptors: list[TeacherAdaptor], batch: dict[str, torch.Tensor], temperature: float, soft_names: list[str] | None = None
) -> tuple[dict[str, TeacherTargets], torch.Tensor, torch.Tensor]:
    """Run every teacher's adaptor in ``inference_mode`` and build the ensemble soft target.

    Same-vocabulary teachers run first: their ensemble is the reference with which cross-tokenizer
    teachers split a token's mass among case variants. ``soft_names``: the teachers in the soft target
    (default all). Returns ``(targets, soft (n, V), valid (n,))``. Only what enters the autograd graph
    (the soft target, hidden states) is copied out of inference mode; ``targets[...].probs`` stay
    inference tensors (read-only).
    """
    out: dict[str, TeacherTargets] = {}
    soft_names = [a.name for a in adaptors] if soft_names is None else soft_names
    with torch.inference_mode():
        plain = [a for a in adaptors if not a.needs_reference]
        for a in plain:
            out[a.name] = a(batch, temperature)
        reference = None
        if plain:
            reference, _ = ensemble_soft_targets([out[a.name].probs for a in plain], [a.weight for a in plain])
        for a in adaptors:
            if a.needs_reference:
                out[a.name] = a(batch, temperature, reference)
        chosen = [a for a in adaptors if a.name in soft_names]
        soft, valid = ensemble_soft_targets([out[a.name].probs for a in chosen], [a.weight for a in chosen],
                                            [out[a.name].covered for a in chosen])
    for t in out.values():
        t.hidden = _outside_inference(t.hidden)
        t.student_unit = _outside_inference(t.student_unit)
        t.stats = {k: _outside_inference(v) for k, v in t.stats.items()}
    return out, _outside_inference(soft), _outside_inference(valid)


def make_step_fn(adaptors: list[TeacherAdaptor], run: DistillRun):
    """``step_fn(net, batch) -> terms`` for :func:`rokd.trainer.train`.

    Terms: ``loss``, ``ce``, ``mlm``, ``cos`` (and ``cos.<teacher>``), plus ``stat_*`` numbers that are
    logged, not optimised: coverage and mapped mass of each cross-tokenizer teacher, and
    ``stat_soft_rows`` (share of masked positions with a soft target).
    """
    weights = L.LossWeights(run.alpha_ce, run.alpha_mlm, run.alpha_cos, run.temperature)
    soft_names = [a.name for a in adaptors if run.strategy == "ensemble" or not a.needs_reference]
    cos_weights = {a.name: a.weight for a in adaptors}

    def step_fn(net: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        targets, soft, valid = teacher_targets(adaptors, batch, run.temperature, soft_names)
        terms = net(batch, targets, soft, valid, cos_weights, weights)
        for t in targets.values():
            terms.update({k: v.detach().float() for k, v in t.stats.items()})
        terms["stat_soft_rows"] = valid.float().mean() if valid.numel() else torch.zeros((), device=valid.device)
        return terms

    return step_fn


# --------------------------------------------------------------------------------------------------
# Building the pieces
# --------------------------------------------------------------------------------------------------


@dataclass
class DistillSetup:
    """Everything :func:`train_student` needs; built by :func:`build_setup` (tests build it directly)."""

    net: DistillNet
    adaptors: list[TeacherAdaptor]
    batches: mlm.BatchStream
    student_tokenizer: Any
    teacher_tokenizers: dict[str, Any]
    teacher_layers: list[int]


def build_setup(
    run: DistillRun,
    teacher_models: dict[str, nn.Module],
    teacher_tokenizers: dict[str, Any],
    train_lines: str | Path | list[str],
    *,
    cache_dir: Path | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
    num_workers: int = 0,
) -> DistillSetup:
    """Student initialised from the first teacher, adaptors, and the endless batch stream.

    ``num_workers`` > 0: batches are collated and masked in that many DataLoader workers, with per-batch
    masking seeds (:class:`rokd.mlm.BatchStream`; ``run.extra["masking_seeds"]`` says so).
    """
    first = run.teachers[0]
    student_tok = teacher_tokenizers[first]
    student = init_student_from_teacher(teacher_models[first])
    adaptors = [
        make_adaptor(k, teacher_models[k], teacher_tokenizers[k], student_tok, w, int(student.config.vocab_size))
        for k, w in zip(run.teachers, run.teacher_weights)
    ]
    net = DistillNet(student, {a.name: a.hidden_size for a in adaptors})

    def tokenized(tok, max_len: int, tag: str) -> mlm.TokenizedLines:
        cache = None
        if cache_dir is not None and not isinstance(train_lines, list):
            cache = Path(cache_dir) / f"tokens-{tag}-{max_len}.npz"
        return mlm.tokenize_lines(train_lines, tok, max_len, cache_path=cache)

    corpus = tokenized(student_tok, run.max_length, first)
    others, views = {}, []
    for a in adaptors:
        if a.needs_reference:
            tok = teacher_tokenizers[a.name]
            # Longer than the student's limit: the teacher's finer split must still reach the student's
            # last word; the extra tokens are cut off per example in the collator.
            limit = min(int(teacher_models[a.name].config.max_position_embeddings), 2 * run.max_length)
            others[a.name] = tokenized(tok, limit, a.name)
            views.append(CrossTokenizerView(a.name, tok))
    dataset = PairedLines(corpus, others)
    token_weights = None
    if run.smoothed_masking:
        counts = mlm.token_counts(corpus, len(student_tok))
        token_weights = mlm.smoothed_token_weights(counts, student_tok.all_special_ids)
    per_batch = num_workers > 0 or run.extra.get("masking_seeds") == "per-batch"
    student_collator = mlm.WholeWordMaskCollator(student_tok, run.mlm_probability, seed=run.seed,
                                                 token_weights=token_weights, per_batch_seed=per_batch)
    sampler = mlm.LengthGroupedBatchSampler(dataset.lengths, run.batch_size, seed=run.seed, num_shards=num_shards, shard_index=shard_index)
    batches = mlm.BatchStream(dataset, sampler, DistillCollator(student_collator, views), num_workers=num_workers)
    return DistillSetup(
        net=net,
        adaptors=adaptors,
        batches=batches,
        student_tokenizer=student_tok,
        teacher_tokenizers=dict(teacher_tokenizers),
        teacher_layers=layer_map(teacher_models[first].config.num_hidden_layers),
    )


def trainer_config(run: DistillRun, output_dir: Path, device: str = "auto", checkpoint_every: int = 0,
                   progress: bool = True, precision: str = "auto"):
    """The :class:`rokd.trainer.TrainerConfig` of a distillation run; ``precision``: the profile's
    ``distill.precision``."""
    from rokd.trainer import TrainerConfig

    return TrainerConfig(
        mixed_precision=precision,
        output_dir=str(output_dir),
        steps=run.steps,
        lr=run.lr,
        warmup_steps=run.warmup_steps,
        weight_decay=run.weight_decay,
        grad_accum=run.grad_accum,
        max_grad_norm=run.max_grad_norm,
        checkpoint_every=checkpoint_every,
        seed=run.seed,
        cpu=device == "cpu",
        progress=progress,
    )


def read_log(path: str | Path) -> list[dict]:
    """The JSONL training log as a list of records."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def coverage_summary(log: list[dict], adaptors: list[TeacherAdaptor]) -> dict[str, dict[str, float]]:
    """Per cross-tokenizer teacher: mean coverage / mapped mass over the run, and the vocabulary map's reach."""
    out = {}
    for a in adaptors:
        if a.vocab_map is None:
            continue
        cov = [r[f"stat_coverage.{a.name}"] for r in log if f"stat_coverage.{a.name}" in r]
        mass = [r[f"stat_mapped_mass.{a.name}"] for r in log if f"stat_mapped_mass.{a.name}" in r]
        out[a.name] = {
            "masked_positions_covered": sum(cov) / len(cov) if cov else float("nan"),
            "mapped_probability_mass": sum(mass) / len(mass) if mass else float("nan"),
            **a.vocab_map.stats(),
        }
    return out


def folder_size_mb(path: Path, pattern: str = "*.safetensors") -> float:
    return sum(f.stat().st_size for f in Path(path).glob(pattern)) / 2**20


def count_params(model: nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def student_dir(profile: str | Profile, student_key: str) -> Path:
    return artifacts_dir(_profile(profile).name) / "students" / student_key


def distill_student(
    profile: str | Profile,
    student_key: str,
    overrides: DistillOverrides | None = None,
    *,
    resume: bool = True,
    output_dir: str | Path | None = None,
    progress: bool = True,
    log=print,
) -> Path:
    """Distil ``student_key`` under ``profile`` (see the module doc); returns the student's folder.

    ``overrides`` fields left at None take the profile's ``distill:`` value; ``teachers`` defaults to
    the registry's :data:`~rokd.models.registry.STUDENT_TEACHERS`. Idempotent: a finished student with the
    same resolved config is returned without work. ``output_dir`` defaults to
    ``artifacts/<profile>/students/<student_key>`` (give another one for ablations).
    """
    from rokd.models.quality import mlm_accuracy, read_lines
    from rokd.models.teachers import build_teachers, corpus_files, file_sha256
    from rokd.precision import runtime_record, set_threads
    from rokd.trainer import make_accelerator, resolve_mixed_precision, train

    prof = _profile(profile)
    if prof.distill.source == "hub":
        raise ConfigError(
            f"profile {prof.name!r} uses the authors' released students (distill.source: hub); nothing to distil. "
            "Load them with rokd.models.registry.load_model."
        )
    out = Path(output_dir) if output_dir is not None else student_dir(prof, student_key)
    teacher_keys = resolve_run(prof, student_key, overrides).teachers  # validates before any work
    train_txt, heldout_txt = corpus_files(prof)
    build_teachers(prof, [k for k in TEACHERS if k in teacher_keys], log=log)
    run = resolve_run(prof, student_key, overrides, corpus_sha256=file_sha256(train_txt),
                      fingerprints={k: _teacher_fingerprint(prof, k) for k in teacher_keys})
    if (out / SUMMARY_FILE).is_file() and (out / CONFIG_FILE).is_file():
        saved = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
        if saved == to_dict(run):
            log(f"student {student_key}: up to date in {out}")
            return out
    work = out.parent / (out.name + ".work")
    if work.exists():
        saved_cfg = work / CONFIG_FILE
        if not resume or not saved_cfg.is_file() or json.loads(saved_cfg.read_text(encoding="utf-8")) != to_dict(run):
            shutil.rmtree(work)  # checkpoints of another config (or resume off): start afresh
    work.mkdir(parents=True, exist_ok=True)
    save_config(run, work / CONFIG_FILE)

    if not progress:  # also quiet the weight-loading / saving bars of transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    t0 = time.perf_counter()
    models = {k: load_model(k, "mlm", prof) for k in teacher_keys}
    toks = {k: load_tokenizer(k, prof) for k in teacher_keys}
    threads = set_threads(prof.distill.threads)
    tcfg = trainer_config(run, work, prof.device, prof.distill.checkpoint_every, progress, prof.distill.precision)
    acc = make_accelerator(tcfg)
    precision = resolve_mixed_precision(tcfg.mixed_precision, tcfg.cpu)
    setup = build_setup(run, models, toks, train_txt, cache_dir=work, num_shards=acc.num_processes,
                        shard_index=acc.process_index, num_workers=prof.distill.data_workers)
    log(f"student {student_key}: distilling from {', '.join(teacher_keys)} ({run.strategy}, {run.steps} steps) into {out}")
    result = train(
        setup.net, make_step_fn(setup.adaptors, run), setup.batches, tcfg,
        frozen_modules=[a.model for a in setup.adaptors], resume=resume, accelerator=acc,
    )
    if not acc.is_main_process:
        return out
    student = result.module.student.model.eval()
    train_log = read_log(work / LOG_FILE)

    # Held-out MLM accuracy: the student and each teacher, same lines, same masking seed (identical
    # masks for a teacher that shares the student's tokenizer; its own tokenization otherwise).
    lines = read_lines(heldout_txt, limit=run.eval_lines, seed=run.seed)
    heldout = {student_key: mlm_accuracy(student, setup.student_tokenizer, lines, max_length=run.max_length,
                                         seed=run.seed, precision=precision)["mlm_accuracy"]}
    for k in teacher_keys:
        heldout[k] = mlm_accuracy(models[k].to(student.device), toks[k], lines, max_length=run.max_length,
                                  seed=run.seed, precision=precision)["mlm_accuracy"]
    wall = result.wall_time_s

    stage = Path(str(out) + ".stage")
    if stage.exists():
        shutil.rmtree(stage)
    student.config.rokd_teacher_layers = setup.teacher_layers
    save_student(student.to("cpu"), setup.student_tokenizer, stage)
    shutil.copy(work / LOG_FILE, stage / LOG_FILE)
    save_config(run, stage / CONFIG_FILE)
    first = models[teacher_keys[0]]
    teacher_sizes = {}
    for k in teacher_keys:
        ref = resolve(k, prof)
        teacher_sizes[k] = {
            "params": count_params(models[k]),
            "disk_mb": folder_size_mb(Path(ref.name_or_path)) if ref.source == "local" else None,
        }
    s_params = count_params(student)
    summary = {
        "student": student_key,
        "profile": prof.name,
        "teachers": teacher_keys,
        "teacher_weights": run.teacher_weights,
        "strategy": run.strategy,
        "teacher_layers_kept": setup.teacher_layers,
        "params": s_params,
        "disk_mb": folder_size_mb(stage),
        "teacher_sizes": teacher_sizes,
        "params_ratio_to_first_teacher": s_params / count_params(first),
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "train_time_s": round(wall, 1),
        "steps": result.final_step,
        "resumed_from": result.resumed_from,
        "tokens_per_s": result.tokens_per_s,
        "final_losses": {k: v for k, v in result.losses.items() if not k.startswith("stat_")},
        "coverage": coverage_summary(train_log, setup.adaptors),
        "heldout_mlm_accuracy": heldout,
        "heldout_lines": len(lines),
        "runtime": {**runtime_record(precision), "torch_threads": threads},  # what training and the measures ran in
    }
    (stage / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    stage.rename(out)
    shutil.rmtree(work, ignore_errors=True)
    log(f"student {student_key}: saved to {out} ({s_params / 1e6:.2f} M params, held-out MLM accuracy {heldout[student_key]:.3f})")
    return out


def load_summary(profile: str | Profile, student_key: str) -> dict:
    """The ``summary.json`` of a distilled student."""
    path = student_dir(profile, student_key) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SUMMARY_FILE} for {student_key}: distil it with `rokd distill --student {student_key}`")
    return json.loads(path.read_text(encoding="utf-8"))
