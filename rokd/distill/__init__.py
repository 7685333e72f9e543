"""Distillation step: students, losses, (cross-tokenizer) ensembles, the distiller.

- :mod:`rokd.distill.student`: the student of a teacher: a DistilBERT for a BERT (layer map, weight copy),
  the teacher's own architecture with fewer layers for other encoder families; saving;
- :mod:`rokd.distill.losses`: soft-target KL x T², MLM cross-entropy, cosine alignment (pure tensor functions);
- :mod:`rokd.distill.vocab`: tokenizer families (WordPiece, SentencePiece, byte-level BPE) and the
  normalised surface form of a token;
- :mod:`rokd.distill.ensemble`: weighted probability ensembles and the vocabulary map between tokenizers;
- :mod:`rokd.distill.batching`: the same characters masked in every teacher's tokenization, sub-word and word alignment;
- :mod:`rokd.distill.adaptors`: one small function per teacher turning a batch into soft targets and hidden states;
- :mod:`rokd.distill.distiller`: ``distill_student(profile, student_key, ...)``, the entry point;
- :mod:`rokd.distill.api`: ``distill(teachers=..., corpus=..., output_dir=...)``, a student of your own;
- :mod:`rokd.distill.report`: tables for the distillation chapter; :mod:`rokd.distill.cli`: ``rokd distill``.
"""

from rokd.distill.api import DistillSpec, distill

__all__ = ["DistillSpec", "distill"]
