"""Training: trainer, train step, optimizers, schedules, checkpointing, metrics and sharding."""
