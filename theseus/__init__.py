"""theseus: train language models from scratch in JAX."""
