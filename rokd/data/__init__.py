"""Data layer: one loader per task, a uniform schema, split provenance, the raw corpus."""
