"""Task step: fine-tune and score any model on the seven metrics; per-example predictions."""
