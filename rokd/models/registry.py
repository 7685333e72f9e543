"""Model registry: the five models of the paper under stable keys, resolved per profile.

Keys (used in every results file): ``bert-base-ro``, ``robert-base`` (teachers),
``distil-bert-base-ro``, ``distil-robert-base``, ``distilmulti-bert-base-ro`` (students), and two
controls fine-tuned like them (:data:`CONTROLS`):

- ``control-random-init``: the cased teacher's architecture and tokenizer with random weights
  (:mod:`rokd.models.controls`). Teacher minus control is what pretraining gave.
- ``control-init-only``: Distil-BERT-base-ro initialised from its teacher's layers and not distilled
  (:func:`rokd.distill.student.build_init_only_control`). Student minus control is what distillation
  added beyond the initialisation.

The baselines ``baseline-majority`` / ``baseline-lexical`` are not models: :mod:`rokd.tasks.baselines`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rokd.errors import RokdError
from rokd.spec import MODELS, RANDOM_INIT_CONTROL, models_of_role


class _WithReplicas(dict):
    """A per-model table in which ``<student>@d<k>`` (a distillation replica) reads its student's entry."""

    def __missing__(self, key):
        base, replica = split_replica(key) if isinstance(key, str) else (key, 1)
        if replica == 1:
            raise KeyError(key)
        value = self[base]
        return f"{value} (distillation {replica})" if self is DISPLAY_NAMES else value


TEACHERS = models_of_role("teacher")
STUDENTS = models_of_role("student")
MODEL_KEYS = TEACHERS + STUDENTS
CONTROLS = models_of_role("control")
# The model each control is read against (the same architecture and tokenizer).
CONTROL_OF = {k: MODELS[k].control_of for k in CONTROLS}

# Which teacher(s) each student learns from; the first teacher's tokenizer is the student's.
STUDENT_TEACHERS: dict[str, tuple[str, ...]] = _WithReplicas({k: MODELS[k].teachers for k in STUDENTS})

# Names as printed in the paper's tables.
DISPLAY_NAMES = _WithReplicas({k: m.display_name for k, m in MODELS.items()})

# Reference rows of scores.csv beside the five models: the trivial baselines (scored, not fine-tuned).
BASELINES = models_of_role("baseline")
# control-random-init has this teacher's architecture and tokenizer; control-init-only is the cased student
# initialised from its layers (as Distil-BERT-base-ro and DistilMulti are) and not distilled.
CONTROL_TEACHER = CONTROL_OF[RANDOM_INIT_CONTROL]


# A student distilled again with another seed: ``<student>@d<k>`` (k >= 2; replica 1 is the plain key),
# distillation seed ``distill.seed + k - 1``. Fine-tuned and scored like any model (``distill.replicas``).
REPLICA_MARK = "@d"


def split_replica(key: str) -> tuple[str, int]:
    """``("distil-bert-base-ro", 2)`` for ``"distil-bert-base-ro@d2"``; ``(key, 1)`` for a plain key."""
    base, mark, k = key.partition(REPLICA_MARK)
    if mark and base in STUDENTS and k.isdigit() and int(k) >= 2:
        return base, int(k)
    return key, 1


def pooled_runs(keys, seeds) -> tuple[list[str], list[int]]:
    """Model keys and fine-tuning seeds with each ``<student>@d<k>`` read as a run of ``<student>``: the keys
    become the student's, the seeds run numbers ``1000 * (k - 1) + seed`` (:func:`rokd.stats.run_number`), so
    that a student's runs carry the variance of distillation (clustered by distillation, :mod:`rokd.stats`)."""
    from rokd.stats import run_number

    split = [split_replica(k) for k in keys]
    return [base for base, _ in split], [run_number(k, int(s)) for (_, k), s in zip(split, seeds)]


def replica_key(student: str, replica: int) -> str:
    """The model key of ``student``'s ``replica``-th distillation (1: the plain key)."""
    if student not in STUDENTS or replica < 1:
        raise ValueError(f"replicas are students' distillations numbered from 1; got {student!r}, {replica}")
    return student if replica == 1 else f"{student}{REPLICA_MARK}{replica}"


def student_models(profile: Any) -> list[str]:
    """Every student of ``profile`` with its distillation replicas (``distill.replicas``), in pipeline order."""
    from rokd.profiles import resolve_profile

    prof = resolve_profile(profile)
    bad = {k: n for k, n in prof.distill.replicas.items() if k not in STUDENTS or not isinstance(n, int) or n < 1}
    if bad:
        from rokd.config import ConfigError

        raise ConfigError(
            f"distill.replicas: {bad} -- keys must be students {list(STUDENTS)}, values whole numbers >= 1"
        )
    return [replica_key(s, k) for s in STUDENTS for k in range(1, prof.distill.replicas.get(s, 1) + 1)]


def display_name(key: str) -> str:
    """The paper's name of a model key (with the distillation replica, if any); the key itself when unknown."""
    return DISPLAY_NAMES[key] if key in DISPLAY_NAMES or split_replica(key)[1] > 1 else key


# --- resolution -------------------------------------------------------------------------------
# The hub IDs of the real teachers; students come from ``profile.distill.hub_students``.
HUB_TEACHERS = {k: MODELS[k].hub_id for k in TEACHERS}
# Casing of each model key: the multi student keeps the cased teacher's tokenizer.
CASED = _WithReplicas({k: m.cased for k, m in MODELS.items() if m.cased is not None})
# Which TeachersConfig shape (``cased`` / ``uncased``) builds each miniature teacher.
TEACHER_SHAPE = {k: MODELS[k].shape for k in TEACHERS}


class ModelUnavailableError(RokdError, RuntimeError):
    """A model could not be loaded (hub unreachable offline, or a local folder is missing)."""


@dataclass(frozen=True)
class ModelRef:
    """Where a model lives and what it is.

    ``source`` is ``"hub"`` (``name_or_path`` is a hub ID) or ``"local"`` (a folder in Hugging Face
    format). ``key`` is one of :data:`MODEL_KEYS` or :data:`CONTROLS`, or None for an arbitrary path / hub ID.
    """

    key: str | None
    role: str  # "teacher" | "student" | "control" | "model" (an arbitrary path or ID)
    source: str  # "hub" | "local"
    name_or_path: str
    cased: bool | None = None
    teachers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def display_name(self) -> str:
        return display_name(self.key) if self.key else self.name_or_path

    @property
    def path(self) -> Path:
        if self.source != "local":
            raise ModelUnavailableError(f"{self.name_or_path!r} is a hub ID, not a local folder")
        return Path(self.name_or_path)


def resolve(key_or_path: str | os.PathLike, profile: Any = "smoke") -> ModelRef:
    """Resolve a model key, a local folder or a hub ID to a :class:`ModelRef`.

    - A model key under a profile whose section says ``source: build`` (``smoke``, ``mini``) resolves to
      ``artifacts/<profile>/teachers/<key>`` or ``artifacts/<profile>/students/<key>``.
    - Under ``source: hub`` (``paper``) teachers resolve to :data:`HUB_TEACHERS` and students to
      ``profile.distill.hub_students``.
    - A control key resolves to ``artifacts/<profile>/controls/<key>`` under every profile (built locally,
      from the hub teacher under ``paper``; :func:`rokd.tasks.finetune.resolve_model` builds it when missing).
    - An existing local folder is accepted as-is; any other ``owner/name`` string is taken as a hub ID.
    Resolution never touches the network; :func:`load_model` / :func:`load_tokenizer` do.
    """
    from rokd.paths import artifacts_dir
    from rokd.profiles import resolve_profile

    prof = resolve_profile(profile)
    name = os.fspath(key_or_path)
    if name in TEACHERS:
        if prof.teachers.source == "hub":
            hub_id = getattr(prof.teachers, f"hub_{TEACHER_SHAPE[name]}")  # teachers.hub_cased / hub_uncased
            return ModelRef(name, "teacher", "hub", hub_id, CASED[name])
        path = artifacts_dir(prof.name) / "teachers" / name
        return ModelRef(name, "teacher", "local", str(path), CASED[name])
    base, replica = split_replica(name)
    if replica > 1:
        if prof.distill.source == "hub":
            raise ModelUnavailableError(f"{name!r}: distillation replicas are built locally (distill.source: build)")
        path = artifacts_dir(prof.name) / "students" / name
        return ModelRef(name, "student", "local", str(path), CASED[base], STUDENT_TEACHERS[base])
    if name in STUDENTS:
        if prof.distill.source == "hub":
            hub_id = prof.distill.hub_students.get(name)
            if not hub_id:
                raise ModelUnavailableError(
                    f"profile {prof.name!r} has distill.source 'hub' but no distill.hub_students entry for {name!r}"
                )
            return ModelRef(name, "student", "hub", hub_id, CASED[name], STUDENT_TEACHERS[name])
        path = artifacts_dir(prof.name) / "students" / name
        return ModelRef(name, "student", "local", str(path), CASED[name], STUDENT_TEACHERS[name])
    if name in CONTROLS:
        path = artifacts_dir(prof.name) / "controls" / name
        return ModelRef(name, "control", "local", str(path), CASED[name], STUDENT_TEACHERS.get(CONTROL_OF[name], ()))
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelRef(None, "model", "local", str(path.resolve()), None)
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
        raise ModelUnavailableError(
            f"{name!r} is neither a model key ({', '.join(MODEL_KEYS + CONTROLS)}), an existing local folder, "
            "nor a hub ID of the form 'owner/name'"
        )
    return ModelRef(None, "model", "hub", name, None)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _load(ref: ModelRef, loader, what: str):
    """Call ``loader(name_or_path)``, turning the failures users hit into one clear message."""
    if ref.source == "local":
        path = Path(ref.name_or_path)
        if not (path / "config.json").exists() and what == "model":
            hint = (
                "build it with `rokd teachers build --profile <profile>`" if ref.role == "teacher" else "build it first"
            )
            raise ModelUnavailableError(f"no {what} in Hugging Face format at {path} (config.json missing); {hint}")
        try:
            return loader(str(path))
        except Exception as e:  # a truncated safetensors, a cut config.json, a damaged tokenizer file
            from safetensors import SafetensorError

            from rokd.errors import CorruptFileError
            from rokd.io import weights_problem

            if not isinstance(e, (OSError, ValueError, RuntimeError, SafetensorError)):
                raise
            rebuild = {
                "teacher": "`rokd teachers build --profile <profile> --force`",
                "student": "`rokd distill --profile <profile> --student <key>`",
            }.get(ref.role, "")
            problem = weights_problem(path) if what == "model" else None
            raise CorruptFileError(
                path,
                f"{ref.role} {what} folder",
                "delete it and rebuild it" + (f" with {rebuild}" if rebuild else ""),
                problem or e,
            ) from None
    try:
        return loader(ref.name_or_path)
    except (OSError, ValueError) as e:  # transformers raises OSError for unreachable hub files
        reason = "HF_HUB_OFFLINE is set" if _hub_offline() else "no network or the ID does not exist"
        raise ModelUnavailableError(
            f"cannot load the {what} of hub ID {ref.name_or_path!r}: the Hugging Face hub is unreachable "
            f"({reason}) and the ID is not in the local cache. The offline profiles are 'smoke' and 'mini' "
            f"(they build miniature models locally); 'paper' needs internet. Cause: {type(e).__name__}: {e}"
        ) from e


def load_tokenizer(ref: ModelRef | str, profile: Any = "smoke", **kwargs):
    """The model's tokenizer through ``AutoTokenizer`` (never remote code)."""
    from transformers import AutoTokenizer

    ref = ref if isinstance(ref, ModelRef) else resolve(ref, profile)
    return _load(ref, lambda p: AutoTokenizer.from_pretrained(p, trust_remote_code=False, **kwargs), "tokenizer")


_HEADS = {"mlm": "AutoModelForMaskedLM", "base": "AutoModel"}


def load_model(ref: ModelRef | str, head: Any = "mlm", profile: Any = "smoke", **kwargs):
    """Load a model through ``AutoModel*``: ``head`` is ``"mlm"``, ``"base"`` or an ``AutoModelFor...`` class.

    Extra keyword arguments go to ``from_pretrained`` (e.g. ``num_labels``, ``attn_implementation``).
    """
    import transformers

    ref = ref if isinstance(ref, ModelRef) else resolve(ref, profile)
    if isinstance(head, str):
        if head not in _HEADS:
            raise ValueError(f"head must be one of {sorted(_HEADS)} or an AutoModelFor... class, got {head!r}")
        auto_cls = getattr(transformers, _HEADS[head])
    else:
        auto_cls = head
    kwargs.pop("trust_remote_code", None)
    return _load(ref, lambda p: auto_cls.from_pretrained(p, trust_remote_code=False, **kwargs), "model")
