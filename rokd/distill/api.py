"""Distil a student of your own: any teachers (local folders or hub IDs), any tokenizer family, your corpus.

From Python::

    from rokd.distill import distill
    distill(teachers=["dumitrescustefan/bert-base-romanian-cased-v1", "xlm-roberta-base"],
            corpus=["my_corpus/"], output_dir="students/mine", steps=2000)

From the command line (the same options; ``rokd distill --help``)::

    rokd distill --teacher dumitrescustefan/bert-base-romanian-cased-v1 --teacher xlm-roberta-base \\
                 --corpus my_corpus/ --output-dir students/mine --steps 2000

or from a YAML spec (:class:`DistillSpec`; command-line options override its fields)::

    rokd distill --spec my_student.yaml

The first teacher gives the student its tokenizer and initial weights: a BERT teacher gets a DistilBERT
student (the paper's recipe), another encoder family its own architecture with fewer layers
(:func:`rokd.distill.student.make_student`). Teachers with other tokenizers -- WordPiece, SentencePiece,
byte-level BPE, cased or not -- join the ensemble through the cross-tokenizer mechanism of
:mod:`rokd.distill.ensemble`; the run's log and ``summary.json`` report, per such teacher, the share of
masked positions it covered and of its probability mass that reached the student's vocabulary.

The corpus is one sentence per line: text files, or folders whose ``*.txt`` files are read (sorted,
recursively). ``heldout_lines`` lines chosen by ``seed`` are kept out of training and measure the
held-out masked-word accuracy of the student and its teachers. The training settings come from a
profile's ``distill:`` section (``profile``; default: rokd's defaults, :class:`rokd.profiles.DistillConfig`),
overridden by the spec's fields. Everything else -- resuming, checkpoints, the resolved config, several
GPUs with ``accelerate launch`` -- is :func:`rokd.distill.distiller.distill_student`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from rokd import io
from rokd.config import ConfigError, command_flags, load_config, save_config
from rokd.distill.distiller import DistillOverrides

SPEC_FILE = "distill_spec.yaml"  # the spec of a run, written beside the student


@dataclass(kw_only=True)
class DistillSpec(DistillOverrides):
    """One student of your own (round-trips through YAML / JSON with :mod:`rokd.config`).

    Besides the fields below, every field of :class:`~rokd.distill.distiller.DistillOverrides` (the objective:
    ``strategy``, ``teacher_weights``, ``temperature``, ``alpha_ce`` ...; the budget: ``steps``, ``lr``,
    ``batch_size`` ...; ``student_layers`` or ``student_depth``); ``None`` fields take the value of the base
    profile's ``distill:`` section. ``seed`` also chooses the held-out lines.
    """

    teachers: list[str]  # local folders or hub IDs (registry keys work too); the first gives the tokenizer
    corpus: list[str]  # text files (one sentence per line) or folders of .txt files
    output_dir: str
    profile: str | None = None  # base settings: a profile name or YAML path (None: rokd's defaults)
    device: str | None = None  # "auto" | "cpu" | "cuda" (None: the profile's)
    precision: str | None = None  # "auto" | "fp32" | "bf16" | "fp16" (None: the profile's)
    heldout_lines: int = 1000  # held out of training for the MLM accuracy (at most a tenth of the corpus)
    name: str | None = None  # the student's name in logs and summaries (None: the output folder's name)


def load_spec(path: str | Path) -> DistillSpec:
    """A :class:`DistillSpec` from a YAML or JSON file (unknown fields are an error naming them)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"spec file not found: {path}")
    return load_config(DistillSpec, path)


def corpus_sources(corpus: list[str | Path]) -> list[Path]:
    """The text files of ``corpus`` (files as given; folders: their ``*.txt`` files, sorted, recursively)."""
    if not corpus:
        raise ConfigError("corpus: give at least one text file or folder of .txt files")
    files: list[Path] = []
    for item in corpus:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise ConfigError(f"corpus folder {path} has no .txt file; give text files, one sentence per line")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"corpus: {path} is neither a file nor a folder")
    return files


def prepare_corpus(
    corpus: list[str | Path], heldout_lines: int, seed: int, cache: Path | None = None
) -> tuple[Path, Path]:
    """``(train.txt, heldout.txt)``: the corpus' non-empty lines, ``heldout_lines`` of them (at most a tenth,
    chosen by ``seed``) held out. Written once under the cache folder, keyed by the files' paths, sizes
    and modification times, the held-out size and the seed."""
    from rokd.paths import cache_dir

    files = corpus_sources(corpus)
    key = hashlib.sha256(
        json.dumps(
            [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files] + [heldout_lines, seed]
        ).encode()
    ).hexdigest()[:16]
    folder = (cache or cache_dir() / "corpora") / key
    train, heldout = folder / "train.txt", folder / "heldout.txt"
    if train.is_file() and heldout.is_file():
        return train, heldout
    lines: list[str] = []
    for f in files:
        try:
            with f.open(encoding="utf-8") as fh:
                lines.extend(s for s in (ln.strip() for ln in fh) if s)
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"corpus file {f} is not UTF-8 text ({e.reason} at byte {e.start}); convert it to UTF-8"
            ) from e
    if len(lines) < 2:
        raise ConfigError(
            f"corpus {[str(f) for f in files]} has {len(lines)} non-empty line(s); distillation needs more text"
        )
    n_heldout = max(1, min(int(heldout_lines), len(lines) // 10))
    held = set(random.Random(seed).sample(range(len(lines)), n_heldout))
    folder.mkdir(parents=True, exist_ok=True)
    for path, chosen in (
        (heldout, [ln for i, ln in enumerate(lines) if i in held]),
        (train, [ln for i, ln in enumerate(lines) if i not in held]),
    ):
        io.atomic_write_text(path, "\n".join(chosen) + "\n")
    return train, heldout


def spec_profile(spec: DistillSpec):
    """The profile the run uses: the base profile (or rokd's defaults) with the spec's device, precision, seed."""
    from rokd.profiles import DistillConfig, Profile, load_profile

    base = load_profile(spec.profile) if spec.profile else Profile(name="custom", description="rokd's default settings")
    # The paper profile uses the authors' released students (distill.source: hub); a student of one's
    # own is always distilled.
    distill_cfg = dataclasses.replace(base.distill, source="build")
    if spec.precision is not None:
        distill_cfg = dataclasses.replace(distill_cfg, precision=spec.precision)
    if spec.seed is not None:
        distill_cfg = dataclasses.replace(distill_cfg, seed=int(spec.seed))
    assert isinstance(distill_cfg, DistillConfig)
    return dataclasses.replace(base, distill=distill_cfg, device=spec.device or base.device)


def distill(
    spec: DistillSpec | None = None, /, *, resume: bool = True, progress: bool = True, log=print, **fields
) -> Path:
    """Distil the student a :class:`DistillSpec` describes (or its fields as keyword arguments); returns
    its folder: the model and tokenizer (``AutoModelForMaskedLM`` / ``pipeline("fill-mask")`` load it),
    ``summary.json`` (coverage per cross-tokenizer teacher, held-out accuracy, sizes), ``train_log.jsonl``
    and ``distill_config.json``.

    ``distill(teachers=[...], corpus=[...], output_dir=...)`` and ``distill(DistillSpec(...))`` are the same;
    the spec is saved beside the student as ``distill_spec.yaml`` (``rokd distill --spec`` reruns it).
    """
    from rokd.distill.distiller import distill_student

    if spec is None:
        for key in ("teachers", "corpus"):
            if isinstance(fields.get(key), (str, Path)):
                fields[key] = [fields[key]]
        try:
            spec = DistillSpec(**{k: (str(v) if k == "output_dir" else v) for k, v in fields.items()})
        except TypeError as e:
            raise ConfigError(f"distill: {e}") from e
    elif fields:
        spec = dataclasses.replace(spec, **fields)
    if not spec.teachers:
        raise ConfigError("teachers: give at least one teacher (a local folder or a hub ID)")
    teachers = [str(Path(t).expanduser().resolve()) if Path(t).expanduser().is_dir() else str(t) for t in spec.teachers]
    prof = spec_profile(spec)
    out = Path(spec.output_dir).expanduser()
    from rokd.distill.distiller import CONFIG_FILE, STUDENT_WHAT

    io.check_replaceable(
        out, STUDENT_WHAT, legacy=(CONFIG_FILE,)
    )  # before the corpus is prepared (distill_student re-checks)
    train, heldout = prepare_corpus(list(spec.corpus), spec.heldout_lines, prof.distill.seed)
    overrides = DistillOverrides(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(DistillOverrides)})
    overrides.teachers = teachers
    from rokd.models.registry import STUDENTS

    name = spec.name or out.name
    if name in STUDENTS:  # a paper student's key would select the paper's recipe and teachers
        name += "-own"
    path = distill_student(
        prof, name, overrides, resume=resume, output_dir=out, corpus=(train, heldout), progress=progress, log=log
    )
    save_config(dataclasses.replace(spec, teachers=teachers), Path(path) / SPEC_FILE)  # what the user asked for
    return path


_NOT_FLAGS = ("teachers", "corpus", "output_dir", "device", "precision", "name")  # given above, or not on the CLI


def command_line(spec: DistillSpec) -> str:
    """The ``rokd distill`` command that runs ``spec`` (fields left at their defaults are not repeated)."""
    import shlex

    defaults = DistillSpec(teachers=[], corpus=[], output_dir="")
    parts = ["rokd distill"]
    parts += [f"--teacher {shlex.quote(t)}" for t in spec.teachers]
    parts += [f"--corpus {shlex.quote(c)}" for c in spec.corpus]
    parts.append(f"--output-dir {shlex.quote(spec.output_dir)}")
    for name in [f.name for f in dataclasses.fields(DistillSpec)]:
        value = getattr(spec, name)
        if name in _NOT_FLAGS or value is None or value == getattr(defaults, name):
            continue
        if name == "student_layers":
            parts.append(f"--student-layers {','.join(str(x) for x in value)}")
        else:
            flag, *values = command_flags(spec, [name], show=str)
            parts.append(" ".join([flag, *(shlex.quote(v) for v in values)]))
    return " \\\n    ".join(parts)
