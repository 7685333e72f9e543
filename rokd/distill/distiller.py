"""The distiller: one student from one or several frozen teachers.

``distill_student(profile, student_key)`` resolves the settings (profile ``distill:`` section, overridden
by the arguments), initialises the student from its first teacher (:mod:`rokd.distill.student`), and
trains it with the shared loop (:func:`rokd.trainer.train`) on the objective

    alpha_ce * KL(ensemble_T || student_T) * T^2  +  alpha_mlm * CE(student, tokens)  +  alpha_cos * (1 - cos)

where every MLM logit (student and teachers) is computed only where a term needs it, teachers run
frozen in ``torch.inference_mode``, batches are grouped by length, and the ensemble soft target is the
weighted mean of the teachers' probabilities mapped onto the student's vocabulary
(:mod:`rokd.distill.ensemble`, :mod:`rokd.distill.adaptors`).

**Where the KL is computed** (``distill.soft_targets``): ``masked`` (default) at the masked positions
only, like the MLM term; ``all`` at every non-pad token, as the Hugging Face DistilBERT recipe does
(special tokens included). Masked-only is a deviation from that recipe, kept as the default because
the paper does not say which it used, every number published here was produced with it, and the
one-teacher and the multi-teacher students then learn from exactly the same positions: with another
tokenizer a teacher has a prediction only where the two tokenizations align one-to-one, and under
``all`` the other-vocabulary teacher still contributes only at its aligned *masked* positions (its
predictions of visible tokens are not mapped), so the unmasked positions would be taught by the
same-vocabulary teacher alone.

Output: ``artifacts/<profile>/students/<key>/``: the ``DistilBertForMaskedLM`` and its tokenizer
(safetensors, ``AutoModelForMaskedLM`` loads it), ``train_log.jsonl`` (every loss term, lr, tokens/s,
peak memory, coverage per step), ``distill_config.json`` (the resolved :class:`DistillRun`) and
``summary.json`` (sizes, wall time, coverage, final losses, held-out MLM accuracy of the student and of
its teachers), ``weights.sha256``. A folder whose ``distill_config.json`` equals the resolved config and
whose weights match their checksum is reused as is. Checkpoints live in ``<key>.work/`` while training
(``resume=True`` continues a killed run) and are removed once the student is saved.

The output folder is never a user's: ``output_dir`` must be new, empty or made by rokd (it carries
rokd's marker file), which is checked before any work; the student is built in a temp folder beside it
and renamed into place. One run per output folder at a time (a lock file beside it): a second one waits
(``wait=True``, ``--wait``) or stops naming the holder. After a NaN, ``--lr <lower> --resume-lr`` resumes
from the last good checkpoint with a lower learning rate (the error message gives the exact command).

Several GPUs: ``accelerate launch --multi_gpu --num_processes 4 -m rokd.cli distill --profile mini
--student distilmulti-bert-base-ro`` (each process takes its shard of the length-grouped batches; only the
trainable student is wrapped by DDP). The ``paper`` profile uses the authors' released students
(``distill.source: hub``); to distil from the hub teachers, copy ``paper.yaml`` with ``distill.source:
build`` and pass the file as ``--profile``.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import time
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rokd import io, mlm
from rokd.config import ConfigError, about, command_flags, from_dict, optional_fields, save_config, to_dict
from rokd.distill import losses as L
from rokd.distill import strategies as S
from rokd.distill.adaptors import (
    SOFT_POSITIONS,
    TeacherAdaptor,
    TeacherTargets,
    make_adaptor,
    pool_units,
    soft_positions,
)
from rokd.distill.batching import CrossTokenizerView, DistillCollator, PairedLines
from rokd.distill.ensemble import ensemble_soft_targets
from rokd.distill.student import make_student, max_input_tokens
from rokd.models.registry import (
    STUDENT_TEACHERS,
    STUDENTS,
    TEACHERS,
    load_model,
    load_tokenizer,
    resolve,
    split_replica,
)
from rokd.paths import artifacts_dir
from rokd.profiles import DistillConfig, DistillObjective, Profile, resolve_profile

STRATEGIES = tuple(S.STRATEGIES)  # rokd.distill.strategies; the alias "ensemble" = "span-map" is accepted too
CONFIG_FILE = "distill_config.json"
SUMMARY_FILE = "summary.json"
LOG_FILE = "train_log.jsonl"
FORMAT_VERSION = 1


@dataclass(kw_only=True)
class DistillRun(DistillObjective):
    """The resolved config of one distillation run (written as ``distill_config.json``): the objective
    (:class:`~rokd.profiles.DistillObjective`, its ``teacher_weights`` normalised, one per teacher) and the budget."""

    profile: str
    student: str
    teachers: list[str]
    teacher_fingerprints: dict[str, str]
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


# The fields of the profile's ``distill:`` section a run records (besides the objective).
_RUN_SETTINGS = (
    "steps",
    "batch_size",
    "grad_accum",
    "max_length",
    "lr",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "mlm_probability",
    "smoothed_masking",
    "eval_lines",
    "seed",
)

# Strategies whose soft-target rows may be every token (``soft_targets: all``), not only the masked ones.
ALL_TOKENS_STRATEGIES = ("span-map", "hidden-only", "cased-only")

#: What a user may vary per distillation run: the whole objective and these fields of the budget.
OVERRIDABLE = (
    *(f.name for f in fields(DistillObjective)),
    "steps",
    "seed",
    "lr",
    "batch_size",
    "grad_accum",
    "max_length",
)

DistillOverrides = make_dataclass(
    "DistillOverrides",
    [
        # Registry keys for the paper's students; for a student of one's own (a name that is not a paper key),
        # local folders or hub IDs too. The first teacher gives the student its tokenizer and initial weights.
        ("teachers", list[str] | None, field(default=None)),
        *optional_fields(DistillConfig, OVERRIDABLE),
        ("student_layers", list[int] | None, field(default=None, metadata=about("teacher layers the student keeps"))),
        (
            "student_depth",
            int | None,
            field(default=None, metadata=about("or only how many (default: half the teacher's)")),
        ),
    ],
)
DistillOverrides.__module__ = __name__
DistillOverrides.__doc__ = """Per-run changes to a profile's ``distill:`` section; ``None`` keeps the profile's value.

The one list of what a user may vary per distillation (:data:`OVERRIDABLE`, generated from the profile's
dataclasses): the CLI, the notebook, ``DistillSpec`` and ablations build one and pass it to
:func:`distill_student` / :func:`resolve_run`. Also ``teachers`` and the student's layers (``student_layers``,
the teacher layers it keeps, or ``student_depth``, how many).
"""


def _teacher_fingerprint(prof: Profile, key: str) -> str:
    """``hub:<id>`` for a hub teacher; the SHA-256 of a local teacher's config and weight files."""
    import hashlib

    ref = resolve(key, prof)
    if ref.source == "hub":
        return f"hub:{ref.name_or_path}"
    folder = Path(ref.name_or_path)
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not weights:
        hint = "save it with save_pretrained"
        if key in TEACHERS:
            hint = f"build it with `rokd teachers build --profile {prof.name}`"
        raise FileNotFoundError(f"teacher {key}: no model.safetensors in {ref.name_or_path}; {hint}")
    if [w.name for w in weights] == ["model.safetensors"]:
        return "sha256:" + io.file_sha256(weights[0])
    h = hashlib.sha256()
    for f in [folder / "config.json", *weights]:
        h.update(f.name.encode() + io.file_sha256(f).encode())
    return "sha256:" + h.hexdigest()


def teacher_name(source: str) -> str:
    """A short name for a teacher given as a folder or hub ID (its last path part, safe as a module key)."""
    import re

    tail = Path(str(source).rstrip("/")).name or str(source)
    return re.sub(r"[^A-Za-z0-9_-]+", "-", tail).strip("-") or "teacher"


def teacher_sources(run: DistillRun) -> dict[str, str]:
    """Teacher name -> what loads it (registry key, local folder or hub ID)."""
    sources = run.extra.get("teacher_sources") or {}
    return {name: sources.get(name, name) for name in run.teachers}


def resolve_run(
    profile: str | Profile,
    student_key: str,
    overrides: DistillOverrides | None = None,
    *,
    corpus_sha256: str = "",
    fingerprints: dict[str, str] | None = None,
) -> DistillRun:
    """The profile's ``distill:`` settings with ``overrides`` applied; validated."""
    prof = resolve_profile(profile)
    o = overrides or DistillOverrides()
    if o.lr is not None and not o.lr > 0:
        raise ConfigError(f"lr must be > 0, got {o.lr}")
    given = {k: getattr(o, k) for k in OVERRIDABLE if getattr(o, k) is not None}
    # The profile's section with the overrides applied, converted and checked like a profile's YAML.
    d = from_dict(DistillConfig, to_dict(dataclasses.replace(prof.distill, **given)), where="distill")
    base, replica = split_replica(student_key)  # "<student>@d<k>": the k-th distillation, seed + k - 1
    if base in STUDENTS:
        teachers, extra = _registry_teachers(student_key, base, o.teachers), {}
    elif o.teachers:
        teachers, extra = _own_teachers(o.teachers)
    else:
        raise ConfigError(
            f"unknown student {student_key!r}; choose one of {list(STUDENTS)} (or <student>@d<k>), "
            "or name its teachers (registry keys, local folders or hub IDs) to distil a student of your own"
        )
    extra.update(_student_shape(o))
    weights = _teacher_weights(o.teacher_weights, d.teacher_weights, len(teachers))
    objective = {f.name: getattr(d, f.name) for f in fields(DistillObjective)}
    run = DistillRun(
        **{**objective, "strategy": S.canonical_name(d.strategy), "teacher_weights": weights},
        **{k: getattr(d, k) for k in _RUN_SETTINGS},
        profile=prof.name,
        student=student_key,
        teachers=teachers,
        teacher_fingerprints=dict(fingerprints or {}),
        corpus_sha256=corpus_sha256,
        extra={**extra, **mlm.masking_stamp(d.data_workers)},  # other masks: another run
    )
    run.warmup_steps = min(run.warmup_steps, run.steps)
    if "seed" not in given:  # "<student>@d<k>": the k-th distillation, seed + k - 1
        run.seed += replica - 1
    _check_run(run)
    return run


def _registry_teachers(student_key: str, base: str, teachers) -> list[str]:
    """A registry student's teachers: its own, or the given registry keys with its tokenizer's teacher first."""
    teachers = list(teachers) if teachers else list(STUDENT_TEACHERS[base])
    bad = [t for t in teachers if t not in TEACHERS]
    if bad or len(set(teachers)) != len(teachers):
        raise ConfigError(f"teachers must be distinct keys among {list(TEACHERS)}, got {teachers}")
    if teachers[0] != STUDENT_TEACHERS[base][0]:
        raise ConfigError(
            f"student {student_key} uses the tokenizer of {STUDENT_TEACHERS[base][0]}; "
            f"it must be the first teacher (got {teachers})"
        )
    return teachers


def _own_teachers(teachers) -> tuple[list[str], dict[str, Any]]:
    """A student of one's own: teachers are keys, folders or hub IDs, named by their last path part
    (``-2``, ``-3`` ... where two share it); ``extra["teacher_sources"]`` maps the names back."""
    sources = [str(t) for t in teachers]
    if len(set(sources)) != len(sources):
        raise ConfigError(f"teachers must be distinct, got {sources}")
    names: list[str] = []
    for src in sources:
        name = src if src in TEACHERS else teacher_name(src)
        stem, k = name, 2
        while name in names:
            name, k = f"{stem}-{k}", k + 1
        names.append(name)
    return names, {"teacher_sources": dict(zip(names, sources))}


def _student_shape(o: DistillOverrides) -> dict[str, Any]:
    """The student's layers (teacher layer indices) or depth, when given (one of the two)."""
    if o.student_layers is not None and o.student_depth is not None:
        raise ConfigError("give the student's layers (student_layers) or its depth (student_depth), not both")
    if o.student_layers is not None:
        return {"student_layers": [int(x) for x in o.student_layers]}
    if o.student_depth is not None:
        if int(o.student_depth) < 1:
            raise ConfigError(f"student_depth must be >= 1, got {o.student_depth}")
        return {"student_depth": int(o.student_depth)}
    return {}


def _teacher_weights(given, profile_weights, n: int) -> list[float]:
    """The teachers' weights in the ensemble, normalised to sum to 1: the given ones, else the profile's (for
    its first teachers, in order), else equal."""
    if given is not None:
        weights = [float(w) for w in given]
    elif profile_weights is not None:
        weights = [float(w) for w in profile_weights][:n]
    else:
        weights = [1.0] * n
    if len(weights) != n or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"teacher_weights: need {n} non-negative numbers, not all zero; got {profile_weights}")
    return [w / sum(weights) for w in weights]


def _check_run(run: DistillRun) -> None:
    if run.batch_size < 1 or run.grad_accum < 1 or run.max_length < 3:
        raise ConfigError(
            "batch_size and grad_accum must be >= 1 and max_length >= 3 "
            f"(got {run.batch_size}, {run.grad_accum}, {run.max_length})"
        )
    if (
        run.soft_targets == "all"
        and len(run.teachers) > 1
        and S.get_strategy(run.strategy).name not in ALL_TOKENS_STRATEGIES
    ):
        # The other strategies pair the student's *masked* rows with the other tokenizer's rows.
        raise ConfigError(
            f"distill.soft_targets 'all' works with the strategies {list(ALL_TOKENS_STRATEGIES)} only "
            f"(got {run.strategy!r}); use soft_targets 'masked'"
        )
    if run.temperature <= 0 or run.steps < 1 or min(run.alpha_ce, run.alpha_mlm, run.alpha_cos) < 0:
        raise ConfigError(
            f"temperature must be > 0, steps >= 1 and loss weights >= 0 (got T={run.temperature}, steps={run.steps}, "
            f"alphas={run.alpha_ce}/{run.alpha_mlm}/{run.alpha_cos})"
        )
    if run.alpha_ce + run.alpha_mlm + run.alpha_cos == 0:
        raise ConfigError("alpha_ce, alpha_mlm and alpha_cos are all 0: nothing to train")


# --------------------------------------------------------------------------------------------------
# The trainable module and the step
# --------------------------------------------------------------------------------------------------


class DistillNet(nn.Module):
    """Everything trainable: the student (logits only at masked positions) and one projection per
    teacher from the student's width to the teacher's (identity when equal). Only the student is saved."""

    def __init__(self, student: nn.Module, teacher_hidden_sizes: dict[str, int]):
        super().__init__()
        self.student = mlm.SparseMLM(student)
        width = int(student.config.hidden_size)  # DistilBERT's `dim` answers to hidden_size too
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
        weights: DistillObjective,
        strategy_step: S.StrategyStep | None = None,
    ) -> dict[str, torch.Tensor]:
        labels = batch["labels"]
        positions = soft_positions(batch)
        # Logits at the soft-target positions (a superset of the masked ones): SparseMLM computes them
        # wherever its "labels" are not -100.
        out = self.student(batch["input_ids"], batch["attention_mask"], torch.where(positions, 0, mlm.IGNORE_INDEX))
        masked = (labels != mlm.IGNORE_INDEX)[positions]  # which of those rows are masked positions
        terms: dict[str, torch.Tensor] = {}
        mlm_targets = labels[labels != mlm.IGNORE_INDEX]
        own_ce = bool(weights.alpha_ce) and strategy_step is not None and strategy_step.ce is not None
        if own_ce:
            terms["ce"] = strategy_step.ce(out.logits)  # a strategy with a loss of its own (rokd.distill.strategies)
        if weights.alpha_ce and weights.alpha_mlm and not own_ce and bool(masked.all()):
            # Soft targets at the masked positions only: both vocabulary terms from one pass over the logits.
            rows = None if bool(soft_valid.all()) else soft_valid.nonzero().squeeze(1)
            terms["ce"], terms["mlm"] = L.soft_target_kl_and_mlm(
                out.logits, soft if rows is None else soft[rows], mlm_targets, weights.temperature, rows
            )
        else:
            if weights.alpha_ce and not own_ce:
                terms["ce"] = L.soft_target_kl(
                    out.logits[soft_valid], soft[soft_valid], weights.temperature, teacher_is_probs=True
                )
            if weights.alpha_mlm:
                terms["mlm"] = L.mlm_cross_entropy(out.logits[masked], mlm_targets)
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
        terms["loss"] = L.combine({k: v for k, v in terms.items() if hasattr(weights, f"alpha_{k}")}, weights)
        if strategy_step is not None:
            with torch.no_grad():
                terms.update(strategy_step.stats(out.logits.detach()))
        return terms


def _outside_inference(x: torch.Tensor) -> torch.Tensor:
    return x.clone() if x.is_inference() else x


def teacher_targets(
    adaptors: list[TeacherAdaptor],
    batch: dict[str, torch.Tensor],
    temperature: float,
    soft_names: list[str] | None = None,
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
        soft, valid = ensemble_soft_targets(
            [out[a.name].probs for a in chosen], [a.weight for a in chosen], [out[a.name].covered for a in chosen]
        )
    for t in out.values():
        t.hidden = _outside_inference(t.hidden)
        t.student_unit = _outside_inference(t.student_unit)
        t.stats = {k: _outside_inference(v) for k, v in t.stats.items()}
    return out, _outside_inference(soft), _outside_inference(valid)


def _contexts(adaptors: list[TeacherAdaptor], strategy: S.Strategy) -> dict[str, S.CrossContext]:
    out = {}
    for a in adaptors:
        if not a.needs_reference:
            continue
        ctx = a.context
        if ctx is None:  # adaptors built without build_setup: the vocabulary map is enough for these strategies
            if strategy.name in ("min-edit", "projection", "gold-hybrid"):
                raise ValueError(
                    f"strategy {strategy.name} needs the teacher's vocabulary data: build the adaptors with build_setup"
                )
            ctx = S.CrossContext(a.name, a.vocab_map, [], [], a.vocab_map.target.cpu() < 0)
        out[a.name] = ctx
    return out


def strategy_step(
    strategy: S.Strategy,
    adaptors: list[TeacherAdaptor],
    contexts: dict[str, S.CrossContext],
    batch: dict[str, torch.Tensor],
    targets: dict[str, TeacherTargets],
    soft: torch.Tensor,
    valid: torch.Tensor,
    temperature: float,
) -> tuple[S.StrategyStep, torch.Tensor, torch.Tensor]:
    """What ``strategy`` adds to one step: the soft-target term (or the averaged target it uses) and the diagnostics.

    ``soft`` / ``valid``: the averaged target of the teachers :func:`make_step_fn` put in it (all for
    span-map, the same-vocabulary ones otherwise). Returns ``(step, soft, valid)`` with the target
    completed for ``min-edit``.
    """
    plain = [a for a in adaptors if not a.needs_reference]
    cross_adaptors = [a for a in adaptors if a.needs_reference]
    with torch.no_grad():
        if strategy.cross == "none":
            empty = torch.zeros(0, dtype=torch.long, device=valid.device)
            cross = [
                S.CrossRows(a.name, a.weight, empty, torch.zeros(0, device=valid.device), empty.float())
                for a in cross_adaptors
            ]
        else:
            cross = [S.cross_rows(strategy, contexts[a.name], batch, targets[a.name], a.weight) for a in cross_adaptors]
        if strategy.cross == "target" and strategy.name != "span-map":
            # The same-vocabulary teachers' average (weight: their total) joined by each moved distribution.
            n = soft.shape[0]
            probs, covered, w = [soft], [valid], [sum(a.weight for a in plain)]
            for c in cross:
                full = torch.zeros_like(soft).index_copy_(0, c.student_rows, c.teacher_probs.to(soft.dtype))
                cov = torch.zeros(n, dtype=torch.bool, device=soft.device).index_fill_(0, c.student_rows, True)
                probs, covered, w = probs + [full], covered + [cov], w + [c.weight]
            soft, valid = ensemble_soft_targets(probs, w, covered)
    ce = None
    if strategy.cross == "loss":
        plain_w = sum(a.weight for a in plain)

        def ce(logits: torch.Tensor) -> torch.Tensor:
            return S.loss_strategy_ce(strategy, logits, soft, plain_w, cross, contexts, temperature)

    same_vocab = {a.name: targets[a.name].probs for a in plain}
    span = {a.name: (targets[a.name].probs, targets[a.name].covered) for a in cross_adaptors}

    def stats(logits: torch.Tensor) -> dict[str, torch.Tensor]:
        return S.step_diagnostics(logits, temperature, same_vocab, cross, contexts, span, strategy)

    return S.StrategyStep(ce=ce, stats=stats), soft, valid


def make_step_fn(adaptors: list[TeacherAdaptor], run: DistillRun):
    """``step_fn(net, batch) -> terms`` for :func:`rokd.trainer.train`.

    Terms: ``loss``, ``ce``, ``mlm``, ``cos`` (and ``cos.<teacher>``), plus ``stat_*`` numbers that are
    logged, not optimised: coverage and mapped mass of each cross-tokenizer teacher,
    ``stat_soft_rows`` (share of the soft-target positions that have a soft target) and the strategy's
    diagnostics (:func:`rokd.distill.strategies.step_diagnostics`). The strategy (``run.strategy``) decides
    how a teacher with another vocabulary enters the soft-target term (:mod:`rokd.distill.strategies`).
    """
    strategy = S.get_strategy(run.strategy)
    soft_names = [a.name for a in adaptors if strategy.name == "span-map" or not a.needs_reference]
    cos_weights = {a.name: a.weight for a in adaptors if strategy.in_cosine or not a.needs_reference}
    contexts = _contexts(adaptors, strategy)

    def step_fn(net: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        where = L.soft_target_positions(batch["labels"], batch["attention_mask"], run.soft_targets)
        batch = {**batch, SOFT_POSITIONS: where}
        targets, soft, valid = teacher_targets(adaptors, batch, run.temperature, soft_names)
        step, soft, valid = strategy_step(strategy, adaptors, contexts, batch, targets, soft, valid, run.temperature)
        terms = net(batch, targets, soft, valid, cos_weights, run, step)
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
    try:
        student = make_student(teacher_models[first], run.extra.get("student_layers"), run.extra.get("student_depth"))
    except ValueError as e:
        raise ConfigError(f"student of {first}: {e}") from e
    if run.max_length > max_input_tokens(student.config):
        limit = max_input_tokens(student.config)
        raise ConfigError(f"max_length {run.max_length} is longer than {first} accepts ({limit} tokens)")
    strategy = S.get_strategy(run.strategy)
    adaptors = [
        make_adaptor(
            k,
            teacher_models[k],
            teacher_tokenizers[k],
            student_tok,
            w,
            int(student.config.vocab_size),
            keep_own_probs=strategy.needs_own_probs,
        )
        for k, w in zip(run.teachers, run.teacher_weights)
    ]
    for a in adaptors:
        if a.needs_reference:
            a.context = S.build_context(strategy.name, a.name, student_tok, teacher_tokenizers[a.name], a.vocab_map)
    # cased-only: the other-vocabulary teacher has no cosine term, hence no projection to train.
    net = DistillNet(student, {a.name: a.hidden_size for a in adaptors if strategy.in_cosine or not a.needs_reference})

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
            limit = min(max_input_tokens(teacher_models[a.name].config), 2 * run.max_length)
            others[a.name] = tokenized(tok, limit, a.name)
            views.append(CrossTokenizerView(a.name, tok))
    dataset = PairedLines(corpus, others)
    token_weights = None
    if run.smoothed_masking:
        counts = mlm.token_counts(corpus, len(student_tok))
        token_weights = mlm.smoothed_token_weights(counts, student_tok.all_special_ids)
    per_batch = num_workers > 0 or run.extra.get("masking_seeds") == "per-batch"
    student_collator = mlm.WholeWordMaskCollator(
        student_tok, run.mlm_probability, seed=run.seed, token_weights=token_weights, per_batch_seed=per_batch
    )
    sampler = mlm.LengthGroupedBatchSampler(
        dataset.lengths, run.batch_size, seed=run.seed, num_shards=num_shards, shard_index=shard_index
    )
    batches = mlm.BatchStream(dataset, sampler, DistillCollator(student_collator, views), num_workers=num_workers)
    return DistillSetup(
        net=net,
        adaptors=adaptors,
        batches=batches,
        student_tokenizer=student_tok,
        teacher_tokenizers=dict(teacher_tokenizers),
        teacher_layers=list(student.config.rokd_teacher_layers),
    )


def trainer_config(
    run: DistillRun,
    output_dir: Path,
    device: str = "auto",
    checkpoint_every: int = 0,
    progress: bool = True,
    allow_lr_change: bool = False,
    precision: str = "auto",
):
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
        allow_lr_change=allow_lr_change,
    )


read_log = io.read_jsonl  # the JSONL training log as a list of records


def coverage_summary(log: list[dict], adaptors: list[TeacherAdaptor]) -> dict[str, dict[str, float]]:
    """Per cross-tokenizer teacher: mean coverage / mapped mass over the run, and the vocabulary map's reach."""
    out = {}
    for a in adaptors:
        if a.vocab_map is None:
            continue

        def mean(stat: str) -> float:
            values = [r[f"{stat}.{a.name}"] for r in log if f"{stat}.{a.name}" in r]
            return sum(values) / len(values) if values else float("nan")

        out[a.name] = {
            "masked_positions_covered": mean("stat_coverage"),
            "masked_positions_aligned": mean("stat_aligned"),
            "masked_positions_label_mapped": mean("stat_label_mapped"),
            "mapped_probability_mass": mean("stat_mapped_mass"),
            **a.vocab_map.describe(),
        }
        # The strategy's own diagnostics (rokd.distill.strategies.step_diagnostics), when logged.
        for stem in ("strategy_coverage", "strategy_mass", "unmatched_student_mass"):
            vals = [r[f"stat_{stem}.{a.name}"] for r in log if r.get(f"stat_{stem}.{a.name}") is not None]
            if vals:
                out[a.name][stem] = sum(vals) / len(vals)
    return out


def folder_size_mb(path: Path, pattern: str = "*.safetensors") -> float:
    return sum(f.stat().st_size for f in Path(path).glob(pattern)) / 2**20


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def student_dir(profile: str | Profile, student_key: str) -> Path:
    return artifacts_dir(resolve_profile(profile).name) / "students" / student_key


STUDENT_WHAT = "a distilled student"


def _same_run(saved: dict | None, run: DistillRun, ignore_lr: bool = False) -> bool:
    """Whether a saved ``distill_config.json`` describes ``run`` (its strategy under today's name:
    ``ensemble`` was renamed ``span-map``)."""
    now = to_dict(run)
    if not isinstance(saved, dict):
        return False
    if saved.get("strategy") in S.ALIASES:
        saved = {**saved, "strategy": S.ALIASES[saved["strategy"]]}
    if ignore_lr:
        saved, now = {**saved, "lr": None}, {**now, "lr": None}
    return saved == now


# Overrides the command line takes only for a student of one's own (a paper student keeps the profile's).
OWN_STUDENT_ONLY = ("batch_size", "grad_accum", "max_length", "student_layers", "student_depth")


def distill_command(
    profile: str | Profile,
    student_key: str,
    overrides: DistillOverrides | None,
    output_dir: str | Path | None,
    lr: str = "{lr}",
    resume_lr: bool = True,
) -> str:
    """The ``rokd distill`` command line that repeats a run (with ``lr``; resuming with it if ``resume_lr``)."""
    o = overrides or DistillOverrides()
    prof_arg = profile.name if isinstance(profile, Profile) else str(profile)
    parts = ["rokd", "distill", "--profile", prof_arg, "--student", student_key]
    parts += command_flags(o, ["teachers", *(k for k in OVERRIDABLE if k not in OWN_STUDENT_ONLY and k != "lr")])
    if output_dir is not None:
        parts += ["--output-dir", str(output_dir)]
    parts += ["--lr", lr] + (["--resume-lr"] if resume_lr else [])
    return " ".join(p if p == "{lr}" else shlex.quote(p) for p in parts)


def distill_student(
    profile: str | Profile,
    student_key: str,
    overrides: DistillOverrides | None = None,
    *,
    resume: bool = True,
    output_dir: str | Path | None = None,
    corpus: tuple[str | Path, str | Path] | None = None,
    progress: bool = True,
    log=print,
    wait: bool = False,
    resume_lr: bool = False,
) -> Path:
    """Distil ``student_key`` under ``profile`` (see the module doc); returns the student's folder.

    ``overrides`` fields left at None take the profile's ``distill:`` value; ``teachers`` defaults to
    the registry's :data:`~rokd.models.registry.STUDENT_TEACHERS`. A ``student_key`` that is not a paper
    key names a student of one's own: its ``overrides.teachers`` may be local folders or hub IDs (see
    :func:`rokd.distill.api.distill`). Idempotent: a finished student with the same resolved config is
    returned without work. ``output_dir`` defaults to ``artifacts/<profile>/students/<student_key>``
    (give another one for ablations); it must be new, empty or made by rokd. ``corpus`` =
    ``(train.txt, heldout.txt)`` defaults to the profile's. ``wait``: wait for another run on the same folder
    instead of stopping. ``resume_lr``: resume the kept checkpoints although ``overrides.lr`` changed the
    learning rate.
    """
    prof = resolve_profile(profile)
    if prof.distill.source == "hub":
        raise ConfigError(
            f"profile {prof.name!r} uses the authors' released students (distill.source: hub); nothing to distil. "
            "Load them with rokd.models.registry.load_model."
        )
    out = Path(output_dir).expanduser().resolve() if output_dir is not None else student_dir(prof, student_key)
    run = resolve_run(prof, student_key, overrides)  # validates before any work
    io.check_replaceable(out, f"{STUDENT_WHAT} ({student_key})", legacy=(CONFIG_FILE,))  # before hours of training
    with io.lock(
        out.parent / f".{out.name}.lock", f"the student folder {out}", wait=wait, hint=", or rerun with --wait", log=log
    ):
        try:
            return _distill_locked(
                prof,
                student_key,
                run,
                out,
                resume=resume,
                progress=progress,
                log=log,
                resume_lr=resume_lr,
                corpus=corpus,
            )
        except Exception as e:
            from rokd.trainer import NonFiniteLossError

            if not isinstance(e, NonFiniteLossError):
                raise
            cmd_profile = profile if not isinstance(profile, Profile) else prof.name
            raise e.advise(
                f"`{distill_command(cmd_profile, student_key, overrides, output_dir)}`",
                f"`{distill_command(cmd_profile, student_key, overrides, output_dir, resume_lr=False)}` --no-resume",
            ) from None


def _distill_locked(
    prof: Profile,
    student_key: str,
    run: DistillRun,
    out: Path,
    *,
    resume: bool,
    progress: bool,
    log,
    resume_lr: bool,
    corpus: tuple[str | Path, str | Path] | None,
) -> Path:
    """Distil into ``out`` (its lock held). ``run``: the resolved config, completed here with the fingerprints of
    the corpus and of the teachers (which may have to be built first)."""
    from rokd.models.teachers import build_teachers, corpus_files
    from rokd.precision import runtime_record, set_threads
    from rokd.trainer import make_accelerator, resolve_mixed_precision, train

    sources = teacher_sources(run)
    teacher_keys = list(sources)
    train_txt, heldout_txt = (Path(corpus[0]), Path(corpus[1])) if corpus is not None else corpus_files(prof)
    keys_to_build = [k for k in TEACHERS if k in sources.values()]
    if keys_to_build:  # the profile's miniature teachers (an empty list would mean all of them)
        build_teachers(prof, keys_to_build, log=log, wait=True)
    fingerprints = {k: _teacher_fingerprint(prof, sources[k]) for k in teacher_keys}
    run = dataclasses.replace(run, corpus_sha256=io.file_sha256(train_txt), teacher_fingerprints=fingerprints)
    work = _work_dir(out, run, student_key, resume=resume, resume_lr=resume_lr, log=log)
    if work is None:
        return out
    if not progress:  # also quiet the weight-loading / saving bars of transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    t0 = time.perf_counter()
    models = {k: load_model(sources[k], "mlm", prof) for k in teacher_keys}
    toks = {k: load_tokenizer(sources[k], prof) for k in teacher_keys}
    threads = set_threads(prof.distill.threads)
    d = prof.distill
    tcfg = trainer_config(
        run, work, prof.device, d.checkpoint_every, progress, allow_lr_change=resume_lr, precision=d.precision
    )
    acc = make_accelerator(tcfg)
    precision = resolve_mixed_precision(tcfg.mixed_precision, tcfg.cpu)
    setup = build_setup(
        run,
        models,
        toks,
        train_txt,
        cache_dir=work,
        num_shards=acc.num_processes,
        shard_index=acc.process_index,
        num_workers=d.data_workers,
    )
    log(
        f"student {student_key}: distilling from {', '.join(teacher_keys)} ({run.strategy}, {run.steps} steps) "
        f"into {out}"
    )
    _log_vocabulary_maps(setup, teacher_keys, student_key, log)
    curve = _heldout_curve(setup, run, heldout_txt, d.curve_lines, precision) if d.curve_every > 0 else None
    result = train(
        setup.net,
        make_step_fn(setup.adaptors, run),
        setup.batches,
        tcfg,
        frozen_modules=[a.model for a in setup.adaptors],
        resume=resume,
        accelerator=acc,
        evaluate=curve,
        eval_every=d.curve_every,
    )
    if not acc.is_main_process:
        return out
    student = result.module.student.model.eval()
    lines, heldout = _heldout_accuracies(student, setup, models, toks, student_key, heldout_txt, run, precision)
    runtime = {**runtime_record(precision), "torch_threads": threads}  # what training and the measures ran in
    stage = io.make_stage(out, STUDENT_WHAT)
    try:
        trained = _Trained(student, models, teacher_keys, result, heldout, len(lines), t0, runtime)
        _write_student(stage, prof, student_key, run, setup, work, trained)
        io.replace_dir(stage, out, f"{STUDENT_WHAT} ({student_key})", legacy=(CONFIG_FILE,))
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    io.remove_dir(work, f"the checkpoints of {STUDENT_WHAT}", legacy=(CONFIG_FILE,))
    _log_saved(out, student, heldout[student_key], student_key, log)
    return out


def _work_dir(out: Path, run: DistillRun, student_key: str, *, resume: bool, resume_lr: bool, log) -> Path | None:
    """The checkpoint folder of a distillation (kept when it holds this run's checkpoints, else started afresh);
    None when ``out`` already holds this run's student with intact weights."""
    if (out / SUMMARY_FILE).is_file() and _same_run(io.read_json(out / CONFIG_FILE), run):
        problem = io.weights_problem(out)
        if problem is None:
            log(f"student {student_key}: up to date in {out}")
            return None
        log(f"student {student_key}: rebuilding, its weights are damaged ({problem})")
    work = out.parent / (out.name + ".work")
    if work.exists():
        saved_cfg = io.read_json(work / CONFIG_FILE)
        if not resume or not _same_run(saved_cfg, run, ignore_lr=resume_lr):
            # checkpoints of another config (or resume off): start afresh
            io.remove_dir(work, f"the checkpoints of {STUDENT_WHAT}", legacy=(CONFIG_FILE,))
    io.mark_output(work, f"the checkpoints of {STUDENT_WHAT}")
    save_config(run, work / CONFIG_FILE)
    return work


def _log_vocabulary_maps(setup: DistillSetup, teacher_keys: list[str], student_key: str, log) -> None:
    for a in setup.adaptors:
        if a.vocab_map is not None:
            d = a.vocab_map.describe()
            log(
                f"student {student_key}: vocabulary map {teacher_keys[0]} ({d['student_family']}) <- "
                f"{a.name} ({d['teacher_family']}): {d['student_tokens_mapped']:.1%} of the student's tokens and "
                f"{d['teacher_tokens_mapped']:.1%} of the teacher's have a counterpart "
                f"(case folded: {d['case_folded']})"
            )


def _heldout_curve(setup: DistillSetup, run: DistillRun, heldout_txt: Path, n_lines: int, precision):
    """The trainer's evaluate hook of the learning curve: has the student's held-out MLM accuracy flattened?"""
    from rokd.models.quality import mlm_accuracy, read_lines

    lines = read_lines(heldout_txt, limit=n_lines, seed=run.seed)

    def evaluate(net):
        acc = mlm_accuracy(
            net.student.model,
            setup.student_tokenizer,
            lines,
            max_length=run.max_length,
            seed=run.seed,
            precision=precision,
        )
        return {"heldout_mlm_accuracy": acc["mlm_accuracy"]}

    return evaluate


def _heldout_accuracies(
    student, setup: DistillSetup, models, toks, student_key: str, heldout_txt: Path, run: DistillRun, precision
) -> tuple[list[str], dict[str, float]]:
    """Held-out MLM accuracy of the student and of each teacher: same lines, same masking seed (identical masks
    for a teacher that shares the student's tokenizer; its own tokenization otherwise)."""
    from rokd.models.quality import mlm_accuracy, read_lines

    lines = read_lines(heldout_txt, limit=run.eval_lines, seed=run.seed)
    measure = dict(max_length=run.max_length, seed=run.seed, precision=precision)
    heldout = {student_key: mlm_accuracy(student, setup.student_tokenizer, lines, **measure)["mlm_accuracy"]}
    for k, model in models.items():
        heldout[k] = mlm_accuracy(model.to(student.device), toks[k], lines, **measure)["mlm_accuracy"]
    return lines, heldout


def _log_saved(out: Path, student, heldout_accuracy: float, student_key: str, log) -> None:
    for name, cov in io.read_json(out / SUMMARY_FILE)["coverage"].items():
        log(
            f"student {student_key}: {name} covered {cov['masked_positions_covered']:.1%} of the masked positions "
            f"(its token mapped onto the student's at {cov['masked_positions_label_mapped']:.1%}), "
            f"mapped probability mass {cov['mapped_probability_mass']:.1%}"
        )
    log(
        f"student {student_key}: saved to {out} ({io.count_params(student) / 1e6:.2f} M params, "
        f"held-out MLM accuracy {heldout_accuracy:.3f})"
    )


@dataclass
class _Trained:
    """What a finished distillation hands to :func:`_write_student`."""

    student: nn.Module
    teachers: dict[str, nn.Module]
    teacher_keys: list[str]
    result: Any  # rokd.trainer.TrainResult
    heldout: dict[str, float]
    heldout_lines: int
    t0: float  # perf_counter() when the run started (the summary's wall time)
    runtime: dict


def _write_student(
    stage: Path, prof: Profile, student_key: str, run: DistillRun, setup: DistillSetup, work: Path, trained: _Trained
) -> None:
    student, result = trained.student, trained.result
    student.config.rokd_teacher_layers = setup.teacher_layers
    io.write_model(stage, student.to("cpu"), setup.student_tokenizer)
    shutil.copy(work / LOG_FILE, stage / LOG_FILE)
    save_config(run, stage / CONFIG_FILE)
    sources = teacher_sources(run)
    teacher_sizes = {}
    for k in trained.teacher_keys:
        ref = resolve(sources[k], prof)
        teacher_sizes[k] = {
            "params": io.count_params(trained.teachers[k]),
            "disk_mb": folder_size_mb(Path(ref.name_or_path)) if ref.source == "local" else None,
        }
    s_params = io.count_params(student)
    summary = {
        "student": student_key,
        "profile": prof.name,
        "teachers": trained.teacher_keys,
        "teacher_sources": sources,
        "teacher_weights": run.teacher_weights,
        "strategy": run.strategy,
        "teacher_layers_kept": setup.teacher_layers,
        "params": s_params,
        "disk_mb": folder_size_mb(stage),
        "teacher_sizes": teacher_sizes,
        "params_ratio_to_first_teacher": s_params / io.count_params(trained.teachers[trained.teacher_keys[0]]),
        "wall_time_s": round(time.perf_counter() - trained.t0, 1),
        "train_time_s": round(result.wall_time_s, 1),
        "steps": result.final_step,
        "resumed_from": result.resumed_from,
        "tokens_per_s": result.tokens_per_s,
        "final_losses": {k: v for k, v in result.losses.items() if not k.startswith("stat_")},
        "coverage": coverage_summary(read_log(work / LOG_FILE), setup.adaptors),
        "heldout_mlm_accuracy": trained.heldout,
        "heldout_lines": trained.heldout_lines,
        "runtime": trained.runtime,
    }
    io.atomic_write_text(stage / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def load_summary(profile: str | Profile, student_key: str) -> dict:
    """The ``summary.json`` of a distilled student."""
    path = student_dir(profile, student_key) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {SUMMARY_FILE} for {student_key}: distil it with `rokd distill --student {student_key}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))
