"""The experiment: the paper's seven tasks and its models, each defined once (issue 16's "one experiment spec").

Every step reads task and model metadata from here -- the data loaders, fine-tuning, loyalty, the report
-- instead of keeping its own copy. The paper's *numbers* are in :mod:`rokd.paper`, keyed by the keys
below; a model without paper numbers (a user's own) is shown without them.

- :class:`TaskSpec`: key, column title, kind (``tagging`` | ``classification`` | ``regression``), data set,
  headline metric (also the metric fine-tuning selects checkpoints by), label scheme. :data:`TASKS` is in
  the order of the paper's table columns.
- :class:`ModelSpec`: key, role (``teacher`` | ``student`` | ``control`` | ``baseline``), display name,
  casing, teachers (students), the hub ID (teachers), the profile shape a miniature teacher is built
  with, the model a control is read against. :data:`MODELS` is in the order of the paper's table rows.

This module imports nothing from rokd: every layer of the pipeline may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

TASK_KINDS = ("tagging", "classification", "regression")
MODEL_ROLES = ("teacher", "student", "control", "baseline")


@dataclass(frozen=True)
class TaskSpec:
    key: str
    title: str  # column title in tables ("UPOS")
    kind: str  # one of TASK_KINDS
    dataset: str  # the rokd.data source it is read from
    headline_metric: str  # the metric tables show and fine-tuning selects checkpoints by
    label_scheme: str  # what a prediction is (written into every predictions file)

    @property
    def tagging(self) -> bool:
        return self.kind == "tagging"

    @property
    def regression(self) -> bool:
        return self.kind == "regression"


# The paper does not publish its exact metrics: its UPOS / XPOS numbers (98.00 / 96.46) are accuracy-level,
# which macro-F1 over XPOS's hundreds of mostly rare MSD tags cannot reach, so UPOS / XPOS use token accuracy
# (macro-F1 is stored beside it).
TASKS: dict[str, TaskSpec] = {
    t.key: t
    for t in (
        TaskSpec("upos", "UPOS", "tagging", "rrt", "accuracy", "class ids"),
        TaskSpec("xpos", "XPOS", "tagging", "rrt", "accuracy", "class ids"),
        TaskSpec("ner", "NER", "tagging", "ronec", "macro_f1", "BIO2"),
        TaskSpec("sapn", "SAPN", "classification", "laroseda", "accuracy", "class ids"),
        TaskSpec("sar", "SAR", "classification", "laroseda", "macro_f1", "class ids"),
        TaskSpec("di", "DI", "classification", "moroco", "macro_f1", "class ids"),
        TaskSpec("sts", "STS", "regression", "rosts", "pearson", "score 0-5"),
    )
}


def tasks_of_kind(*kinds: str) -> tuple[str, ...]:
    """The keys of the tasks of these kinds, in table order."""
    unknown = set(kinds) - set(TASK_KINDS)
    if unknown:
        raise ValueError(f"unknown task kind(s) {sorted(unknown)}; kinds are {list(TASK_KINDS)}")
    return tuple(k for k, t in TASKS.items() if t.kind in kinds)


@dataclass(frozen=True)
class ModelSpec:
    key: str
    role: str  # one of MODEL_ROLES
    display_name: str
    cased: bool | None = None  # None: not a model with a tokenizer (a baseline)
    teachers: tuple[str, ...] = ()  # a student's teachers; the first gives it its tokenizer and initial weights
    hub_id: str | None = None  # a teacher's hub model (the `paper` profile)
    shape: str | None = None  # the profile's `teachers.<shape>` a miniature teacher is built with
    control_of: str | None = None  # the model a control is read against (same architecture and tokenizer)


MODELS: dict[str, ModelSpec] = {
    m.key: m
    for m in (
        ModelSpec(
            "bert-base-ro",
            "teacher",
            "BERT-base-ro",
            cased=True,
            hub_id="dumitrescustefan/bert-base-romanian-cased-v1",
            shape="cased",
        ),
        ModelSpec(
            "robert-base", "teacher", "RoBERT-base", cased=False, hub_id="readerbench/RoBERT-base", shape="uncased"
        ),
        ModelSpec("distil-bert-base-ro", "student", "Distil-BERT-base-ro", cased=True, teachers=("bert-base-ro",)),
        ModelSpec("distil-robert-base", "student", "Distil-RoBERT-base", cased=False, teachers=("robert-base",)),
        ModelSpec(
            "distilmulti-bert-base-ro",
            "student",
            "DistilMulti-BERT-base-ro",
            cased=True,
            teachers=("bert-base-ro", "robert-base"),
        ),
        # The cased teacher's architecture and tokenizer with random weights: teacher minus control is what
        # pretraining gave.
        ModelSpec("control-random-init", "control", "Control: random init", cased=True, control_of="bert-base-ro"),
        # The cased student initialised from its teacher's layers and not distilled: student minus control is
        # what distillation added beyond the initialisation.
        ModelSpec("control-init-only", "control", "Control: init only", cased=True, control_of="distil-bert-base-ro"),
        ModelSpec("baseline-majority", "baseline", "Baseline: majority"),
        ModelSpec("baseline-lexical", "baseline", "Baseline: lexical"),
    )
}


def models_of_role(role: str) -> tuple[str, ...]:
    """The keys of the models of one role, in table order."""
    if role not in MODEL_ROLES:
        raise ValueError(f"unknown model role {role!r}; roles are {list(MODEL_ROLES)}")
    return tuple(k for k, m in MODELS.items() if m.role == role)


# The comparisons the paper's claims are about, named by what the models are, not by their keys.
MULTI_STUDENT = next(k for k, m in MODELS.items() if m.role == "student" and len(m.teachers) > 1)
# The one-teacher ablation of the multi-teacher student: the student of its first teacher alone.
SINGLE_STUDENT = next(
    k for k, m in MODELS.items() if m.role == "student" and m.teachers == MODELS[MULTI_STUDENT].teachers[:1]
)
RANDOM_INIT_CONTROL = next(
    k for k, m in MODELS.items() if m.role == "control" and MODELS[m.control_of].role == "teacher"
)
INIT_ONLY_CONTROL = next(k for k, m in MODELS.items() if m.role == "control" and MODELS[m.control_of].role == "student")
MAJORITY_BASELINE, LEXICAL_BASELINE = models_of_role("baseline")  # the most frequent label; bag-of-words
