"""Controls: models fine-tuned exactly like the teachers and students, built to be compared with them.

- ``control-random-init`` (built here): the cased teacher's ``config.json`` and tokenizer, weights drawn
  by the model's own initialiser (``AutoModelForMaskedLM.from_config``) under a fixed seed
  (``teachers.seed``). Teacher minus this control is what pretraining gave: only that gap can be
  transferred by distillation.
- ``control-init-only``: :func:`rokd.distill.student.build_init_only_control` (the distillation step's
  initialisation, without the distillation).

A control lives in ``artifacts/<profile>/controls/<key>/`` (``save_pretrained``, safetensors, plus
``control.json``: what it was built from). It is rebuilt only when ``control.json`` would change (e.g.
the teacher was rebuilt) or its weights are damaged, so its files, and so the fine-tuning runs keyed on
them, stay put otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from rokd import io
from rokd.models.registry import CONTROL_OF, load_tokenizer, resolve
from rokd.spec import RANDOM_INIT_CONTROL

CONTROL_FILE = "control.json"
FORMAT_VERSION = 1


def source_fingerprint(profile: Any, key: str, files: tuple[str, ...]) -> str:
    """``hub:<id>`` for a hub model; else the sha256 of the given files of its folder (those that exist)."""
    from rokd.models.teachers import file_sha256

    ref = resolve(key, profile)
    if ref.source == "hub":
        return f"hub:{ref.name_or_path}"
    folder = Path(ref.name_or_path)
    present = [f for f in files if (folder / f).is_file()]
    if not present:
        raise FileNotFoundError(f"{key}: none of {list(files)} in {folder}; build it first (`rokd teachers build`)")
    return ";".join(f"{f}:{file_sha256(folder / f)[:16]}" for f in present)


def is_current(folder: Path, record: dict) -> bool:
    """Built from the same sources and sound: damaged weights make a control rebuilt, like a teacher or student."""
    path = folder / CONTROL_FILE
    if not (folder / "config.json").is_file() or not path.is_file():
        return False
    return json.loads(path.read_text(encoding="utf-8")) == record and io.weights_problem(folder) is None


def save_control(model, tokenizer, out_dir: str | Path, record: dict) -> Path:
    """``save_pretrained`` model + tokenizer + ``control.json`` into ``out_dir`` atomically (:func:`rokd.io.save_model`;
    controls saved before rokd marked its folders are recognised by their ``control.json``)."""
    control = json.dumps(record, indent=2) + "\n"
    return io.save_model(
        out_dir, model, tokenizer, f"the control {record['control']}", {CONTROL_FILE: control}, (CONTROL_FILE,)
    )


def random_init_model(config, seed: int):
    """A masked LM of ``config`` with freshly initialised weights; the global RNG is left untouched."""
    import torch
    from transformers import AutoModelForMaskedLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return AutoModelForMaskedLM.from_config(config)


def build_random_init_control(profile: Any, *, force: bool = False, log: Callable[[str], None] | None = print) -> Path:
    """``artifacts/<profile>/controls/control-random-init``: the cased teacher's architecture, random weights."""
    from transformers import AutoConfig

    from rokd.profiles import resolve_profile

    prof = resolve_profile(profile)
    key = RANDOM_INIT_CONTROL
    teacher = CONTROL_OF[key]
    out = Path(resolve(key, prof).name_or_path)
    tref = resolve(teacher, prof)
    record = {
        "control": key,
        "format_version": FORMAT_VERSION,
        "profile": prof.name,
        "built_from": teacher,
        "weights": "random (AutoModelForMaskedLM.from_config, the architecture's own initialiser)",
        "seed": int(prof.teachers.seed),
        # config and tokenizer only: the teacher's weights are not used
        "source_fingerprint": source_fingerprint(prof, teacher, ("config.json", "tokenizer.json", "vocab.txt")),
    }
    if not force and is_current(out, record):
        return out
    config = AutoConfig.from_pretrained(tref.name_or_path, trust_remote_code=False)
    model = random_init_model(config, record["seed"])
    save_control(model, load_tokenizer(tref), out, record)
    if log:
        log(f"{key}: built {out} (the {teacher} architecture and tokenizer, random weights, seed {record['seed']})")
    return out
