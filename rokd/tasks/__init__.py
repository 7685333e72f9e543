"""Task step: fine-tune and score any model on the seven metrics; per-example predictions.

- :mod:`rokd.tasks.finetune`: ``evaluate_model(profile, model, task, seed)`` (idempotent) and
  ``evaluate_all(profile, model, tasks, seeds)``; the protocol is in that module's docstring.
- :mod:`rokd.tasks.encode`: first-sub-word label alignment, chunking, truncation, hash-chosen subsets.
- :mod:`rokd.tasks.metrics`: the paper's metrics (definitions in that module's docstring).
- :mod:`rokd.tasks.predictions`: the per-example predictions file read by ``rokd.loyalty``.
- :mod:`rokd.tasks.scores`: ``results/<profile>/scores.csv`` (``model,task,metric,seed,value``).
- :mod:`rokd.tasks.speed`: inference throughput, models timed in alternation.
- :mod:`rokd.tasks.plots`: the evaluation chapter's tables and figures.
- :mod:`rokd.tasks.baselines`: ``baseline-majority`` / ``baseline-lexical``, scored like a model.
- :mod:`rokd.tasks.cli`: ``rokd evaluate`` (models, controls and baselines).
"""
