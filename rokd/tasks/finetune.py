"""Fine-tune any model on one task, pick the best validation checkpoint, score the test split once.

Protocol (every model sees the same thing):

- Train / validation / test subsets are chosen by a hash of the example id
  (:func:`rokd.tasks.encode.stable_subset`), independent of the seed and of the model, capped by
  ``EvalConfig.max_train_examples`` / ``max_eval_examples``.
- A fixed budget per profile: ``epochs`` x the training subset, AdamW with linear warm-up/decay.
- The model is scored on validation ``evals_per_epoch`` times per epoch with the task's headline
  metric (``rokd.paper.HEADLINE_METRIC``); the best state is kept in memory and only it is run on
  the test split, once.
- Tagging: ``AutoModelForTokenClassification``, one label per word on its first sub-word.
  Classification: ``AutoModelForSequenceClassification``. STS: the same with ``num_labels=1`` and
  ``problem_type="regression"`` (MSE loss on the raw 0-5 score).

Outputs of a model x task x seed (all under ``results/<profile>/``):
``scores.csv`` rows, ``predictions/<model>/<task>/seed<k>.npz`` (format in
:mod:`rokd.tasks.predictions`), and beside it ``seed<k>.run.json`` (resolved config, split sizes and
provenance, truncation, validation history, metrics, wall time, hardware) and ``seed<k>.config.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rokd.config import save_config, to_dict
from rokd.paths import results_dir as default_results_dir
from rokd.profiles import EvalConfig, Profile, load_profile
from rokd.tasks.encode import IGNORE_INDEX, Encoded, LabelInventory, encode_sentences, encode_tagging, select_split
from rokd.tasks.metrics import ALL_TASKS, REGRESSION_TASKS, TAGGING_TASKS, compute_metrics, headline_metric
from rokd.tasks.predictions import Predictions, predictions_path, save_predictions
from rokd.tasks.scores import merge_scores, scores_path

# Bump when the protocol changes so that earlier outputs are recomputed instead of reused.
# 2: UPOS / XPOS select checkpoints by accuracy and have only the train + validation tags as classes.
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

        build = build_random_init_control if ref.key == "control-random-init" else build_init_only_control
        build(profile, log=None)
    default_name = ref.key or (Path(ref.name_or_path).name if ref.source == "local" else ref.name_or_path.replace("/", "__"))
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
def _quiet_transformers():
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

    with _quiet_transformers():
        if task in REGRESSION_TASKS:
            return AutoModelForSequenceClassification.from_pretrained(name_or_path, num_labels=1, problem_type="regression")
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
        sources = [select_split(dd["train"], cfg.max_train_examples)["labels"],
                   select_split(dd["validation"], cfg.max_eval_examples)["labels"]]
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


def encode_split(ds, task: str, tokenizer, max_length: int, limit: int | None,
                 inventory: LabelInventory | None = None) -> Encoded:
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
    return encode_sentences(tokenizer, ids, list(ds["text"]), pairs, list(ds["label"]), max_length,
                            regression=task in REGRESSION_TASKS)


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


def predict(model, enc: Encoded, task: str, batch_size: int, device) -> np.ndarray:
    """Outputs per scored row: logits (N, C) for classification/tagging, scores (N,) for STS."""
    import torch

    tagging = task in TAGGING_TASKS
    regression = task in REGRESSION_TASKS
    names = _input_names(model, enc.features)
    pad_id = model.config.pad_token_id or 0
    order = sorted(range(len(enc.features)), key=lambda i: len(enc.features[i]["input_ids"]))
    per_feature: list[np.ndarray | None] = [None] * len(enc.features)
    model.eval()
    with torch.inference_mode():
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


def _score(model, enc: Encoded, task: str, label_names, batch_size: int, device) -> dict[str, float]:
    pred, _ = outputs_to_predictions(predict(model, enc, task, batch_size, device), task)
    return compute_metrics(task, enc.gold, pred, label_names, enc.row_ids)


def _better(value: float, best: float | None) -> bool:
    if math.isnan(value):
        return best is None  # keep a NaN state only if nothing better has been seen
    return best is None or math.isnan(best) or value > best


def train_and_select(
    model,
    train: Encoded,
    val: Encoded,
    task: str,
    label_names: list[str] | None,
    cfg: EvalConfig,
    seed: int,
    device,
    log: Callable[[str], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Fine-tune; return the best validation state (CPU tensors) and the validation history."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    tagging = task in TAGGING_TASKS
    regression = task in REGRESSION_TASKS
    metric = headline_metric(task)
    names = _input_names(model, train.features)
    pad_id = model.config.pad_token_id or 0
    rng = random.Random(seed)
    steps_per_epoch = max(1, math.ceil(len(train.features) / cfg.batch_size))
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    eval_every = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    eval_steps = sorted({s for s in range(eval_every, total_steps + 1, eval_every)} | {total_steps})

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = get_linear_schedule_with_warmup(optim, int(cfg.warmup_ratio * total_steps), total_steps)

    history: list[dict] = []
    best_state: dict | None = None
    best_value: float | None = None
    step = 0
    batches: list[list[int]] = []
    t0 = time.perf_counter()
    running = []
    while step < total_steps:
        if not batches:
            batches = length_grouped_batches(train.lengths, cfg.batch_size, rng)
        model.train()
        idx = batches.pop()
        batch = _collate([train.features[i] for i in idx], pad_id, names, tagging, regression)
        out = model(**{k: v.to(device) for k, v in batch.items()})
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        running.append(float(out.loss.detach()))
        step += 1
        if step in eval_steps:
            scores = _score(model, val, task, label_names, cfg.batch_size * 2, device)
            value = scores[metric]
            rec = {
                "step": step,
                "epoch": round(step / steps_per_epoch, 3),
                "train_loss": float(np.mean(running)),
                "val_" + metric: value,
                "elapsed_s": round(time.perf_counter() - t0, 2),
            }
            running = []
            if _better(value, best_value):
                best_value = value
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                rec["best"] = True
            history.append(rec)
            if log:
                log(f"  step {step}/{total_steps} loss {rec['train_loss']:.4f} val {metric} {value:.4f}")
    assert best_state is not None  # at least one evaluation happens (total_steps is an eval step)
    return best_state, history


# ------------------------------------------------------------------------------------ entry point
def _device(profile: Profile):
    import torch

    if profile.device == "cuda" or (profile.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError(f"profile {profile.name!r} asks for device 'cuda' but no GPU is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def run_paths(results: Path, model: str, task: str, seed: int) -> dict[str, Path]:
    npz = predictions_path(results, model, task, seed)
    return {"predictions": npz, "run": npz.with_suffix(".run.json"), "config": npz.with_suffix(".config.json")}


def resolved_run_config(profile: Profile, resolved: ResolvedModel, task: str, seed: int) -> dict:
    """Everything that determines a run's outputs (compared for idempotence)."""
    ev = to_dict(profile.evaluate)
    for k in ("tasks", "seeds"):  # which tasks/seeds run does not change any one run
        ev.pop(k, None)
    return {
        "protocol_version": PROTOCOL_VERSION,
        "profile": profile.name,
        "model": resolved.name,
        "name_or_path": resolved.name_or_path,
        "model_fingerprint": resolved.fingerprint,
        "task": task,
        "seed": int(seed),
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
) -> dict[str, float]:
    """:func:`_evaluate_model` holding the lock of its outputs: one run per model/task/seed at a time (a second
    one waits with ``wait``, else stops naming the holder). ``name`` must be a plain name (no path)."""
    from rokd import io

    from rokd.errors import CorruptFileError

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    resolved = resolve_model(model, prof, name)
    local = Path(resolved.name_or_path)
    problem = io.weights_problem(local) if (local / "model.safetensors").is_file() else None
    if problem:  # a truncated or altered model is named here, not deep inside from_pretrained
        raise CorruptFileError(local, "model folder", "delete it and rebuild it (`rokd pipeline` or the step that "
                               "made it)", problem)
    results = Path(results_dir) if results_dir is not None else default_results_dir(prof.name)
    out = run_paths(results, resolved.name, task, seed)["predictions"]
    with io.lock(out.parent / f".{out.stem}.lock", f"the evaluation {resolved.name} / {task} / seed {seed}", wait=wait,
                 hint=", or rerun with --wait"):
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
    log: Callable[[str], None] | None = print,
) -> dict[str, float]:
    """Fine-tune ``model`` (registry key or local HF dir) on ``task`` with ``seed``; return TEST metrics.

    Idempotent: when the outputs exist with the same resolved config they are reused (and their rows
    re-merged into ``scores.csv``). ``dataset`` (a DatasetDict in the ``rokd.data`` layout) and
    ``results_dir`` override the data layer and ``results/<profile>`` (tests use both).
    """
    import torch

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {list(ALL_TASKS)}")
    cfg = prof.evaluate
    resolved = resolve_model(model, prof, name)
    results = Path(results_dir) if results_dir is not None else default_results_dir(prof.name)
    paths = run_paths(results, resolved.name, task, seed)
    run_config = resolved_run_config(prof, resolved, task, seed)

    if not force and paths["run"].exists() and paths["predictions"].exists():
        previous = json.loads(paths["run"].read_text(encoding="utf-8"))
        if previous.get("config") == run_config:
            merge_scores(scores_path(results), resolved.name, task, seed, previous["metrics"])
            if log:
                log(f"{resolved.name} / {task} / seed {seed}: up to date (reusing {paths['run'].name})")
            return previous["metrics"]

    from rokd.runinfo import RunInfo

    info = RunInfo(profile=prof.name, step=f"evaluate {resolved.name} {task}", seed=int(seed))
    t0 = time.perf_counter()
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
        raise ValueError(f"task {task!r}: an empty split after selection (train {len(train.features)}, "
                         f"validation {len(val.features)}, test {len(test.features)})")
    t_data = time.perf_counter() - t0

    device = _device(prof)
    threads_before = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _fit_and_write(prof, resolved, task, seed, dd, inventory, train, val, test, t0, t_data,
                              device, info, paths, run_config, results, log)
    finally:
        torch.set_num_threads(threads_before)


def _fit_and_write(prof, resolved, task, seed, dd, inventory, train, val, test, t0, t_data, device, info, paths,
                   run_config, results, log) -> dict[str, float]:
    import torch

    cfg = prof.evaluate
    model_names = inventory.model_names if inventory is not None else None  # the task head's classes
    label_names = list(inventory.source_names) if inventory is not None else None  # the dataset's labels
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # the new head's initialisation depends on the seed
    task_model = build_task_model(resolved.name_or_path, task, model_names).to(device)
    best_state, history = train_and_select(task_model, train, val, task, model_names, cfg, seed, device, log=log)
    task_model.load_state_dict(best_state)
    t_train = time.perf_counter() - t0 - t_data

    # The test split is run exactly once, with the selected state.
    outputs = predict(task_model, test, task, cfg.batch_size * 2, device)
    pred, probs = outputs_to_predictions(outputs, task)
    if inventory is not None:
        pred, probs = inventory.to_source(pred, probs)  # dataset ids: a tag outside the inventory is an error
    metrics = compute_metrics(task, test.gold, pred, label_names, test.row_ids)
    info.finish()

    meta = {
        "model": resolved.name,
        "name_or_path": resolved.name_or_path,
        "task": task,
        "seed": int(seed),
        "profile": prof.name,
        "label_scheme": "BIO2" if task == "ner" else ("score 0-5" if task in REGRESSION_TASKS else "class ids"),
        "rows": "one per word, predicted at its first sub-word" if task in TAGGING_TASKS else "one per example",
        "max_length": cfg.max_length,
    }
    save_predictions(
        Predictions(ids=np.asarray(test.row_ids), gold=test.gold, pred=pred, probs=probs,
                    label_names=label_names if probs is not None else None, meta=meta),
        paths["predictions"],
    )
    best = max((h for h in history if h.get("best")), key=lambda h: h["step"])
    record = {
        "config": run_config,
        "metrics": metrics,
        "headline_metric": headline_metric(task),
        "selected": {"step": best["step"], "epoch": best["epoch"], "val_" + headline_metric(task): best["val_" + headline_metric(task)]},
        "history": history,
        "max_length": cfg.max_length,
        "labels": inventory.record(test.gold) if inventory is not None else None,
        "sizes": {
            s: {"examples": e.n_examples, "rows": len(e.row_ids), "features": len(e.features),
                "truncated_or_split": e.n_truncated, "available": len(dd[k])}
            for s, e, k in (("train", train, "train"), ("validation", val, "validation"), ("test", test, "test"))
        },
        "provenance": _provenance(dd),
        "timing_s": {"data": round(t_data, 2), "train_and_select": round(t_train, 2), "total": info.wall_time_s},
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "runinfo": info.to_dict(),
    }
    save_config(run_config, paths["config"])
    tmp = paths["run"].with_name(paths["run"].name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(paths["run"])
    merge_scores(scores_path(results), resolved.name, task, seed, metrics)
    if log:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        log(f"{resolved.name} / {task} / seed {seed}: {shown} ({info.wall_time_s:.1f} s)")
    return metrics


def evaluate_all(
    profile: str | Profile,
    model: str,
    tasks: list[str] | None = None,
    seeds: list[int] | None = None,
    **kwargs,
):
    """Every task x seed of ``model`` (defaults: the profile's); a DataFrame of the TEST metrics."""
    import pandas as pd

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
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
        raise FileNotFoundError(f"no run record {path}; run `rokd evaluate --profile {profile} --model {model} --task {task} --seed {seed}`")
    return json.loads(path.read_text(encoding="utf-8"))

