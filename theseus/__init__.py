"""theseus: train language models from scratch in JAX."""

from theseus.host_memory import keep_freed_memory

keep_freed_memory()  # before JAX starts threads; see theseus/host_memory.py
