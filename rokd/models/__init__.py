"""Models step: registry of teachers/students, miniature tokenizers and teachers, analysis."""
