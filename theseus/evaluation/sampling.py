"""Text generation from a trained model (temperature sampling).

The model is run on a fixed-size window each step, so one compiled function serves every
position; this is simple and fast enough for the short samples printed after training.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def sample(graphdef: nnx.GraphDef, params: dict, prompt_ids: list[int], num_tokens: int,
           seq_len: int, vocab_limit: int, temperature: float = 0.8, seed: int = 0) -> list[int]:
    """Continues ``prompt_ids`` by ``num_tokens`` sampled tokens (ids below ``vocab_limit``)."""
    if not prompt_ids:
        raise ValueError("sampling needs a prompt of at least one token.")

    @jax.jit
    def next_token(params, window_1T, pos, key):
        logits_V = nnx.merge(graphdef, params)(window_1T)[0, pos, :vocab_limit]
        return jax.random.categorical(key, logits_V / max(temperature, 1e-6))

    ids = list(prompt_ids)
    key = jax.random.key(seed)
    for _ in range(num_tokens):
        context = ids[-seq_len:]
        window = np.zeros((1, seq_len), np.int32)
        window[0, :len(context)] = context
        key, sub = jax.random.split(key)
        ids.append(int(next_token(params, jnp.asarray(window), len(context) - 1, sub)))
    return ids[len(prompt_ids):]
