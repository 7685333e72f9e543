"""Model registry: the five models of the paper under stable keys, resolved per profile.

Keys (used in every results file): ``bert-base-ro``, ``robert-base`` (teachers),
``distil-bert-base-ro``, ``distil-robert-base``, ``distilmulti-bert-base-ro`` (students).
"""

from __future__ import annotations

TEACHERS = ("bert-base-ro", "robert-base")
STUDENTS = ("distil-bert-base-ro", "distil-robert-base", "distilmulti-bert-base-ro")
MODEL_KEYS = TEACHERS + STUDENTS

# Which teacher(s) each student learns from; the first teacher's tokenizer is the student's.
STUDENT_TEACHERS: dict[str, tuple[str, ...]] = {
    "distil-bert-base-ro": ("bert-base-ro",),
    "distil-robert-base": ("robert-base",),
    "distilmulti-bert-base-ro": ("bert-base-ro", "robert-base"),
}

# Names as printed in the paper's tables.
DISPLAY_NAMES = {
    "bert-base-ro": "BERT-base-ro",
    "robert-base": "RoBERT-base",
    "distil-bert-base-ro": "Distil-BERT-base-ro",
    "distil-robert-base": "Distil-RoBERT-base",
    "distilmulti-bert-base-ro": "DistilMulti-BERT-base-ro",
}
