"""The real-model distillation path, exercised offline: stand-ins of the hub teachers' real shapes.

The hub teachers (``dumitrescustefan/bert-base-romanian-cased-v1``, ``readerbench/RoBERT-base``) cannot be
downloaded here. Their stand-ins have the same shapes -- BERT 12 layers x 768, 12 heads, FFN 3072,
512 positions, output vocabularies of 50,000 (cased) and 37,788 (uncased) -- random weights, and WordPiece
tokenizers trained on the smoke corpus with those vocabulary sizes (case kept / lower-cased, diacritics
kept, as the real ones; a 3 M-character corpus yields fewer tokens than asked, the output layers keep
the real sizes). They are saved with ``save_pretrained`` and the DistilMulti student is distilled from both
through the public entry point (:func:`rokd.distill.api.distill` with ``profile="paper"``: the paper
profile's distillation settings, ``distill_student``, the cross-tokenizer ensemble) for a few steps per
batch size on the CPU. Printed and written to JSON: shapes, the vocabulary map's reach and coverage,
seconds per optimizer step, tokens per second, peak resident memory; the CPU-side batch preparation
(collation with the cross-tokenizer view) is timed on its own; and the floating-point work per token,
from which the ``colab`` profile's time per step on a T4 is estimated (book/reproduce.md).

    python benchmarks/standin_real_shapes.py [--batch-sizes 1 2 4] [--steps 3] [--max-length 256] [--save]

``--save`` writes ``results/paper/standin_real_shapes.json``. The slow test
``tests/test_standin_real_shapes.py`` runs the same code with one batch size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

RESULT_FILE = "standin_real_shapes.json"
REAL = {  # the hub teachers' shapes (their config.json files)
    "bert-base-ro": dict(kind="bert-cased", vocab_size=50000),
    "robert-base": dict(kind="bert-uncased", vocab_size=37788),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flops_per_token(config, masked_share: float) -> dict[str, float]:
    """Forward FLOPs per input token of one BERT-like encoder (2 x weights of the layers, attention over
    ``seq`` ignored: short sentences) and of its MLM head at the masked share of the positions."""
    d, f, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 2 * (4 * d * d + 2 * d * f)
    head = 2 * (d * d + d * config.vocab_size)
    return {"encoder": n * per_layer, "mlm_head": masked_share * head}


def build_standins(work: Path, corpus: Path, log=print) -> dict[str, Path]:
    from rokd.models.standins import build_standin
    from rokd.profiles import BertShape

    folders = {}
    for key, spec in REAL.items():
        shape = BertShape(
            vocab_size=spec["vocab_size"],
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=512,
            lowercase=spec["kind"] == "bert-uncased",
        )
        folders[key] = build_standin(
            spec["kind"], work / "teachers" / key, files=[corpus], shape=shape, seed=13, log=log
        )
    return folders


def time_collation(
    folders: dict[str, Path], corpus: Path, batch_size: int, max_length: int, n_batches: int = 20
) -> dict:
    """Seconds to prepare one batch (student masking + the other teacher's view) on this CPU, and the
    student's real and padded tokens per batch (length-grouped batches)."""
    from transformers import AutoTokenizer

    from rokd import mlm
    from rokd.distill.batching import CrossTokenizerView, DistillCollator, PairedLines

    s_tok = AutoTokenizer.from_pretrained(folders["bert-base-ro"])
    t_tok = AutoTokenizer.from_pretrained(folders["robert-base"])
    lines = [ln for ln in corpus.read_text(encoding="utf-8").splitlines() if ln.strip()][: batch_size * n_batches * 2]
    other = {"t": mlm.tokenize_lines(lines, t_tok, 2 * max_length)}
    data = PairedLines(mlm.tokenize_lines(lines, s_tok, max_length), other)
    collator = DistillCollator(mlm.WholeWordMaskCollator(s_tok, 0.15, seed=1), [CrossTokenizerView("t", t_tok)])
    stream = mlm.BatchStream(data, mlm.LengthGroupedBatchSampler(data.lengths, batch_size, seed=1), collator)
    next(stream)
    real, padded, teacher_padded = [], [], []
    t0 = time.perf_counter()
    for _ in range(n_batches):
        batch = next(stream)
        real.append(int(batch["attention_mask"].sum()))
        padded.append(batch["input_ids"].numel())
        teacher_padded.append(batch["t.input_ids"].numel())
    return {
        "s_per_batch": (time.perf_counter() - t0) / n_batches,
        "batch_size": batch_size,
        "max_length": max_length,
        "tokens_per_batch": statistics.mean(real),
        "padded_tokens_per_batch": statistics.mean(padded),
        "teacher2_padded_tokens_per_batch": statistics.mean(teacher_padded),
    }


def run(work: Path, corpus: Path, batch_sizes: list[int], steps: int, max_length: int, log=print) -> dict:
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from rokd.distill.api import distill
    from rokd.distill.distiller import read_log

    t0 = time.perf_counter()
    folders = build_standins(work, corpus, log=log)
    build_s = time.perf_counter() - t0
    configs = {k: AutoConfig.from_pretrained(f) for k, f in folders.items()}
    shapes = {
        k: {
            "layers": c.num_hidden_layers,
            "hidden": c.hidden_size,
            "heads": c.num_attention_heads,
            "ffn": c.intermediate_size,
            "vocab_size": c.vocab_size,
            "positions": c.max_position_embeddings,
            "tokenizer_vocab": len(AutoTokenizer.from_pretrained(folders[k])),
        }
        for k, c in configs.items()
    }
    for k, s in shapes.items():
        log(
            f"{k}: {s['layers']} x {s['hidden']} ({s['heads']} heads, FFN {s['ffn']}), "
            f"output vocabulary {s['vocab_size']:,}, tokenizer {s['tokenizer_vocab']:,} tokens"
        )
    runs = []
    for bs in batch_sizes:
        out = work / "students" / f"distilmulti-bs{bs}"
        t1 = time.perf_counter()
        distill(
            teachers=[str(folders["bert-base-ro"]), str(folders["robert-base"])],
            corpus=[str(corpus)],
            output_dir=out,
            profile="paper",
            batch_size=bs,
            grad_accum=1,
            steps=steps,
            max_length=max_length,
            device="cpu",
            precision="fp32",
            heldout_lines=50,
            resume=False,
            progress=False,
            log=log,
        )
        wall = time.perf_counter() - t1
        records = read_log(out / "train_log.jsonl")
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        elapsed = [r["elapsed_s"] for r in records]
        per_step = [b - a for a, b in zip(elapsed, elapsed[1:])] or elapsed  # the first step includes warm-up
        tokens = [r["tokens"] for r in records]
        cov = summary["coverage"]["robert-base"]
        row = {
            "batch_size": bs,
            "grad_accum": 1,
            "steps": len(records),
            "s_per_step_median": statistics.median(per_step),
            "first_step_s": elapsed[0],
            "tokens_per_step_mean": statistics.mean(tokens) if tokens and tokens[0] is not None else None,
            "tokens_per_s": summary["tokens_per_s"],
            "peak_rss_mb": max(r["peak_mem_mb"] for r in records),
            "process_peak_rss_mb": round(peak_rss_mb(), 1),
            "run_wall_s": round(wall, 1),
            "student_params": summary["params"],
            "teacher_params": {k: v["params"] for k, v in summary["teacher_sizes"].items()},
            "coverage": cov,
            "final_losses": summary["final_losses"],
            "teacher_layers_kept": summary["teacher_layers_kept"],
        }
        runs.append(row)
        log(
            f"batch {bs}: {row['s_per_step_median']:.2f} s per optimizer step (median of {len(per_step)}; "
            f"first step {row['first_step_s']:.1f} s), {row['tokens_per_step_mean']:.0f} tokens per step, "
            f"{row['tokens_per_s']:.0f} tokens/s, peak RSS {row['peak_rss_mb']:.0f} MB; robert-base covered "
            f"{cov['masked_positions_covered']:.1%} of the masked positions, mapped mass "
            f"{cov['mapped_probability_mass']:.1%}; vocabulary map reaches {cov['student_tokens_mapped']:.1%} "
            f"of the student's tokens"
        )
    collate = time_collation(folders, corpus, 32, max_length)
    log(
        f"batch preparation (32 sentences, <= {max_length} tokens, both tokenizations): "
        f"{collate['s_per_batch'] * 1000:.0f} ms on this CPU; {collate['tokens_per_batch']:.0f} tokens per batch "
        f"({collate['padded_tokens_per_batch']:.0f} with padding)"
    )
    t_cfg, s_layers = configs["bert-base-ro"], len(runs[0]["teacher_layers_kept"]) if runs else 6
    masked = 0.15
    t_flops = {k: flops_per_token(c, masked) for k, c in configs.items()}
    cased = t_flops["bert-base-ro"]
    student_fwd = cased["encoder"] * s_layers / t_cfg.num_hidden_layers + cased["mlm_head"]
    # teachers: forward only; student: forward + backward (about 3x the forward)
    per_token = sum(v["encoder"] + v["mlm_head"] for v in t_flops.values()) + 3 * student_fwd
    achieved = [r["tokens_per_s"] * per_token for r in runs]
    log(
        f"work per student token: {per_token / 1e6:.0f} MFLOP (two teachers forward, student forward + backward, "
        f"MLM heads at {masked:.0%} of the positions); achieved on this CPU (real tokens only): "
        + ", ".join(f"batch {r['batch_size']} {a / 1e9:.1f} GFLOP/s" for r, a in zip(runs, achieved))
    )
    from rokd.runinfo import hardware

    return {
        "hardware": hardware(),
        "threads": torch.get_num_threads(),
        "precision": "fp32",
        "max_length": max_length,
        "corpus": str(corpus),
        "build_standins_s": round(build_s, 1),
        "shapes": shapes,
        "runs": runs,
        "collation": collate,
        "flop_per_token": per_token,
        "achieved_flop_per_s": achieved,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--corpus", type=Path, help="one-sentence-per-line text (default: the smoke corpus, built if missing)"
    )
    ap.add_argument("--work", type=Path, help="folder for the stand-ins and students (default artifacts/standin)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--out", type=Path, help="write the record as JSON here")
    ap.add_argument(
        "--save", action="store_true", help=f"write results/paper/{RESULT_FILE} (cited by the Reproduce chapter)"
    )
    args = ap.parse_args(argv)
    from rokd.paths import artifacts_dir, results_dir

    corpus = args.corpus
    if corpus is None:
        from rokd.models.teachers import corpus_files

        corpus = corpus_files("smoke")[0]
    record = run(args.work or artifacts_dir("standin"), corpus, args.batch_sizes, args.steps, args.max_length)
    text = json.dumps(record, indent=2) + "\n"
    for path in ([args.out] if args.out else []) + ([results_dir("paper") / RESULT_FILE] if args.save else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
