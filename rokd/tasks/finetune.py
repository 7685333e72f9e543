"""Fine-tune any model on one task, pick the best validation checkpoint, score the test split once.

Protocol (every model sees the same thing):

- Train / validation / test subsets are chosen by a hash of the example id
  (:func:`rokd.tasks.encode.stable_subset`), independent of the seed and of the model, capped by
  ``EvalConfig.max_train_examples`` / ``max_eval_examples``.
- A fixed budget per profile: ``epochs`` x the training subset, trained by the shared loop
  (:func:`rokd.trainer.train`: AdamW with no decay on biases/LayerNorms, linear warm-up/decay, clipping at
  ``max_grad_norm``, the precision policy, the NaN guard, checkpoints and exact resume). Batches are grouped
  by length (:class:`TaskBatches`, a resumable stream).
- The model is scored on validation ``evals_per_epoch`` times per epoch with the task's headline
  metric (``rokd.paper.HEADLINE_METRIC``) through the trainer's ``evaluate`` hook
  (:class:`ModelSelection`); the best state is kept (on disk, so a killed run resumes with it) and only
  it is run on the test split, once; with ``evaluate.variants`` also its int8 / bf16 copies.
- Tagging: ``AutoModelForTokenClassification``, one label per word on its first sub-word.
  Classification: ``AutoModelForSequenceClassification``. STS: the same with ``num_labels=1`` and
  ``problem_type="regression"`` (MSE loss on the raw 0-5 score).

Outputs of a model x task x seed (all under ``results/<profile>/``):
``scores.csv`` rows, ``predictions/<model>/<task>/seed<k>.npz`` (format in
:mod:`rokd.tasks.predictions`), and beside it ``seed<k>.run.json`` (resolved config, split sizes and
provenance, truncation, validation history, metrics, wall time, hardware, precision and threads) and
``seed<k>.config.json``. While a run trains, its checkpoints live in ``results/<profile>/.work/`` (removed
when it is done; a killed run continues from them when called again with the same config).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rokd import io
from rokd.config import save_config, to_dict
from rokd.paths import results_dir as default_results_dir
from rokd.profiles import EvalConfig, Profile, resolve_profile
from rokd.spec import TASKS
from rokd.tasks.encode import IGNORE_INDEX, Encoded, LabelInventory, encode_sentences, encode_tagging, select_split
from rokd.tasks.metrics import ALL_TASKS, REGRESSION_TASKS, TAGGING_TASKS, compute_metrics, headline_metric
from rokd.tasks.predictions import Predictions, predictions_path, save_predictions
from rokd.tasks.scores import merge_scores, scores_path

# Bump when the protocol changes so that earlier outputs are recomputed instead of reused.
# 2: trained through rokd.trainer (fused AdamW, eps 1e-8, resumable); UPOS / XPOS select checkpoints by
#    accuracy and have only the train + validation tags as classes; per-task budgets (evaluate.per_task).
PROTOCOL_VERSION = 2


# ----------------------------------------------------------------------------------------- models
@dataclass
class ResolvedModel:
    name: str  # the name used in results files
    name_or_path: str  # hub id or local directory
    fingerprint: str  # changes when the model's files change (for idempotence)


def _dir_fingerprint(path: Path) -> str:
    h = hashlib.sha1()
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.suffix in {".json", ".safetensors", ".txt", ".model"}):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def resolve_model(model: str, profile: Profile, name: str | None = None) -> ResolvedModel:
    """A registry key (resolved for ``profile``), a local HF directory or a hub ID."""
    from rokd.models import registry

    ref = registry.resolve(model, profile)
    if ref.key in registry.CONTROLS:  # cheap and deterministic: built (once) where it is first needed
        from rokd.distill.student import build_init_only_control
        from rokd.models.controls import build_random_init_control
        from rokd.spec import RANDOM_INIT_CONTROL

        build = build_random_init_control if ref.key == RANDOM_INIT_CONTROL else build_init_only_control
        build(profile, log=None)
    default_name = ref.key or (
        Path(ref.name_or_path).name if ref.source == "local" else ref.name_or_path.replace("/", "__")
    )
    if ref.source == "local":
        local = Path(ref.name_or_path)
        if not (local / "config.json").exists():
            raise FileNotFoundError(
                f"model {model!r} of profile {profile.name!r} is not built yet: no config.json in {local} "
                f"(build it first, e.g. `rokd pipeline --profile {profile.name}`)"
            )
        return ResolvedModel(name or default_name, str(local), _dir_fingerprint(local))
    return ResolvedModel(name or default_name, ref.name_or_path, "hub:" + ref.name_or_path)


def load_tokenizer(resolved: ResolvedModel):
    from rokd.models import registry

    tok = registry.load_tokenizer(registry.resolve(resolved.name_or_path))
    if not getattr(tok, "is_fast", False):
        raise TypeError(f"{resolved.name_or_path}: a fast tokenizer is needed (word_ids for first-sub-word labels)")
    return tok


@contextlib.contextmanager
def quiet_transformers():
    """Loading an MLM checkpoint into a task model prints a long load report; keep notebooks readable."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def build_task_model(name_or_path: str, task: str, label_names: list[str] | None):
    """A fresh task head on the pretrained encoder (the MLM head is dropped)."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    with quiet_transformers():
        if task in REGRESSION_TASKS:
            return AutoModelForSequenceClassification.from_pretrained(
                name_or_path, num_labels=1, problem_type="regression"
            )
        id2label = dict(enumerate(label_names))
        kwargs = dict(num_labels=len(label_names), id2label=id2label, label2id={v: k for k, v in id2label.items()})
        if task in TAGGING_TASKS:
            return AutoModelForTokenClassification.from_pretrained(name_or_path, **kwargs)
        return AutoModelForSequenceClassification.from_pretrained(
            name_or_path, problem_type="single_label_classification", **kwargs
        )


# ------------------------------------------------------------------------------------------- data
_TASK_CACHE: dict[str, Any] = {}


def load_task_cached(task: str):
    """``rokd.data.load_task`` once per process (the notebook scores 7 tasks x seeds in one kernel)."""
    if task not in _TASK_CACHE:
        from rokd.data import load_task

        _TASK_CACHE[task] = load_task(task)
    return _TASK_CACHE[task]


def label_inventory(dd, task: str, cfg: EvalConfig) -> LabelInventory | None:
    """The model's classes: for UPOS / XPOS the tags of the selected train + validation examples only."""
    names = _label_names(dd, task)
    if names is None:
        return None
    sources = []
    if task in TAGGING_TASKS:
        sources = [
            select_split(dd["train"], cfg.max_train_examples)["labels"],
            select_split(dd["validation"], cfg.max_eval_examples)["labels"],
        ]
    return LabelInventory.build(task, names, sources)


def _label_names(dd, task: str) -> list[str] | None:
    if task in REGRESSION_TASKS:
        return None
    feat = dd["train"].features["labels" if task in TAGGING_TASKS else "label"]
    inner = getattr(feat, "feature", feat)
    names = getattr(inner, "names", None)
    if not names:
        raise ValueError(f"task {task!r}: the label column has no ClassLabel names ({feat})")
    return list(names)


def _provenance(dd) -> dict:
    try:
        from rokd.data import split_provenance

        return split_provenance(dd)
    except (ImportError, AttributeError, KeyError, ValueError) as e:  # data made outside rokd.data: say so
        return {"unavailable": str(e)}


def encode_split(
    ds, task: str, tokenizer, max_length: int, limit: int | None, inventory: LabelInventory | None = None
) -> Encoded:
    """Encode a (hash-selected subset of a) split for ``task``.

    ``inventory``: tagging labels become the model's class ids (train / validation); without it they
    stay dataset ids (the test split, whose predictions are mapped back to dataset ids).
    """
    ds = select_split(ds, limit)
    ids = [str(i) for i in ds["id"]]
    if task in TAGGING_TASKS:
        labels = list(ds["labels"])
        if inventory is not None:
            labels = inventory.to_model(labels)
        return encode_tagging(tokenizer, ids, list(ds["tokens"]), labels, max_length)
    # datasets 5 returns lazy Column objects: the tokenizer wants plain lists.
    pairs = list(ds["text_pair"]) if "text_pair" in ds.column_names else None
    return encode_sentences(
        tokenizer, ids, list(ds["text"]), pairs, list(ds["label"]), max_length, regression=task in REGRESSION_TASKS
    )


# --------------------------------------------------------------------------------------- training
def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random, mega: int = 50) -> list[list[int]]:
    """Shuffled batches of similar lengths (less padding): sort within shuffled mega-batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for s in range(0, len(order), batch_size * mega):
        block = sorted(order[s : s + batch_size * mega], key=lambda i: -lengths[i])
        batches += [block[i : i + batch_size] for i in range(0, len(block), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(features: list[dict], pad_id: int, input_names: tuple[str, ...], tagging: bool, regression: bool) -> dict:
    import torch

    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, Any] = {}
    for name in input_names:
        fill = pad_id if name == "input_ids" else 0
        batch[name] = torch.tensor([f[name] + [fill] * (width - len(f[name])) for f in features], dtype=torch.long)
    if tagging:
        batch["labels"] = torch.tensor([f["labels"] + [IGNORE_INDEX] * (width - len(f["labels"])) for f in features])
    elif regression:
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
    else:
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
    return batch


def _input_names(model, features: list[dict]) -> tuple[str, ...]:
    accepted = set(inspect.signature(model.forward).parameters)
    present = set(features[0]) if features else {"input_ids", "attention_mask"}
    # DistilBERT has no token_type_ids although its (teacher's) tokenizer makes them.
    return tuple(n for n in ("input_ids", "attention_mask", "token_type_ids") if n in present and n in accepted)


def predict(model, enc: Encoded, task: str, batch_size: int, device, precision=None) -> np.ndarray:
    """Outputs per scored row: logits (N, C) for classification/tagging, scores (N,) for STS.

    ``precision`` (a :class:`rokd.precision.Precision`): the forward runs under its autocast (bf16 when
    the policy chose it; outputs are returned as float32 either way).
    """
    import torch

    tagging = task in TAGGING_TASKS
    regression = task in REGRESSION_TASKS
    names = _input_names(model, enc.features)
    pad_id = model.config.pad_token_id or 0
    order = sorted(range(len(enc.features)), key=lambda i: len(enc.features[i]["input_ids"]))
    per_feature: list[np.ndarray | None] = [None] * len(enc.features)
    model.eval()
    autocast = precision.autocast() if precision is not None else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch = _collate([enc.features[i] for i in idx], pad_id, names, tagging, regression)
            labels = batch.pop("labels")
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            for j, i in enumerate(idx):
                if tagging:
                    keep = labels[j] != IGNORE_INDEX
                    per_feature[i] = logits[j][keep].numpy()
                elif regression:
                    per_feature[i] = logits[j].reshape(1).numpy()
                else:
                    per_feature[i] = logits[j].reshape(1, -1).numpy()
    out = np.concatenate(per_feature, axis=0) if per_feature else np.zeros((0,))
    return out.astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def outputs_to_predictions(outputs: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(pred, probs): argmax + softmax, or the raw score for STS (probs None)."""
    if task in REGRESSION_TASKS:
        return outputs.reshape(-1).astype(np.float32), None
    probs = _softmax(outputs.astype(np.float64)).astype(np.float32)
    return probs.argmax(axis=-1).astype(np.int64), probs


def _score(model, enc: Encoded, task: str, label_names, batch_size: int, device, precision=None) -> dict[str, float]:
    pred, _ = outputs_to_predictions(predict(model, enc, task, batch_size, device, precision), task)
    return compute_metrics(task, enc.gold, pred, label_names, enc.row_ids)


def _better(value: float, best: float | None) -> bool:
    if math.isnan(value):
        return best is None  # keep a NaN state only if nothing better has been seen
    return best is None or math.isnan(best) or value > best


class TaskBatches:
    """Endless length-grouped training batches of one task: the checkpointable stream :func:`rokd.trainer.train` reads.

    Epoch ``e`` is the ``e``-th call of :func:`length_grouped_batches` on one ``random.Random(seed)``,
    consumed from its end (the order of the loop this replaced). The state is the cursor
    ``(epoch, position)``: loading it replays the shuffles, so a resumed run sees the same batches.
    ``drawn`` counts batches handed out in total (= optimizer steps, with no gradient accumulation).
    """

    def __init__(
        self,
        enc: Encoded,
        batch_size: int,
        seed: int,
        pad_id: int,
        input_names: tuple[str, ...],
        tagging: bool,
        regression: bool,
    ):
        self.enc, self.batch_size, self.seed = enc, batch_size, seed
        self._collate_args = (pad_id, input_names, tagging, regression)
        self.drawn = 0
        self._seek(0, 0)

    def _seek(self, epoch: int, position: int) -> None:
        rng = random.Random(self.seed)
        for _ in range(epoch + 1):
            batches = length_grouped_batches(self.enc.lengths, self.batch_size, rng)
        self._rng, self._batches, self.epoch, self.position = rng, batches, epoch, position

    def __iter__(self) -> "TaskBatches":
        return self

    def __next__(self) -> dict:
        if self.position >= len(self._batches):
            self._batches = length_grouped_batches(self.enc.lengths, self.batch_size, self._rng)
            self.epoch, self.position = self.epoch + 1, 0
        idx = self._batches[len(self._batches) - 1 - self.position]
        self.position += 1
        self.drawn += 1
        return _collate([self.enc.features[i] for i in idx], *self._collate_args)

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "drawn": self.drawn,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["seed"]) != self.seed or int(state["batch_size"]) != self.batch_size:
            raise ValueError(
                f"batch state saved with seed {state['seed']} / batch size {state['batch_size']}, "
                f"this stream has {self.seed} / {self.batch_size}"
            )
        self.drawn = int(state["drawn"])
        self._seek(int(state["epoch"]), int(state["position"]))


def _task_step(model, batch: dict) -> dict:
    """The trainer's ``step_fn``: the task head's own loss (cross-entropy, or MSE for STS)."""
    return {"loss": model(**batch).loss}


class ModelSelection:
    """The trainer's ``evaluate`` hook: score validation, keep the best state (task's headline metric).

    The best state is written to ``<work>/best.safetensors`` (+ ``best.json``, step and value) when a
    scoring beats every earlier one; on resume the earlier scorings are read back from the trainer's log.
    A kill between a best-state write and the next checkpoint is harmless: the resumed run recomputes
    that step bit for bit and writes the same state again.
    """

    def __init__(
        self,
        val: Encoded,
        task: str,
        label_names,
        batch_size: int,
        precision,
        batches: TaskBatches,
        work: Path,
        total_steps: int,
        log: Callable[[str], None] | None,
    ):
        self.val, self.task, self.label_names, self.batch_size = val, task, label_names, batch_size
        self.precision, self.batches, self.work, self.total_steps, self.log = precision, batches, work, total_steps, log
        self.metric = headline_metric(task)
        self.best: float | None = None
        self._restored = False

    def _restore(self, step: int) -> None:
        """Best value among the scorings logged before ``step`` (a resumed run's earlier steps)."""
        for rec in io.read_jsonl(self.work / "train_log.jsonl", missing_ok=True):
            value = rec.get("eval_" + self.metric, "absent")
            if rec["step"] < step and value != "absent":
                value = math.nan if value is None else float(value)
                if _better(value, self.best):
                    self.best = value
        self._restored = True

    def __call__(self, model) -> dict[str, float]:
        step = self.batches.drawn
        if not self._restored:
            self._restore(step)
        scores = _score(model, self.val, self.task, self.label_names, self.batch_size, model.device, self.precision)
        value = scores[self.metric]
        if _better(value, self.best):
            self.best = value
            _save_best(model, self.work, step, value)
        if self.log:
            self.log(f"  step {step}/{self.total_steps} val {self.metric} {value:.4f}")
        return {self.metric: value}


def _save_best(model, work: Path, step: int, value: float) -> None:
    from safetensors.torch import save_model

    with io.atomic_path(work / "best.safetensors") as tmp:
        save_model(model, str(tmp))
    io.atomic_write_json(work / "best.json", {"step": step, "value": None if math.isnan(value) else value}, indent=None)


def selection_history(train_log: list[dict], metric: str, steps_per_epoch: int) -> list[dict]:
    """The validation history of a run from the trainer's log: one record per scoring, with the mean
    training loss since the previous scoring and ``best`` where the scoring beat all earlier ones."""
    history, running, best = [], [], None
    for rec in train_log:
        running.append(rec["loss"])
        if "eval_" + metric not in rec:
            continue
        value = math.nan if rec["eval_" + metric] is None else float(rec["eval_" + metric])
        entry = {
            "step": rec["step"],
            "epoch": round(rec["step"] / steps_per_epoch, 3),
            "train_loss": float(np.mean(running)),
            "val_" + metric: value,
            "elapsed_s": round(rec["elapsed_s"], 2),
        }
        running = []
        if _better(value, best):
            best = value
            entry["best"] = True
        history.append(entry)
    return history


@dataclass
class FitResult:
    history: list[dict]  # validation scorings (see selection_history)
    precision: Any  # rokd.precision.Precision the run computed in
    threads: int
    resumed_from: int | None  # step of the checkpoint this call continued from
    completed: bool  # False when max_steps_this_run stopped it early


def train_and_select(
    model,
    train: Encoded,
    val: Encoded,
    task: str,
    label_names: list[str] | None,
    cfg: EvalConfig,
    seed: int,
    work: Path,
    *,
    device: str = "auto",
    resume: bool = True,
    max_steps_this_run: int | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Fine-tune ``model`` with :func:`rokd.trainer.train`; load the best validation state into it.

    The budget: ``cfg.epochs`` x the training batches, AdamW (eps 1e-8) with linear warm-up
    (``cfg.warmup_ratio``) and decay, clipping at ``cfg.max_grad_norm``, the precision policy
    (``cfg.precision``); validation is scored ``cfg.evals_per_epoch`` times per epoch and at the end.
    Checkpoints, the log and the best state live in ``work`` (``resume=True`` continues a killed run).
    """
    from rokd import trainer

    tagging, regression = task in TAGGING_TASKS, task in REGRESSION_TASKS
    steps_per_epoch = max(1, math.ceil(len(train.features) / cfg.batch_size))
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    eval_every = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    tcfg = trainer.TrainerConfig(
        output_dir=str(work),
        **cfg.trainer_settings(),
        steps=total_steps,
        warmup_steps=int(cfg.warmup_ratio * total_steps),
        adam_eps=1e-8,
        keep_checkpoints=1,
        seed=seed,
        cpu=device == "cpu",
        progress=False,
    )
    precision = trainer.resolve_mixed_precision(cfg.precision, tcfg.cpu)
    batches = TaskBatches(
        train,
        cfg.batch_size,
        seed,
        model.config.pad_token_id or 0,
        _input_names(model, train.features),
        tagging,
        regression,
    )
    select = ModelSelection(val, task, label_names, cfg.batch_size * 2, precision, batches, work, total_steps, log)
    result = trainer.train(
        model,
        _task_step,
        batches,
        tcfg,
        resume=resume,
        max_steps_this_run=max_steps_this_run,
        evaluate=select,
        eval_every=eval_every,
    )
    history = selection_history(
        io.read_jsonl(work / "train_log.jsonl", missing_ok=True), select.metric, steps_per_epoch
    )
    if result.completed:
        from safetensors.torch import load_model

        best = max((h for h in history if h.get("best")), key=lambda h: h["step"])
        saved = json.loads((work / "best.json").read_text(encoding="utf-8"))
        if saved["step"] != best["step"]:
            raise RuntimeError(
                f"{work}: the saved best state is from step {saved['step']}, the log's best scoring "
                f"is at step {best['step']}; delete {work} and rerun"
            )
        load_model(result.module, work / "best.safetensors", strict=True)
    return FitResult(history, precision, result.threads, result.resumed_from, result.completed)


# ------------------------------------------------------------------------------------ entry point
def _device(profile: Profile):
    import torch

    if profile.device == "cuda" or (profile.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError(f"profile {profile.name!r} asks for device 'cuda' but no GPU is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def variant_name(model: str, variant: str) -> str:
    """The results name of an inference variant of ``model`` (its predictions folder): ``<model>@<variant>``."""
    return f"{model}@{variant}"


def run_paths(results: Path, model: str, task: str, seed: int) -> dict[str, Path]:
    npz = predictions_path(results, model, task, seed)
    return {
        "predictions": npz,
        "run": npz.with_suffix(".run.json"),
        "config": npz.with_suffix(".config.json"),
        # checkpoints, training log and best state while training (git-ignored; removed when the run is done)
        "work": results / ".work" / "finetune" / model / task / f"seed{seed}",
    }


# EvalConfig fields that change how fast a run goes or where it keeps checkpoints, never its outputs.
_BOOKKEEPING_FIELDS = (
    "tasks",
    "seeds",
    "threads",
    "checkpoint_every",
    "speed_batch_size",
    "speed_seq_length",
    "speed_rounds",
)


def resolved_run_config(
    profile: Profile, resolved: ResolvedModel, task: str, seed: int, precision: str = "fp32"
) -> dict:
    """Everything that determines a run's outputs (compared for idempotence); ``precision`` is the resolved one."""
    ev = to_dict(profile.evaluate.for_task(task))  # this task's budget only: another task's edit keeps this run
    ev.pop("per_task", None)
    for k in _BOOKKEEPING_FIELDS:
        ev.pop(k, None)
    ev.pop("precision", None)  # the setting ("auto") is replaced by what it resolved to on this machine
    return {
        "protocol_version": PROTOCOL_VERSION,
        "profile": profile.name,
        "model": resolved.name,
        "name_or_path": resolved.name_or_path,
        "model_fingerprint": resolved.fingerprint,
        "task": task,
        "seed": int(seed),
        "precision": precision,
        "evaluate": ev,
    }


def evaluate_model(
    profile: str | Profile,
    model: str,
    task: str,
    seed: int,
    *,
    name: str | None = None,
    results_dir: str | Path | None = None,
    wait: bool = False,
    **kwargs,
) -> dict[str, float] | None:
    """:func:`_evaluate_model` holding the lock of its outputs: one run per model/task/seed at a time (a second
    one waits with ``wait``, else stops naming the holder). ``name`` must be a plain name (no path)."""
    from rokd.errors import CorruptFileError

    prof = resolve_profile(profile)
    resolved = resolve_model(model, prof, name)
    local = Path(resolved.name_or_path)
    problem = io.weights_problem(local) if (local / "model.safetensors").is_file() else None
    if problem:  # a truncated or altered model is named here, not deep inside from_pretrained
        raise CorruptFileError(
            local, "model folder", "delete it and rebuild it (`rokd pipeline` or the step that made it)", problem
        )
    results = Path(results_dir) if results_dir is not None else default_results_dir(prof.name)
    out = run_paths(results, resolved.name, task, seed)["predictions"]
    with io.lock(
        out.parent / f".{out.stem}.lock",
        f"the evaluation {resolved.name} / {task} / seed {seed}",
        wait=wait,
        hint=", or rerun with --wait",
    ):
        return _evaluate_model(prof, model, task, seed, name=name, results_dir=results_dir, **kwargs)


def _evaluate_model(
    profile: str | Profile,
    model: str,
    task: str,
    seed: int,
    *,
    name: str | None = None,
    dataset=None,
    results_dir: str | Path | None = None,
    force: bool = False,
    max_steps_this_run: int | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, float] | None:
    """Fine-tune ``model`` (registry key or local HF dir) on ``task`` with ``seed``; return TEST metrics.

    Idempotent: when the outputs exist with the same resolved config they are reused (and their rows
    re-merged into ``scores.csv``). A run that was killed continues from its last checkpoint (in the
    ``work`` folder of :func:`run_paths`) when called again with the same config. ``dataset`` (a
    DatasetDict in the ``rokd.data`` layout) and ``results_dir`` override the data layer and
    ``results/<profile>`` (tests use both). ``max_steps_this_run`` stops after that many training steps
    with a checkpoint and returns None (time-boxed runs; the resume test).
    """
    from rokd.precision import runtime_record, threads_for
    from rokd.runinfo import RunInfo
    from rokd.trainer import resolve_mixed_precision

    prof = resolve_profile(profile)
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {list(ALL_TASKS)}")
    cfg = prof.evaluate.for_task(task)  # the task's budget (evaluate.per_task)
    resolved = resolve_model(model, prof, name)
    results = Path(results_dir) if results_dir is not None else default_results_dir(prof.name)
    paths = run_paths(results, resolved.name, task, seed)
    device = _device(prof)
    with threads_for(cfg.threads) as threads:
        precision = resolve_mixed_precision(cfg.precision, cpu=device.type == "cpu")
        run_config = resolved_run_config(prof, resolved, task, seed, precision.name)
        previous = None if force else _reusable_run(results, resolved, task, seed, cfg, paths, run_config)
        if previous is not None:
            merge_scores(scores_path(results), resolved.name, task, seed, previous["metrics"])
            if log:
                log(f"{resolved.name} / {task} / seed {seed}: up to date (reusing {paths['run'].name})")
            return previous["metrics"]
        info = RunInfo(
            prof.name, f"evaluate {resolved.name} {task}", int(seed), precision=precision.name, threads=threads
        )
        t0 = time.perf_counter()
        data = _encoded_task(dataset, task, resolved, cfg)
        t_data = time.perf_counter() - t0
        work = _work_dir(paths["work"], run_config, force)
        random.seed(seed)
        np.random.seed(seed)
        import torch

        torch.manual_seed(seed)  # the new head's initialisation depends on the seed
        task_model = build_task_model(resolved.name_or_path, task, data.model_names)
        fit = train_and_select(
            task_model,
            data.train,
            data.val,
            task,
            data.model_names,
            cfg,
            seed,
            work,
            device="cpu" if device.type == "cpu" else "auto",
            resume=True,
            max_steps_this_run=max_steps_this_run,
            log=log,
        )
        if not fit.completed:  # stopped by max_steps_this_run: the checkpoint in `work` continues it
            return None
        timing = {"data": round(t_data, 2), "train_and_select": round(time.perf_counter() - t0 - t_data, 2)}
        outputs = RunOutputs(
            prof,
            cfg,
            resolved,
            task,
            seed,
            data.dataset,
            data.inventory,
            data.train,
            data.val,
            data.test,
            paths,
            run_config,
            results,
        )
        record = _test_and_write(outputs, task_model, fit, info, timing, runtime_record(precision), log)
        _remove_work_dir(work, results)
        return record["metrics"]


def _reusable_run(results: Path, resolved, task: str, seed: int, cfg: EvalConfig, paths: dict, run_config: dict):
    """The ``run.json`` of a finished run with this very config (and its variants' predictions), else None."""
    variants_done = all(
        predictions_path(results, variant_name(resolved.name, v), task, seed).exists() for v in cfg.variants
    )
    if not (paths["run"].exists() and paths["predictions"].exists() and variants_done):
        return None
    previous = json.loads(paths["run"].read_text(encoding="utf-8"))
    return previous if previous.get("config") == run_config else None


@dataclass
class _TaskData:
    """One task's splits, encoded for one model: the selected subsets and the model's label inventory."""

    dataset: Any
    inventory: LabelInventory | None
    train: Encoded
    val: Encoded
    test: Encoded

    @property
    def model_names(self) -> list[str] | None:
        return self.inventory.model_names if self.inventory is not None else None  # the task head's classes


def _encoded_task(dataset, task: str, resolved, cfg: EvalConfig) -> _TaskData:
    dd = dataset if dataset is not None else load_task_cached(task)
    for split in ("train", "validation", "test"):
        if split not in dd:
            raise ValueError(f"task {task!r}: the data has no {split!r} split (has {list(dd)})")
    inventory = label_inventory(dd, task, cfg)
    tokenizer = load_tokenizer(resolved)
    train = encode_split(dd["train"], task, tokenizer, cfg.max_length, cfg.max_train_examples, inventory)
    val = encode_split(dd["validation"], task, tokenizer, cfg.max_length, cfg.max_eval_examples, inventory)
    test = encode_split(dd["test"], task, tokenizer, cfg.max_length, cfg.max_eval_examples)
    if not train.features or not val.features or not test.features:
        raise ValueError(
            f"task {task!r}: an empty split after selection (train {len(train.features)}, "
            f"validation {len(val.features)}, test {len(test.features)})"
        )
    return _TaskData(dd, inventory, train, val, test)


def _work_dir(work: Path, run_config: dict, force: bool) -> Path:
    """The run's checkpoint folder: kept for the same config (a killed run resumes), else started afresh."""
    if work.exists():
        saved = work / "run_config.json"
        if force or not saved.is_file() or json.loads(saved.read_text(encoding="utf-8")) != run_config:
            shutil.rmtree(work)  # checkpoints of another config (or a forced rerun): start afresh
    work.mkdir(parents=True, exist_ok=True)
    save_config(run_config, work / "run_config.json")
    return work


def _remove_work_dir(work: Path, results: Path) -> None:
    """Drop a finished run's checkpoints and the empty model / task folders above them, up to results/.work."""
    shutil.rmtree(work, ignore_errors=True)
    for parent in work.parents:
        if parent == results or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()


@dataclass
class RunOutputs:
    """Where one model x task x seed run writes, and what it was given (for :func:`_test_and_write`)."""

    profile: Profile
    config: EvalConfig  # the task's budget: profile.evaluate.for_task(task)
    resolved: ResolvedModel
    task: str
    seed: int
    dataset: Any
    inventory: LabelInventory | None  # the model's classes -> the dataset's labels (None: regression)

    @property
    def label_names(self) -> list[str] | None:
        """The dataset's label names: predictions are written and scored in them."""
        return list(self.inventory.source_names) if self.inventory is not None else None

    train: Encoded
    val: Encoded
    test: Encoded
    paths: dict[str, Path]
    run_config: dict
    results: Path


def _score_test(out: RunOutputs, model, device, precision=None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Predictions on the test split, in dataset ids (a tag outside the inventory is an error), and metrics."""
    outputs = predict(model, out.test, out.task, out.config.batch_size * 2, device, precision)
    pred, probs = outputs_to_predictions(outputs, out.task)
    if out.inventory is not None:
        pred, probs = out.inventory.to_source(pred, probs)
    return pred, probs, compute_metrics(out.task, out.test.gold, pred, out.label_names, out.test.row_ids)


def _save_test_predictions(out: RunOutputs, pred, probs, meta: dict, path: Path) -> None:
    labels = out.label_names if probs is not None else None  # regression (STS) has no labels
    ids = np.asarray(out.test.row_ids)
    save_predictions(
        Predictions(ids=ids, gold=out.test.gold, pred=pred, probs=probs, label_names=labels, meta=meta), path
    )


def _test_and_write(out: RunOutputs, model, fit: "FitResult", info, timing: dict, runtime: dict, log) -> dict:
    """Score the test split once with the selected state; write predictions, run record and score rows."""
    cfg, task = out.config, out.task
    pred, probs, metrics = _score_test(out, model, model.device, fit.precision)
    info.finish()
    meta = {
        "model": out.resolved.name,
        "name_or_path": out.resolved.name_or_path,
        "task": task,
        "seed": int(out.seed),
        "profile": out.profile.name,
        "label_scheme": TASKS[task].label_scheme,
        "rows": "one per word, predicted at its first sub-word" if task in TAGGING_TASKS else "one per example",
        "max_length": cfg.max_length,
    }
    _save_test_predictions(out, pred, probs, meta, out.paths["predictions"])
    metric = headline_metric(task)
    best = max((h for h in fit.history if h.get("best")), key=lambda h: h["step"])
    splits = (("train", out.train), ("validation", out.val), ("test", out.test))
    record = {
        "config": out.run_config,
        "metrics": metrics,
        "headline_metric": metric,
        "selected": {"step": best["step"], "epoch": best["epoch"], "val_" + metric: best["val_" + metric]},
        "history": fit.history,
        "max_length": cfg.max_length,
        "labels": out.inventory.record(out.test.gold) if out.inventory is not None else None,
        "sizes": {
            s: {
                "examples": e.n_examples,
                "rows": len(e.row_ids),
                "features": len(e.features),
                "truncated_or_split": e.n_truncated,
                "available": len(out.dataset[s]),
            }
            for s, e in splits
        },
        "provenance": _provenance(out.dataset),
        "timing_s": {**timing, "total": info.wall_time_s},
        "device": str(model.device),
        "torch_threads": runtime["torch_threads"],
        "runtime": runtime,  # precision (and why), device, threads: rokd.precision.runtime_record
        "resumed_from": fit.resumed_from,
        "runinfo": info.to_dict(),
    }
    record["variants"] = _test_variants(out, model, meta, metrics)
    save_config(out.run_config, out.paths["config"])
    io.atomic_write_json(out.paths["run"], record, default=str)
    merge_scores(scores_path(out.results), out.resolved.name, task, out.seed, metrics)
    if log:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        log(
            f"{out.resolved.name} / {task} / seed {out.seed}: {shown} ({info.wall_time_s:.1f} s, "
            f"{runtime['precision']}, {runtime['torch_threads']} thread(s))"
        )
    return record


def _test_variants(out: RunOutputs, model, meta: dict, fp32_metrics: dict) -> dict:
    """Run the test split with each of ``evaluate.variants`` (int8 / bf16 copies of the selected model, on the
    CPU); write their predictions as ``<model>@<variant>``; return their metrics and timings."""
    from rokd.distill.export import make_variant

    done = {}
    for variant in out.config.variants:
        t0 = time.perf_counter()
        pred, probs, metrics = _score_test(out, make_variant(model.cpu(), variant), "cpu")
        name = variant_name(out.resolved.name, variant)
        variant_meta = {**meta, "model": name, "variant": variant, "variant_of": out.resolved.name}
        _save_test_predictions(out, pred, probs, variant_meta, predictions_path(out.results, name, out.task, out.seed))
        done[variant] = {
            "metrics": metrics,
            "test_s": round(time.perf_counter() - t0, 2),
            "change": {k: metrics[k] - fp32_metrics[k] for k in metrics},
        }
    return done


def evaluate_all(
    profile: str | Profile,
    model: str,
    tasks: list[str] | None = None,
    seeds: list[int] | None = None,
    **kwargs,
):
    """Every task x seed of ``model`` (defaults: the profile's); a DataFrame of the TEST metrics."""
    import pandas as pd

    prof = resolve_profile(profile)
    tasks = list(tasks or prof.evaluate.tasks)
    seeds = list(seeds or prof.evaluate.seeds)
    rows = []
    for task in tasks:
        for seed in seeds:
            metrics = evaluate_model(prof, model, task, seed, **kwargs)
            rows += [{"task": task, "seed": seed, "metric": k, "value": v} for k, v in metrics.items()]
    return pd.DataFrame(rows)


def load_run(profile: str, model: str, task: str, seed: int, results_dir: str | Path | None = None) -> dict:
    """The ``seed<k>.run.json`` record of one run (history, sizes, provenance, timing)."""
    results = Path(results_dir) if results_dir is not None else default_results_dir(profile)
    path = run_paths(results, model, task, seed)["run"]
    if not path.exists():
        raise FileNotFoundError(
            f"no run record {path}; run `rokd evaluate --profile {profile} --model {model} --task {task} --seed {seed}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))
