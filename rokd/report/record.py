"""Where the results chapter's numbers come from: the splits each run used, and the compute behind them.

- :func:`split_provenance_table` / :func:`provenance_summary`: which splits were official, rebuilt or
  substitute, as recorded in each run's ``seed<k>.run.json``.
- :func:`pipeline_record`: one row per executed chapter (papermill's wall time, commit, hardware).
- :func:`compute_record`: all compute behind the numbers, wherever it ran: teacher builds
  (``quality.json``), distillations (``summary.json``) and every fine-tuning (``run.json``), including
  those made outside a chapter (a chapter that found its runs cached takes seconds).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from rokd import io
from rokd.models.registry import DISPLAY_NAMES, MODEL_KEYS, TEACHERS
from rokd.paper import COLUMN_TITLES, TASK_COLUMNS
from rokd.paths import artifacts_dir, results_dir


def _results(profile: str, results: str | Path | None) -> Path:
    return Path(results) if results is not None else results_dir(profile)


# ------------------------------------------------------------------------------------ provenance
def run_records(profile: str, results: str | Path | None = None) -> list[dict]:
    """Every ``seed<k>.run.json`` of the profile (one per model x task x seed)."""
    root = _results(profile, results) / "predictions"
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*/*/seed*.run.json"))]


def mixed_protocols(profile: str, results: str | Path | None = None) -> list[str]:
    """One line per task whose fine-tuned models were not all trained with the same protocol.

    A run record's ``config.evaluate`` (budget, learning rate, lengths, subsets) and ``protocol_version`` are
    its protocol. Comparing a model fine-tuned one way with a model fine-tuned another (a changed budget,
    some models re-run and some not yet) measures the protocols, not the models: the report says so, and
    ``rokd report --check`` fails on it. Baselines have no fine-tuning and are left out.
    """
    by_task: dict[str, dict[str, tuple[dict, dict[str, list[str]]]]] = {}
    for rec in run_records(profile, results):
        cfg = rec.get("config", {})
        if "baseline" in rec or "task" not in cfg:
            continue
        settings = {"protocol_version": cfg.get("protocol_version"), **cfg.get("evaluate", {})}
        key = json.dumps(settings, sort_keys=True)
        _, runs = by_task.setdefault(cfg["task"], {}).setdefault(key, (settings, {}))
        runs.setdefault(str(cfg.get("model")), []).append(str(cfg.get("seed")))
    lines = []
    for task in sorted(by_task, key=lambda t: TASK_COLUMNS.index(t) if t in TASK_COLUMNS else len(TASK_COLUMNS)):
        protocols = list(by_task[task].values())
        if len(protocols) < 2:
            continue
        groups = []
        for settings, runs in protocols:
            differs = sorted(k for k, v in settings.items() if any(o.get(k) != v for o, _ in protocols))
            models = ", ".join(f"{m} (seeds {' '.join(sorted(seeds))})" for m, seeds in sorted(runs.items()))
            groups.append(f"{models}: {', '.join(f'{k}={settings[k]}' for k in differs)}")
        lines.append(
            f"{COLUMN_TITLES.get(task, task)}: {len(protocols)} fine-tuning protocols among the runs: "
            + "; ".join(groups)
            + ". Re-run the odd ones out (`rokd evaluate`) before reading this task."
        )
    return lines


def split_provenance_table(profile: str, results: str | Path | None = None) -> pd.DataFrame:
    """Per task and split: official / rebuilt / substitute, source, note, and the examples used.

    Taken from the run records (what the evaluation actually used), one run per task.
    """
    rows, seen = [], set()
    # the five models' runs first: a baseline's record may not describe tokenized inputs
    records = sorted(run_records(profile, results), key=lambda r: r["config"].get("model") not in MODEL_KEYS)
    for rec in records:
        if "sizes" not in rec or "max_length" not in rec:
            continue
        task = rec["config"]["task"]
        if task in seen or "baseline" in rec:  # a baseline reads whole texts: not what the models were given
            continue
        seen.add(task)
        prov = rec.get("provenance") or {}
        for split in ("train", "validation", "test"):
            p = prov.get(split, {}) if isinstance(prov.get(split), dict) else {}
            size = rec["sizes"][split]
            rows.append(
                {
                    "task": COLUMN_TITLES.get(task, task),
                    "split": split,
                    "kind": p.get("kind", "unknown"),
                    "source": p.get("source", ""),
                    "note": p.get("note", ""),
                    "examples used": size["examples"],
                    "available": size["available"],
                    "max_length": rec["max_length"],
                    "truncated/split": size["truncated_or_split"],
                }
            )
    order = {COLUMN_TITLES[t]: i for i, t in enumerate(TASK_COLUMNS)}
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return df.sort_values(
        ["task", "split"],
        key=lambda c: c.map(order) if c.name == "task" else c.map({"train": 0, "validation": 1, "test": 2}),
    ).reset_index(drop=True)


def provenance_summary(prov: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """:func:`split_provenance_table` condensed: one row per task, 'kind (used / available)' per split,
    plus the notes as ``"TASK split: note"`` lines."""
    if prov.empty:
        return prov, []
    table = prov.pivot(index="task", columns="split", values="kind")
    for split in ("train", "validation", "test"):
        sub = prov[prov["split"] == split].set_index("task")
        table[split] = [
            f"{table.loc[t, split]} ({sub.loc[t, 'examples used']:,} of {sub.loc[t, 'available']:,})"
            for t in table.index
        ]
    order = [COLUMN_TITLES[t] for t in TASK_COLUMNS if COLUMN_TITLES[t] in table.index]
    table = table.loc[order, ["train", "validation", "test"]]
    table.columns.name = None
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in prov.itertuples():
        if r.note:
            grouped.setdefault((r.task, r.note), []).append(r.split)
    notes = [f"{task} {', '.join(splits)}: {note}" for (task, note), splits in grouped.items()]
    return table, notes


# ------------------------------------------------------------------------------- the run's record
def pipeline_record(profile: str, results: str | Path | None = None, upstream_of: str | None = None) -> pd.DataFrame:
    """One row per executed chapter notebook: what produced it, when, and how long it took.

    ``upstream_of``: only the steps that step depends on, directly or not (a chapter listing the runs
    its own numbers come from).

    Read from ``results/<profile>/notebooks/*.ipynb``: the wall time is papermill's (the whole notebook,
    kernel start included), the commit / hardware / torch come from the chapter's own
    :class:`~rokd.runinfo.RunInfo` line. Empty when the profile has no executed notebooks.
    """
    from rokd.pipeline import plan
    from rokd.runinfo import RunInfo

    nb_dir = _results(profile, results) / "notebooks"
    steps = plan(profile)
    if upstream_of is not None:
        by_name = {s.name: s for s in steps}
        if upstream_of not in by_name:
            raise ValueError(f"unknown step {upstream_of!r}; steps: {list(by_name)}")
        wanted, todo = set(), list(by_name[upstream_of].depends)
        while todo:
            name = todo.pop()
            if name not in wanted:
                wanted.add(name)
                todo += by_name[name].depends
        steps = [s for s in steps if s.name in wanted]
    rows = []
    for step in steps:
        path = nb_dir / f"{step.name}.ipynb"
        if not path.exists():
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        pm = nb.get("metadata", {}).get("papermill", {})
        info = None
        for cell in nb.get("cells", []):
            for out in cell.get("outputs", []):
                text = out.get("data", {}).get("text/markdown")
                if text and "**Produced by**" in "".join(text):
                    info = RunInfo.from_markdown("".join(text))
        rows.append(
            {
                "step": step.name,
                "started": pm.get("start_time", "")[:19].replace("T", " "),
                "wall_s": float(pm["duration"]) if pm.get("duration") is not None else math.nan,
                "commit": info.git_commit if info else "unknown",
                "hardware": info.hardware if info else "unknown",
                "torch": info.torch_version if info else "unknown",
                "failed": bool(pm.get("exception")),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ all the compute
_PRETRAINED = re.compile(r"\*\*(?P<name>[^*]+)\*\*: [^\n]*?pretrained in (?P<minutes>\d+) min")
_CHAPTER_WALL = re.compile(r"\*\*Produced by\*\*[^\n]*?wall time (?P<seconds>[\d.]+) s")


def _chapter_text(path: Path) -> str:
    """Every text output of an executed notebook (markdown, plain text, streams), joined."""
    if not path.exists():
        return ""
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for value in (data.get("text/markdown"), data.get("text/plain"), out.get("text")):
                if value:
                    parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _trained_s(folder: Path) -> float | None:
    """The trainer's own clock at the last step of ``folder/train_log.jsonl``: ``elapsed_s`` is restored from
    each checkpoint, so it sums the training of every sitting of a resumed run (minus the steps redone after
    the last checkpoint)."""
    try:
        records = io.read_jsonl(folder / "train_log.jsonl", missing_ok=True)
        return float(records[-1]["elapsed_s"]) if records and records[-1].get("elapsed_s") is not None else None
    except (OSError, ValueError):
        return None


def _build_wall(folder: Path, record: dict | None, total: str, train: str) -> tuple[float, str] | None:
    """Wall time of a built model: training from its log (every sitting) + the rest of its last sitting."""
    trained = _trained_s(folder)
    if record and record.get(total) and trained is not None:
        rest = max(0.0, float(record[total]) - float(record.get(train) or 0.0))
        return trained + rest, f"train_log.jsonl elapsed_s (every sitting) + the rest of {total}"
    if record and (record.get(total) or record.get(train)):
        key = total if record.get(total) else train
        return float(record[key]), f"{key} (its last sitting only)"
    return None


def _finetune_wall(rec: dict) -> float:
    """A fine-tuning run's wall time: the trainer's clock at its last validation (every sitting of a resumed
    run) plus the data and test time of the call that finished it."""
    timing = rec.get("timing_s") or {}
    trained = max((h.get("elapsed_s") or 0.0 for h in rec.get("history") or []), default=0.0)
    if timing.get("total") is not None:
        return float(trained + max(0.0, timing["total"] - timing.get("train_and_select", 0.0)))
    return float((rec.get("runinfo") or {}).get("wall_time_s") or math.nan)


def compute_record(profile: str, results: str | Path | None = None) -> pd.DataFrame:
    """All compute behind a profile's numbers: one row per kind of work and model.

    Columns: ``work`` (teacher pretraining / distillation / fine-tuning), ``model``, ``runs``, ``wall_s``
    and ``source``. A run that was stopped and resumed (the ``mini`` run spans several sittings) counts every
    sitting: training time is read from the trainer's clock (``elapsed_s`` of the last logged step, restored
    with each checkpoint), the rest from the last sitting. Sources, in order of preference:

    - teacher pretraining: the built teacher's ``train_log.jsonl`` + ``quality.json`` (``build_wall_s``);
      where the teacher folder is not on this machine (published results rendered elsewhere), the
      minutes printed by the executed teachers chapter; hub teachers were not pretrained here;
    - distillation, every student and distillation replica: its ``train_log.jsonl`` + ``summary.json``
      (``wall_time_s``); else the executed distillation chapter's own wall time (an upper bound: it
      includes the chapter's other cells);
    - fine-tuning: per ``seed<k>.run.json`` of the model (every task and seed, wherever it ran: a chapter or
      ``rokd evaluate``), the last validation's ``elapsed_s`` plus its data and test time.

    ``wall_s`` is NaN where nothing recorded the work (the ``source`` column then says so).
    """
    from rokd.models.registry import student_models
    from rokd.profiles import load_profile

    prof = load_profile(profile)
    res = _results(profile, results)
    notebooks = res / "notebooks"
    rows = []
    teachers_text = _chapter_text(notebooks / "01_teachers.ipynb")
    printed = {m["name"]: 60.0 * int(m["minutes"]) for m in _PRETRAINED.finditer(teachers_text)}
    for key in TEACHERS:
        name = DISPLAY_NAMES[key]
        folder = artifacts_dir(prof.name) / "teachers" / key
        quality = _read_json(folder / "quality.json")
        built = _build_wall(folder, quality, "build_wall_s", "train_wall_s")
        if prof.teachers.source == "hub":
            wall, source = 0.0, "hub model: not pretrained here"
        elif built:
            wall, source = built[0], "teacher's " + built[1]
        elif name in printed:
            wall, source = printed[name], "executed teachers chapter (pretraining minutes, rounded)"
        else:
            wall, source = math.nan, "not recorded here (no quality.json, no executed teachers chapter)"
        rows.append(
            {
                "work": "teacher pretraining",
                "model": name,
                "runs": 1,
                "wall_s": wall,
                "hardware": _device_of(quality),
                "source": source,
            }
        )
    for key in student_models(prof):
        name = DISPLAY_NAMES.get(key, key)
        folder = artifacts_dir(prof.name) / "students" / key
        summary = _read_json(folder / "summary.json")
        built = _build_wall(folder, summary, "wall_time_s", "train_time_s")
        chapter = _CHAPTER_WALL.search(_chapter_text(notebooks / f"02_distill-{key}.ipynb"))
        if prof.distill.source == "hub":
            wall, source = 0.0, "hub model: not distilled here"
        elif built:
            wall, source = built[0], "student's " + built[1]
        elif chapter:
            wall, source = float(chapter["seconds"]), "executed distillation chapter's wall time (an upper bound)"
        else:
            wall, source = math.nan, "not recorded here (no summary.json, no executed distillation chapter)"
        rows.append(
            {
                "work": "distillation",
                "model": name,
                "runs": 1,
                "wall_s": wall,
                "hardware": _device_of((summary or {}).get("runtime")),
                "source": source,
            }
        )
    by_model: dict[tuple[str, str], list[float]] = {}  # (model, hardware) -> wall times
    for rec in run_records(profile, results):
        where = (rec.get("runinfo") or {}).get("hardware") or str(rec.get("device") or "")
        by_model.setdefault((rec["config"].get("model", "?"), where), []).append(_finetune_wall(rec))
    rank = {m: i for i, m in enumerate(MODEL_KEYS)}
    for model, where in sorted(by_model, key=lambda k: (rank.get(k[0], len(rank)), k[0], k[1])):
        walls = by_model[(model, where)]
        rows.append(
            {
                "work": "fine-tuning",
                "model": DISPLAY_NAMES.get(model, model),
                "runs": len(walls),
                "wall_s": float(sum(walls)),
                "hardware": where,
                "source": f"{len(walls)} run.json (every task and seed)",
            }
        )
    return pd.DataFrame(rows, columns=["work", "model", "runs", "wall_s", "hardware", "source"])


def _device_of(record: dict | None) -> str:
    """Where a build ran, as its record says: the machines of its sittings (``hardware``), else the ``device``
    (cpu / cuda), or '' when it does not say."""
    record = record or {}
    return str(record.get("hardware") or record.get("device") or "")


def on_gpu(hardware: str) -> bool:
    """A ``hardware`` entry of :func:`compute_record` that names a GPU (fine-tuning) or the CUDA device (builds)."""
    return "GPU" in hardware or hardware.startswith("cuda")


def compute_summary(compute: pd.DataFrame) -> str:
    """One markdown sentence: the total of :func:`compute_record`, per kind of work, and what is not recorded."""
    known = compute["wall_s"].dropna()
    parts = []
    for work, g in compute.groupby("work", sort=False):
        w = g["wall_s"].dropna()
        some = f" ({len(w)} of {len(g)} recorded)" if len(w) < len(g) else ""
        parts.append(f"{work}: {w.sum() / 3600:.1f} h{some}" if len(w) else f"{work}: not recorded here")
    missing = compute[compute["wall_s"].isna()]
    hardware = compute.get("hardware", pd.Series("", index=compute.index)).fillna("").astype(str)
    gpu = compute[hardware.map(on_gpu) & compute["wall_s"].notna()]
    if len(gpu):  # GPU seconds are not CPU seconds: say how much of the total ran where
        names = sorted({h.split("GPU ", 1)[1] if "GPU " in h else "CUDA" for h in gpu["hardware"]})
        parts.append(f"of the total, {gpu['wall_s'].sum() / 3600:.1f} h ran on a GPU ({', '.join(names)})")
    return (
        f"**All compute behind these numbers: {known.sum() / 3600:.1f} h** of recorded wall time "
        f"({'; '.join(parts)})"
        + (
            f". Not recorded on this machine: {', '.join(f'{r.work} of {r.model}' for r in missing.itertuples())}"
            if len(missing)
            else ""
        )
        + "."
    )
