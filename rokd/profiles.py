"""Profiles: one definition of sizes and budgets that every notebook and command reads.

- ``smoke``: smallest models and data slices that still run every step (CI, ``make book``).
- ``mini``: the published miniature reproduction (CPU, hours).
- ``paper``: the real hub teachers and students on full data (GPU).
- ``colab``: the real hub teachers, students distilled from them, capped evaluation: a free Colab T4, ~2 hours.

Each profile is a YAML file in ``rokd/profiles/``; its sections map onto the dataclasses below.
Steps own their section: ``data`` (rokd.data), ``teachers`` (rokd.models), ``distill``
(rokd.distill), ``evaluate`` (rokd.tasks).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rokd.config import ConfigError, about, choices, from_dict, load_config, to_dict
from rokd.precision import PRECISIONS
from rokd.spec import TASKS

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PROFILES = ("smoke", "mini", "paper", "colab")
DEVICES = ("auto", "cpu", "cuda")
SOURCES = ("build", "hub")  # build the models locally, or take them from the Hugging Face hub
# Multi-teacher strategies of rokd.distill (see DistillConfig.strategy).
# The names of rokd.distill.strategies.STRATEGIES (a test keeps them equal), plus the old alias "ensemble".
DISTILL_STRATEGIES = (
    "span-map",
    "uld",
    "gold-hybrid",
    "projection",
    "min-edit",
    "hidden-only",
    "cased-only",
    "ensemble",
)
_PRECISION = choices(*PRECISIONS)


@dataclass
class DataConfig:
    # Raw-text corpus for teacher pretraining and distillation (rokd.data.corpus).
    corpus_max_chars: int | None = None  # None = the whole corpus
    corpus_heldout_lines: int = 2000  # held-out slice for MLM evaluation
    include_task_train_text: bool = True  # add task *train* splits to the corpus (never val/test)
    corpus_breve_i: bool = True  # map the old-orthography ĭ to i in the corpus (ELTeC novels)
    seed: int = 13  # corpus held-out choice (task splits use rokd.data.splits.SPLIT_SEED)


@dataclass
class BertShape:
    """Architecture of a miniature BERT teacher and the tokenizer it is trained with."""

    vocab_size: int = 8000
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 512
    lowercase: bool = False


# --------------------------------------------------------------------------------------------------
# One dataclass per concern. The training sections share their budget (TrainingBudget, StepBudget) and
# distillation its objective (DistillObjective); a section restates a field only to change its default.
# The YAML stays flat: `distill: {steps: 500, temperature: 3}` fills the inherited fields.
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainingBudget:
    """What any training run of rokd spends, and how: pretraining, distillation and fine-tuning alike.

    :meth:`trainer_settings` maps it onto :class:`rokd.trainer.TrainerConfig` (the one place that does).
    """

    batch_size: int = field(default=32, metadata=about("sequences per batch"))
    lr: float = field(default=5e-4, metadata=about("peak learning rate"))
    weight_decay: float = 0.01  # AdamW decay (none on biases and LayerNorm weights)
    max_grad_norm: float = 1.0  # gradient clipping (0 = none)
    checkpoint_every: int = 0  # optimizer steps between resumable checkpoints (0 = at the end only)
    precision: str = field(default="auto", metadata=_PRECISION)  # rokd.precision: auto | fp32 | bf16 | fp16
    threads: int = 0  # torch CPU threads (0 = ROKD_THREADS, else torch's default)

    def trainer_settings(self) -> dict[str, Any]:
        """The :class:`rokd.trainer.TrainerConfig` fields this budget decides."""
        return {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "max_grad_norm": self.max_grad_norm,
            "checkpoint_every": self.checkpoint_every,
            "mixed_precision": self.precision,
        }


@dataclass
class StepBudget(TrainingBudget):
    """A budget counted in optimizer steps (pretraining, distillation); fine-tuning counts epochs instead."""

    steps: int = field(default=1000, metadata=about("optimizer steps"))
    grad_accum: int = field(default=1, metadata=about("batches per optimizer step"))
    warmup_steps: int = 100  # linear warm-up, then linear decay
    seed: int = field(default=13, metadata=about("seed of masking, batch order and initialisation"))
    # DataLoader worker processes that collate and mask batches (a GPU run: 2-4). > 0 switches masking to
    # per-batch seeds (rokd.mlm.BatchStream): other masks than the in-process stream's, same distribution.
    data_workers: int = 0

    def trainer_settings(self) -> dict[str, Any]:
        return {
            **super().trainer_settings(),
            "steps": self.steps,
            "grad_accum": self.grad_accum,
            "warmup_steps": min(self.warmup_steps, self.steps),
            "seed": self.seed,
        }


@dataclass
class DistillObjective:
    """What a student learns from: the loss terms, their weights, and how the teachers are combined.

    ``alpha_ce * KL(teachers_T || student_T) * T^2 + alpha_mlm * CE + alpha_cos * (1 - cos)`` (rokd.distill).
    """

    # How a teacher with another vocabulary enters the objective (rokd.distill.strategies).
    strategy: str = field(
        default="span-map",
        metadata={
            **choices(*DISTILL_STRATEGIES),
            "help": "how a teacher with another vocabulary enters the objective (rokd.distill.strategies; "
            "'ensemble' = 'span-map')",
        },
    )
    teacher_weights: list[float] | None = field(
        default=None, metadata=about("ensemble weights, one per teacher (default uniform)")
    )
    temperature: float = field(default=2.0, metadata=about("softmax temperature T of the soft targets"))
    alpha_ce: float = field(default=5.0, metadata=about("weight of the soft-target KL term"))
    alpha_mlm: float = field(default=2.0, metadata=about("weight of the MLM cross-entropy term"))
    alpha_cos: float = field(default=1.0, metadata=about("weight of the cosine hidden-state term"))
    # Where the soft-target KL is computed: "masked" positions only (default, this project's choice) or
    # "all" non-pad tokens (the Hugging Face DistilBERT recipe); see rokd.distill.distiller.
    soft_targets: str = field(
        default="masked",
        metadata={
            **choices("masked", "all"),
            "help": "where the soft-target KL is computed: masked positions, or every token (HF recipe)",
        },
    )


@dataclass
class TeachersConfig(StepBudget):
    # Local miniature teachers are built when ``source == "build"``; ``hub`` uses the hub IDs below.
    source: str = field(default="build", metadata=choices(*SOURCES))
    cased: BertShape = field(default_factory=BertShape)
    uncased: BertShape = field(default_factory=lambda: BertShape(lowercase=True))
    hub_cased: str = "dumitrescustefan/bert-base-romanian-cased-v1"
    hub_uncased: str = "readerbench/RoBERT-base"
    max_length: int = 128
    checkpoint_every: int = 500
    mlm_probability: float = 0.15
    eval_lines: int = 1000  # held-out lines for MLM accuracy
    pppl_lines: int = 100  # held-out lines for pseudo-perplexity (one forward pass per token)
    # Learning curve: held-out MLM accuracy on `curve_lines` lines every `curve_every` steps (0 = off).
    curve_every: int = 0
    curve_lines: int = 500


@dataclass
class DistillConfig(StepBudget, DistillObjective):
    # Hub students released by the authors (used instead of distilling when ``source == "hub"``).
    source: str = field(default="build", metadata=choices(*SOURCES))
    hub_students: dict[str, str] = field(default_factory=dict)
    max_length: int = field(default=128, metadata=about("tokens per sequence (student's tokenizer)"))
    max_grad_norm: float = 5.0
    checkpoint_every: int = 200
    mlm_probability: float = 0.15
    smoothed_masking: bool = True  # choose words to mask with weights count**-0.7 (DistilBERT recipe)
    eval_lines: int = 1000  # held-out lines for the student's / teachers' MLM accuracy
    # Learning curve: the student's held-out MLM accuracy on `curve_lines` lines every `curve_every` steps (0 = off).
    curve_every: int = 0
    curve_lines: int = 500
    # Distillation seeds per student (default 1): {student: n} adds the models <student>@d2 ... @dn, distilled
    # with seeds seed+1 ... seed+n-1 (rokd.models.registry.replica_key), so that comparisons of students
    # include the variance of distillation, not only that of fine-tuning.
    replicas: dict[str, int] = field(default_factory=dict)


@dataclass
class EvalConfig(TrainingBudget):
    """Fine-tuning and scoring: a budget in epochs of each task's training subset."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))  # every task of the experiment (rokd.spec)
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    max_length: int = 128  # long documents (LaRoSeDa, MOROCO) are truncated to this many subwords
    max_train_examples: int | None = None  # None = full train split
    max_eval_examples: int | None = None  # caps validation and test (None = full)
    epochs: float = 3.0
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    # Validation scorings per epoch; the best one (task's headline metric) is the state scored on test.
    evals_per_epoch: int = 1
    # Inference variants of the selected model also run on the test split ("int8", "bf16"; CPU), written as
    # predictions of "<model>@<variant>": what they cost in score and loyalty (rokd.precision_cost).
    variants: list[str] = field(default_factory=list)
    # Inference-speed table of the results chapter (rokd.report): batch x sequence length, timed rounds.
    speed_batch_size: int = 8
    speed_seq_length: int = 128
    speed_rounds: int = 5
    # Per-task budget: {task: {field: value}} overrides any field above for one task (e.g. the long-document
    # tasks' max_length, a cap where the learning curve has flattened). Read through `for_task`.
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        allowed = {f.name for f in fields(self)} - {"tasks", "seeds", "per_task"}
        for task, overrides in self.per_task.items():
            if not isinstance(overrides, dict):
                raise ConfigError(f"evaluate.per_task.{task}: expected a mapping of field: value, got {overrides!r}")
            unknown = sorted(set(overrides) - allowed)
            if unknown:
                raise ConfigError(f"evaluate.per_task.{task}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")

    def for_task(self, task: str) -> "EvalConfig":
        """This config with ``per_task[task]``'s overrides applied (the budget one fine-tuning runs with)."""
        overrides = self.per_task.get(task)
        if not overrides:
            return self
        return from_dict(EvalConfig, {**to_dict(self), **overrides, "per_task": {}}, where=f"evaluate.per_task.{task}")


# Optional chapters a profile can add to the pipeline (notebooks/<stem>.md), in their order in the book.
OPTIONAL_CHAPTERS = ("06_strategies", "07_distil_your_own")


@dataclass
class Profile:
    name: str
    description: str = ""
    device: str = field(default="auto", metadata=choices(*DEVICES))
    data: DataConfig = field(default_factory=DataConfig)
    teachers: TeachersConfig = field(default_factory=TeachersConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    # Chapters beyond the reproduction that this profile executes (worked examples of the API); a published
    # profile lists only those its committed results hold.
    chapters: list[str] = field(default_factory=list, metadata=choices(*OPTIONAL_CHAPTERS))


def profile_file(name_or_path: str | Path) -> Path:
    """The YAML file of a named profile (``smoke``, ``mini``, ``paper``) or of a path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(
                f"unknown profile {str(name_or_path)!r}; choose one of {list(PROFILES)} or give a YAML path"
            )
    if not path.exists():
        raise ConfigError(f"profile file not found: {path}")
    return path


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a named profile (``smoke``, ``mini``, ``paper``) or a YAML file path.

    Outputs go to ``results/<name>`` and ``artifacts/<name>`` where ``name`` is the profile's ``name:``
    field (never the YAML's path), so it must be a plain folder name.
    """
    from rokd.paths import check_name

    path = profile_file(name_or_path)
    profile = load_config(Profile, path)
    check_name(profile.name, f"{path}: name")
    return profile


def resolve_profile(profile: str | Path | Profile) -> Profile:
    """A :class:`Profile` as it is, or the named / YAML profile loaded (what every step accepts)."""
    return profile if isinstance(profile, Profile) else load_profile(profile)
