"""Inference throughput of a BERT teacher vs its 6-layer DistilBERT student, alternating in one run.

Shapes: the REAL base models of the paper (12 layers, hidden 768, 12 heads, FFN 3072, vocabulary
50,000, vs a 6-layer DistilBERT of the same width) and the ``mini`` profile's miniature teacher and
student (from ``rokd/profiles/mini.yaml``). Weights are random: speed does not depend on them.
Both models carry a 2-way sequence-classification head, i.e. the fine-tuned inference setting.
Timed on CPU, and on the GPU too when one is visible. The last line is ``speedup: X.XX`` for the
base shapes on the first device (CPU).

    python benchmarks/inference_speed.py [--batch-size 8] [--seq-length 128] [--rounds 5]
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
    from transformers import BertConfig, BertForSequenceClassification, DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=ffn, max_position_embeddings=max_pos, num_labels=2))
    student = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=vocab_size, dim=hidden, n_layers=max(1, layers // 2), n_heads=heads, hidden_dim=ffn,
        max_position_embeddings=max_pos, num_labels=2))
    return teacher, student


def main(argv: list[str] | None = None) -> int:
    import torch

    from rokd.profiles import load_profile
    from rokd.runinfo import hardware
    from rokd.tasks.speed import compare_throughput, count_parameters

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    mini = load_profile("mini").teachers.cased
    shapes = {
        "base (12x768 vs 6x768, vocab 50,000)": dict(vocab_size=50000, hidden=768, layers=12, heads=12, ffn=3072),
        f"mini ({mini.num_hidden_layers}x{mini.hidden_size} vs {max(1, mini.num_hidden_layers // 2)}x{mini.hidden_size}, "
        f"vocab {mini.vocab_size:,})": dict(vocab_size=mini.vocab_size, hidden=mini.hidden_size, layers=mini.num_hidden_layers,
                                           heads=mini.num_attention_heads, ffn=mini.intermediate_size,
                                           max_pos=mini.max_position_embeddings),
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"machine: {hardware()}; python {platform.python_version()}; torch {torch.__version__}; "
          f"CPU threads {torch.get_num_threads()} (of {os.cpu_count()})")
    print(f"batch {args.batch_size} x sequence length {args.seq_length}; {args.rounds} alternating rounds, median; "
          "forward pass only, torch.inference_mode, fp32")
    base_speedup = None
    for device in devices:
        for label, shape in shapes.items():
            teacher, student = build_pair(**shape)
            rounds = args.rounds if device == "cpu" else max(args.rounds, 20)
            res = compare_throughput({"teacher": teacher, "student": student}, args.batch_size, args.seq_length,
                                     rounds=rounds, device=device)
            t, s = res["teacher"]["seq_per_s"], res["student"]["seq_per_s"]
            spread = {k: f"{min(v['rounds']):,.1f}-{max(v['rounds']):,.1f}" for k, v in res.items()}
            print(f"[{device}] {label}: teacher {count_parameters(teacher) / 1e6:.1f} M params {t:,.1f} seq/s "
                  f"(rounds {spread['teacher']}) | student {count_parameters(student) / 1e6:.1f} M params {s:,.1f} seq/s "
                  f"(rounds {spread['student']}) | speedup {s / t:.2f} ({res['teacher']['batches_per_round']} batch(es) per round)")
            if device == "cpu" and label.startswith("base"):
                base_speedup = s / t
            del teacher, student
    print(f"speedup: {base_speedup:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
