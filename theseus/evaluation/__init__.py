"""Evaluation: validation loss, sampling, and end-of-run reports."""
