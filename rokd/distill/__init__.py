"""Distillation step: losses, masking, (cross-tokenizer) ensembles, students, the distiller."""
