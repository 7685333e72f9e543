"""Inference throughput of a BERT teacher and its DistilBERT student in fp32, bf16 and int8, side by side in one run.

Shapes: the REAL base models of the paper (12 layers, hidden 768, 12 heads, FFN 3072, vocabulary
50,000, vs a 6-layer DistilBERT of the same width) and the ``mini`` profile's miniature teacher and
student (from ``rokd/profiles/mini.yaml``). Weights are random: speed does not depend on them.
Both models carry a 2-way sequence-classification head, i.e. the fine-tuned inference setting.
Variants (``rokd.distill.export.make_variant``): fp32; bf16 = weights cast to bfloat16 (fast where the
CPU has AMX); int8 = dynamic quantisation of the Linear layers (``rokd export --to int8``). All six
model x variant combinations of one shape are timed in alternating rounds (median), so machine load
falls on all of them alike. Timed on CPU, and on the GPU too when one is visible (no int8 there).

    python benchmarks/inference_speed.py [--batch-size 8] [--seq-length 128] [--rounds 7] [--threads N]

The last line is ``speedup: X.XX``: the fp32 student over the fp32 teacher at base shapes on the CPU.
The results chapter's table (same code, the built models): ``rokd.tasks.speed.variant_throughput``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing


def build_pair(vocab_size: int, hidden: int, layers: int, heads: int, ffn: int, max_pos: int = 512):
    """(teacher, student) sequence classifiers with random weights; the student has half the layers."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(
        BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=ffn,
            max_position_embeddings=max_pos,
            num_labels=2,
        )
    )
    student = DistilBertForSequenceClassification(
        DistilBertConfig(
            vocab_size=vocab_size,
            dim=hidden,
            n_layers=max(1, layers // 2),
            n_heads=heads,
            hidden_dim=ffn,
            max_position_embeddings=max_pos,
            num_labels=2,
        )
    )
    return teacher, student


def main(argv: list[str] | None = None) -> int:
    import torch

    from rokd.precision import cpu_bf16_instructions, set_threads
    from rokd.profiles import load_profile
    from rokd.runinfo import hardware
    from rokd.tasks.speed import variant_throughput

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: ROKD_THREADS, else torch's choice)"
    )
    ap.add_argument("--shapes", nargs="+", choices=["base", "mini"], default=["base", "mini"])
    args = ap.parse_args(argv)
    set_threads(args.threads)

    mini = load_profile("mini").teachers.cased
    shapes = {
        "base": (
            "base (12x768 vs 6x768, vocab 50,000)",
            dict(vocab_size=50000, hidden=768, layers=12, heads=12, ffn=3072),
        ),
        "mini": (
            f"mini ({mini.num_hidden_layers}x{mini.hidden_size} vs "
            f"{max(1, mini.num_hidden_layers // 2)}x{mini.hidden_size}, vocab {mini.vocab_size:,})",
            dict(
                vocab_size=mini.vocab_size,
                hidden=mini.hidden_size,
                layers=mini.num_hidden_layers,
                heads=mini.num_attention_heads,
                ffn=mini.intermediate_size,
                max_pos=mini.max_position_embeddings,
            ),
        ),
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"machine: {hardware()}; bf16 instructions: {cpu_bf16_instructions() or 'none'}; "
        f"python {platform.python_version()}; torch {torch.__version__}; "
        f"CPU threads {torch.get_num_threads()} (of {os.cpu_count()})"
    )
    print(
        f"batch {args.batch_size} x sequence length {args.seq_length}; {args.rounds} alternating rounds, median; "
        "forward pass only, torch.inference_mode"
    )
    base_speedup = None
    for device in devices:
        for key in args.shapes:
            label, shape = shapes[key]
            teacher, student = build_pair(**shape)
            rounds = args.rounds if device == "cpu" else max(args.rounds, 20)
            table = variant_throughput(
                {"teacher": teacher, "student": student},
                batch_size=args.batch_size,
                seq_length=args.seq_length,
                rounds=rounds,
                device=device,
            )
            fp32 = table[table["variant"] == "fp32"].set_index("model")["seq_per_s"]
            print(
                f"[{device}] {label}: teacher {table['params'].iloc[0] / 1e6:.1f} M params, "
                f"student {table[table['model'] == 'student']['params'].iloc[0] / 1e6:.1f} M params"
            )
            for row in table.itertuples():
                print(
                    f"  {row.model:8s} {row.variant:5s} {row.seq_per_s:9,.1f} seq/s  x{row.vs_fp32:.2f} vs own fp32  "
                    f"x{row.seq_per_s / fp32['teacher']:.2f} vs teacher fp32"
                )
            if device == "cpu" and key == "base":
                base_speedup = fp32["student"] / fp32["teacher"]
            del teacher, student
    if base_speedup is not None:
        print(f"speedup: {base_speedup:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
