"""Miniature Romanian teachers: a WordPiece tokenizer and a BERT masked LM pretrained from scratch.

``build_teachers(profile)`` builds ``artifacts/<profile>/teachers/<key>/`` for both teacher keys:

- ``bert-base-ro`` mirrors ``dumitrescustefan/bert-base-romanian-cased-v1`` (cased tokenizer, the
  ``teachers.cased`` shape);
- ``robert-base`` mirrors ``readerbench/RoBERT-base`` (uncased tokenizer keeping diacritics, the
  ``teachers.uncased`` shape, a smaller vocabulary in the real 37,788 : 50,000 ratio).

Pretraining uses the shared MLM pieces (``rokd.mlm``: whole-word masking with 80/10/10, logits only at
masked positions, length-grouped batches) and the shared loop (``rokd.trainer``: AdamW, warmup,
checkpoints, a JSONL log with tokens/s). Each folder holds the model (``save_pretrained``,
safetensors), its tokenizer, ``train_log.jsonl``, the resolved build config ``teacher_config.json``
(the Hugging Face ``config.json`` is the model's) and ``quality.json``.

The build is idempotent: a folder whose ``teacher_config.json`` equals the config about to be built
(shape, training settings, corpus fingerprint) and whose weights match their ``weights.sha256`` is kept as
is; a truncated or altered ``model.safetensors`` counts as "not built". The folder is written in a temp
folder beside it and renamed into place; it carries rokd's output marker, and a folder at that place that
rokd did not make is refused, never deleted. One build per teacher at a time (a lock file beside it).
After a NaN loss, lower ``teachers.lr`` and pass ``resume_lr=True`` (``--resume-lr``) to resume from the
last good checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rokd import io
from rokd.config import config_text, save_config, to_dict
from rokd.io import file_sha256
from rokd.models.registry import TEACHER_SHAPE, TEACHERS, resolve
from rokd.paths import artifacts_dir
from rokd.profiles import BertShape, Profile, TeachersConfig, resolve_profile

TEACHER_CONFIG_FILE = "teacher_config.json"
QUALITY_FILE = "quality.json"
TRAIN_LOG_FILE = "train_log.jsonl"


@dataclass
class TeacherBuild:
    """The resolved config of one teacher build: written beside the model, compared for idempotence."""

    key: str
    profile: str
    shape: BertShape
    training: dict[str, Any]
    corpus_train: str
    corpus_sha256: str
    heldout_sha256: str
    format_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def corpus_files(profile: str | Profile) -> tuple[Path, Path]:
    """``(train.txt, heldout.txt)`` of the profile's corpus, built by ``rokd.data`` when missing."""
    from rokd.data.corpus import ensure_corpus

    prof = resolve_profile(profile)
    out = Path(ensure_corpus(prof))
    folder = out if out.is_dir() else out.parent
    train, heldout = folder / "train.txt", folder / "heldout.txt"
    for f in (train, heldout):
        if not f.exists():
            raise FileNotFoundError(f"corpus file missing after ensure_corpus: {f}")
    return train, heldout


# Settings added after teachers were first built, with the value those builds trained with: left out of the
# build stamp at that value, so a teacher built before the setting existed stays up to date.
_UNSTAMPED_DEFAULTS = {"max_grad_norm": 1.0}


def training_settings(cfg: TeachersConfig) -> dict[str, Any]:
    """The fields of the teachers section that change training (not the shapes, not the hub IDs)."""
    from rokd.mlm import masking_stamp

    # the worker count is not a setting of the training: the masking mode it implies is (one record, as a
    # distillation's)
    skip = {"source", "cased", "uncased", "hub_cased", "hub_uncased", "data_workers"}
    settings = {k: v for k, v in to_dict(cfg).items() if k not in skip}
    settings = {k: v for k, v in settings.items() if not (k in _UNSTAMPED_DEFAULTS and v == _UNSTAMPED_DEFAULTS[k])}
    return {**settings, **masking_stamp(cfg.data_workers)}


def teacher_shape(cfg: TeachersConfig, key: str) -> BertShape:
    return getattr(cfg, TEACHER_SHAPE[key])


def bert_config(shape: BertShape, tokenizer):
    """A ``BertConfig`` for ``shape`` with the tokenizer's real vocabulary size and special ids."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )


def new_teacher(shape: BertShape, tokenizer, seed: int = 0):
    """A randomly initialised ``BertForMaskedLM`` of ``shape`` (SDPA attention)."""
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(seed)
    return BertForMaskedLM(bert_config(shape, tokenizer))


def pretrain_mlm(
    model,
    tokenizer,
    train_txt: str | Path,
    cfg: TeachersConfig,
    work_dir: str | Path,
    *,
    device: str = "cpu",
    resume: bool = True,
    heldout_txt: str | Path | None = None,
    allow_lr_change: bool = False,
    progress: bool = False,
) -> Path:
    """Pretrain ``model`` in place on ``train_txt`` with the shared MLM pieces and training loop.

    Returns the path of the JSONL training log. ``work_dir`` holds the token cache, checkpoints and log.
    With ``cfg.curve_every`` > 0 and ``heldout_txt``, the log's ``eval_heldout_mlm_accuracy`` entries
    trace the learning curve (held-out whole-word MLM accuracy against steps).
    """
    import torch

    from rokd import mlm, trainer

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    corpus = mlm.tokenize_lines(str(train_txt), tokenizer, cfg.max_length, cache_path=str(work_dir / "tokens.npz"))
    sampler = mlm.LengthGroupedBatchSampler(corpus.lengths, cfg.batch_size, seed=cfg.seed)
    # workers (a GPU run) mask each batch from (seed, batch number): the build stamp records the masking mode
    collator = mlm.WholeWordMaskCollator(
        tokenizer, cfg.mlm_probability, seed=cfg.seed, per_batch_seed=cfg.data_workers > 0
    )
    stream = mlm.BatchStream(corpus, sampler, collator, num_workers=cfg.data_workers)
    net = mlm.SparseMLM(model)

    def step_fn(net, batch):
        out = net(batch["input_ids"], batch["attention_mask"], batch["labels"])
        return {"loss": torch.nn.functional.cross_entropy(out.logits.float(), out.targets)}

    evaluate, heldout = None, None
    if cfg.curve_every > 0 and heldout_txt is not None:
        from rokd.models.quality import mlm_accuracy, read_lines

        heldout = read_lines(heldout_txt, limit=cfg.curve_lines, seed=cfg.seed)

        precision = trainer.resolve_mixed_precision(cfg.precision, cpu=device == "cpu")

        def evaluate(net):  # the learning curve: same lines, same masks at every point
            return {
                "heldout_mlm_accuracy": mlm_accuracy(
                    net.model,
                    tokenizer,
                    heldout,
                    max_length=cfg.max_length,
                    mlm_probability=cfg.mlm_probability,
                    seed=cfg.seed,
                    precision=precision,
                )["mlm_accuracy"]
            }

    tcfg = trainer.TrainerConfig(
        output_dir=str(work_dir / "run"),
        **cfg.trainer_settings(),
        log_every=max(1, cfg.steps // 300),
        cpu=device == "cpu",
        progress=progress,
        allow_lr_change=allow_lr_change,
    )
    try:
        trainer.train(
            net,
            step_fn,
            stream,
            tcfg,
            resume=resume,
            count_tokens=mlm.count_tokens,
            evaluate=evaluate,
            eval_every=cfg.curve_every,
        )
    finally:
        stream.close()  # stop the workers before the quality measures
    return Path(tcfg.output_dir) / TRAIN_LOG_FILE


read_train_log = io.read_jsonl  # records of a ``train_log.jsonl``


def is_built(folder: Path, build: TeacherBuild) -> bool:
    """True when ``folder`` holds a finished teacher built from exactly ``build``."""
    cfg_file = folder / TEACHER_CONFIG_FILE
    needed = [
        cfg_file,
        folder / "config.json",
        folder / "model.safetensors",
        folder / QUALITY_FILE,
        folder / TRAIN_LOG_FILE,
    ]
    if not all(p.exists() for p in needed):
        return False
    return io.read_json(cfg_file) == to_dict(build) and io.weights_problem(folder) is None


def build_teacher(
    profile: str | Profile,
    key: str,
    *,
    force: bool = False,
    device: str | None = None,
    log=print,
    wait: bool = True,
    resume_lr: bool = False,
    progress: bool = False,
) -> Path:
    """Build one miniature teacher (tokenizer, pretraining, quality) into its registry folder.

    Skipped when the folder already holds a teacher built from the same resolved config and corpus.
    Concurrent builders of the same teacher serialise on a file lock; the second one then finds it built
    (``wait=False``: it stops instead, naming the holder). ``resume_lr``: resume the interrupted run's
    checkpoints although ``teachers.lr`` changed (after a NaN loss). ``progress``: a progress bar of the
    pretraining steps (the command line shows one in a terminal).
    """
    prof = resolve_profile(profile)
    cfg = prof.teachers
    if key not in TEACHERS:
        raise ValueError(f"unknown teacher key {key!r}; teachers are {list(TEACHERS)}")
    ref = resolve(key, prof)
    if ref.source != "local":
        raise ValueError(
            f"profile {prof.name!r} uses hub teachers (teachers.source = {cfg.source!r}); nothing to build for {key!r}"
        )
    folder = ref.path
    train_txt, heldout_txt = corpus_files(prof)
    shape = teacher_shape(cfg, key)
    build = TeacherBuild(
        key=key,
        profile=prof.name,
        shape=shape,
        training=training_settings(cfg),
        corpus_train=str(train_txt),
        corpus_sha256=file_sha256(train_txt),
        heldout_sha256=file_sha256(heldout_txt),
    )
    if not force and is_built(folder, build):
        log(f"[teachers] {key}: up to date in {folder}")
        return folder
    io.check_replaceable(folder, f"the teacher {key}", legacy=(TEACHER_CONFIG_FILE,))  # before hours of training
    # Another process (a notebook, a CLI run) may be building the same teacher: wait for it, then re-check.
    with io.lock(
        folder.parent / f".{folder.name}.lock",
        f"the teacher folder {folder}",
        wait=wait,
        hint=", or rerun with --wait",
        log=log,
    ):
        if not force and is_built(folder, build):
            log(f"[teachers] {key}: built by another process in {folder}")
            return folder
        try:
            return _build_locked(
                prof,
                key,
                folder,
                build,
                train_txt,
                heldout_txt,
                device or _device(prof),
                log,
                force,
                resume_lr,
                progress=progress,
            )
        except Exception as e:
            from rokd.trainer import NonFiniteLossError

            if not isinstance(e, NonFiniteLossError):
                raise
            where = str(profile) if not isinstance(profile, Profile) and Path(str(profile)).suffix else None
            yaml_text = where or f"a copy of rokd/profiles/{prof.name}.yaml (keep its name: {prof.name})"
            raise e.advise(
                f"set teachers.lr to {{lr}} in {yaml_text}, then run `rokd teachers build --profile "
                f"{where or '<that file>'} --key {key} --resume-lr`",
                f"set teachers.lr to {{lr}} in {yaml_text}, then run `rokd teachers build --profile "
                f"{where or '<that file>'} --key {key} --force`",
            ) from None


def _same_build(saved, build: TeacherBuild, ignore_lr: bool) -> bool:
    now = to_dict(build)
    if ignore_lr and isinstance(saved, dict) and isinstance(saved.get("training"), dict):
        saved = {**saved, "training": {**saved["training"], "lr": None}}
        now = {**now, "training": {**now["training"], "lr": None}}
    return saved == now


def _build_locked(
    prof: Profile,
    key: str,
    folder: Path,
    build: TeacherBuild,
    train_txt: Path,
    heldout_txt: Path,
    device: str,
    log,
    force: bool = False,
    resume_lr: bool = False,
    *,
    progress: bool = False,
) -> Path:
    from rokd.precision import set_threads

    cfg = prof.teachers
    threads = set_threads(cfg.threads)  # this process builds teachers: the count stays for the quality measures too
    work = _pretraining_folder(prof, key, build, force, resume_lr)
    t0 = time.perf_counter()
    tokenizer = _teacher_tokenizer(work / "tokenizer", key, build.shape, train_txt, log)
    model = new_teacher(build.shape, tokenizer, seed=cfg.seed)
    n_params = io.count_params(model)
    log(
        f"[teachers] {key}: pretraining BertForMaskedLM ({n_params / 1e6:.2f} M parameters, {cfg.steps} steps) on "
        f"{device}"
    )
    t_train = time.perf_counter()
    log_path = pretrain_mlm(
        model,
        tokenizer,
        train_txt,
        cfg,
        work,
        device=device,
        heldout_txt=heldout_txt,
        allow_lr_change=resume_lr,
        progress=progress,
    )
    train_s = time.perf_counter() - t_train
    model = model.to("cpu").eval()
    log(f"[teachers] {key}: measuring quality on held-out text")
    quality = _teacher_quality(model, tokenizer, cfg, train_txt, heldout_txt, log_path)
    quality.update(
        key=key,
        profile=prof.name,
        parameters=n_params,
        train_wall_s=round(train_s, 1),
        build_wall_s=round(time.perf_counter() - t0, 1),
        device=device,
        torch_threads=threads,
    )
    _save_teacher(folder, key, model, tokenizer, log_path, quality, build)
    log(f"[teachers] {key}: done in {time.perf_counter() - t0:.0f} s -> {folder}")
    return folder


def _pretraining_folder(prof: Profile, key: str, build: TeacherBuild, force: bool, resume_lr: bool) -> Path:
    """The pretraining run's folder, stamped with ``build``; a stale run (other config), or any run when
    forced, is removed first, so that only a run of this very build is ever resumed."""
    work = artifacts_dir(prof.name) / "runs" / "teachers" / key
    stamp = work / TEACHER_CONFIG_FILE
    if work.exists() and (force or not _same_build(io.read_json(stamp), build, ignore_lr=resume_lr)):
        io.remove_dir(work, f"the pretraining run of the teacher {key}", legacy=(TEACHER_CONFIG_FILE,))
    io.mark_output(work, f"the pretraining run of the teacher {key}")
    save_config(build, stamp)
    return work


def _teacher_tokenizer(tok_dir: Path, key: str, shape, train_txt: Path, log):
    """The run's WordPiece tokenizer: an interrupted run's own (its token ids), else a new one trained and saved."""
    from rokd.models.tokenizers import save_tokenizer, train_wordpiece

    if (tok_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        log(f"[teachers] {key}: resuming with the tokenizer of the interrupted run")
        return AutoTokenizer.from_pretrained(str(tok_dir))
    log(f"[teachers] {key}: training a WordPiece tokenizer (vocab {shape.vocab_size}, lowercase={shape.lowercase})")
    tokenizer = train_wordpiece(
        files=[train_txt],
        vocab_size=shape.vocab_size,
        lowercase=shape.lowercase,
        model_max_length=shape.max_position_embeddings,
    )
    save_tokenizer(tokenizer, tok_dir)
    return tokenizer


def _heldout_quality(model, tokenizer, cfg, train_txt: Path, heldout_txt: Path, precision=None) -> dict:
    """:func:`rokd.models.quality.measure_quality` on the profile's held-out lines (unigram baseline from the
    training lines), with the ``teachers:`` section's settings."""
    from rokd.models.quality import measure_quality, read_lines

    return measure_quality(
        model,
        tokenizer,
        read_lines(heldout_txt, limit=cfg.eval_lines, seed=cfg.seed),
        read_lines(train_txt),
        pppl_lines=cfg.pppl_lines,
        max_length=cfg.max_length,
        mlm_probability=cfg.mlm_probability,
        seed=cfg.seed,
        precision=precision,
    )


def _teacher_quality(model, tokenizer, cfg, train_txt: Path, heldout_txt: Path, log_path: Path) -> dict:
    """Held-out quality of the pretrained model (on the CPU) plus what its training log says: the
    precision it trained in, its held-out learning curve and its mean throughput."""
    from rokd.trainer import resolve_mixed_precision

    precision = resolve_mixed_precision(cfg.precision, cpu=True)
    quality = _heldout_quality(model, tokenizer, cfg, train_txt, heldout_txt, precision=precision)
    records = read_train_log(log_path)
    if records:
        # every precision / machine / allocator of a resumed run's sittings (one line each in the log)
        quality["precision"] = "+".join(sorted({r.get("precision", "fp32") for r in records if "loss" in r}))
        machines = sorted({r["hardware"] for r in records if r.get("hardware")})
        if machines:
            quality["hardware"] = "; ".join(machines)
        allocators = sorted({r["cpu_memory"] for r in records if r.get("cpu_memory")})
        if allocators:  # every allocator that served a sitting of a resumed run (rokd.precision.apply_cpu_memory)
            quality["cpu_memory"] = "; ".join(allocators)
        if records[-1].get("elapsed_s") is not None:  # the trainer's clock: every sitting of a resumed run
            quality["trained_s"] = round(float(records[-1]["elapsed_s"]), 1)
    curve = [
        {"step": r["step"], "heldout_mlm_accuracy": r["eval_heldout_mlm_accuracy"]}
        for r in records
        if r.get("eval_heldout_mlm_accuracy") is not None
    ]
    if curve:
        quality["learning_curve"] = curve
    tps = [r["tokens_per_s"] for r in records if r.get("tokens_per_s") is not None]
    if tps:
        quality["mean_tokens_per_s"] = round(sum(tps) / len(tps), 1)
    return quality


def _save_teacher(folder: Path, key: str, model, tokenizer, log_path: Path, quality: dict, build: TeacherBuild) -> None:
    """Swapped in whole by :func:`rokd.io.save_model`: a crash never leaves a half-written teacher."""
    extra = {
        TRAIN_LOG_FILE: log_path.read_text(encoding="utf-8"),
        QUALITY_FILE: json.dumps(quality, indent=2, sort_keys=True) + "\n",
        TEACHER_CONFIG_FILE: config_text(build, TEACHER_CONFIG_FILE),
    }
    io.save_model(folder, model, tokenizer, f"the teacher {key}", extra_files=extra, legacy=(TEACHER_CONFIG_FILE,))


def _device(prof: Profile) -> str:
    import torch

    if prof.device in ("cpu", "cuda"):
        return prof.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def build_teachers(
    profile: str | Profile,
    keys: list[str] | tuple[str, ...] | None = None,
    *,
    force: bool = False,
    log=print,
    wait: bool = True,
    resume_lr: bool = False,
    progress: bool = False,
) -> dict[str, Path]:
    """Build (or reuse) the profile's miniature teachers; returns ``{key: folder}``.

    Under a hub profile (``teachers.source: hub``) nothing is built and the hub IDs are returned as paths
    of their :class:`~rokd.models.registry.ModelRef` (``name_or_path``).
    """
    prof = resolve_profile(profile)
    keys = tuple(keys or TEACHERS)
    if prof.teachers.source == "hub":
        return {k: Path(resolve(k, prof).name_or_path) for k in keys}
    if prof.teachers.source != "build":
        raise ValueError(
            f"profile {prof.name!r}: teachers.source must be 'build' or 'hub', got {prof.teachers.source!r}"
        )
    return {
        k: build_teacher(profile, k, force=force, log=log, wait=wait, resume_lr=resume_lr, progress=progress)
        for k in keys
    }


def load_quality(folder: str | Path) -> dict:
    """The ``quality.json`` of a built teacher, with ``trained_s`` (training time over every sitting of a resumed
    run: the trainer's clock at its last step) read from its training log where the file predates it."""
    path = Path(folder) / QUALITY_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {QUALITY_FILE} in {folder}; build the teacher with `rokd teachers build`")
    quality = json.loads(path.read_text(encoding="utf-8"))
    if "trained_s" not in quality and (Path(folder) / TRAIN_LOG_FILE).exists():
        records = read_train_log(Path(folder) / TRAIN_LOG_FILE)
        if records and records[-1].get("elapsed_s") is not None:
            quality["trained_s"] = round(float(records[-1]["elapsed_s"]), 1)
    return quality


# Measures a quality.json must hold; an older file without one of them is re-measured by ensure_quality.
QUALITY_KEYS = ("mlm_accuracy", "pseudo_perplexity", "whole_word_pseudo_perplexity")


def ensure_quality(profile: str | Profile, key: str) -> dict:
    """A teacher's quality: its ``quality.json`` when complete, else measured now (and written)."""
    prof = resolve_profile(profile)
    ref = resolve(key, prof)
    path = ref.path / QUALITY_FILE if ref.source == "local" else None
    if path is not None and path.exists():
        quality = load_quality(ref.path)
        if all(k in quality for k in QUALITY_KEYS):
            return quality
    return teacher_quality(prof, key)


def teacher_quality(profile: str | Profile, key: str, *, write: bool = True) -> dict:
    """(Re-)measure a teacher's MLM accuracy and pseudo-perplexity on the profile's held-out corpus.

    Works for built and hub teachers (through the registry). For a built teacher the new numbers
    replace those in its ``quality.json`` (training fields are kept); for a hub teacher they are
    written to ``results/<profile>/teachers/<key>/quality.json``.
    """
    from rokd.models.registry import load_model, load_tokenizer
    from rokd.paths import results_dir

    prof = resolve_profile(profile)
    cfg = prof.teachers
    ref = resolve(key, prof)
    model = load_model(ref, head="mlm").to(_device(prof))  # first: an unreachable hub fails fast
    tokenizer = load_tokenizer(ref)
    train_txt, heldout_txt = corpus_files(prof)
    quality = _heldout_quality(model, tokenizer, cfg, train_txt, heldout_txt)
    quality.update(key=key, profile=prof.name, parameters=io.count_params(model))
    if write:
        if ref.source == "local":
            path = ref.path / QUALITY_FILE
            old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            quality = {**old, **quality}
        else:
            path = results_dir(prof.name) / "teachers" / key / QUALITY_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
        io.atomic_write_json(path, quality, sort_keys=True)
    return quality


__all__ = [
    "TeacherBuild",
    "build_teacher",
    "build_teachers",
    "new_teacher",
    "bert_config",
    "pretrain_mlm",
    "read_train_log",
    "load_quality",
    "corpus_files",
    "teacher_quality",
]
