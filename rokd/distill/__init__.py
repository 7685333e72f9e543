"""Distillation step: students, losses, (cross-tokenizer) ensembles, the distiller.

- :mod:`rokd.distill.student`: DistilBERT students initialised from a BERT teacher (layer map, weight copy, saving);
- :mod:`rokd.distill.losses`: soft-target KL x T², MLM cross-entropy, cosine alignment (pure tensor functions);
- :mod:`rokd.distill.ensemble`: weighted probability ensembles and the vocabulary map between tokenizers;
- :mod:`rokd.distill.batching`: the same words masked in every teacher's tokenization, sub-word and word alignment;
- :mod:`rokd.distill.adaptors`: one small function per teacher turning a batch into soft targets and hidden states;
- :mod:`rokd.distill.distiller`: ``distill_student(profile, student_key, ...)``, the entry point;
- :mod:`rokd.distill.report`: tables for the distillation chapter; :mod:`rokd.distill.cli`: ``rokd distill``.
"""
