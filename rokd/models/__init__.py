"""Models step: registry of teachers/students, miniature tokenizers and teachers, analysis.

- ``rokd.models.registry``: model keys, ``resolve(key_or_path, profile) -> ModelRef``, ``load_model``,
  ``load_tokenizer`` (hub IDs or local Hugging Face folders, never remote code).
- ``rokd.models.tokenizers``: cased / uncased WordPiece tokenizers trained with ``tokenizers``.
- ``rokd.models.teachers``: ``build_teachers(profile)`` pretrains the miniature teachers (idempotent).
- ``rokd.models.quality``: MLM accuracy, pseudo-perplexity and the unigram baseline.
- ``rokd.models.analysis``: sizes, vocabularies, fertility, diacritics, word-level CKA, throughput.
"""
