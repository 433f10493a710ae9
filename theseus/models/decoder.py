"""The decoder stack every family shares: embedding dropout, then the blocks in order
(each optionally rematerialised), summing the blocks' auxiliary losses. With ``boundary``
the residual stream passes ``fusion.residual_boundary`` at each block input (a fusion
boundary for its cotangent on XLA:CPU; see theseus/models/fusion.py).

A block is called as ``block(x_BTD, dropout_key, segment_ids, positions) -> (x_BTD, aux)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models.fusion import residual_boundary
from theseus.models.layers import dropout


def run_blocks(blocks: Sequence[nnx.Module], x_BTD: jax.Array, dropout_key: jax.Array | None,
               rate: float, remat: bool, segment_ids: jax.Array | None = None,
               positions: jax.Array | None = None, boundary: bool = False
               ) -> tuple[jax.Array, jax.Array]:
    """Applies dropout to the embeddings and then every block; returns the output and the
    sum of the blocks' auxiliary losses. One dropout key per block, split from
    ``dropout_key`` (no dropout without a key). ``boundary`` puts a CPU fusion boundary
    on the residual stream in front of every block."""
    n = len(blocks)
    keys = (jax.random.split(dropout_key, n + 1) if dropout_key is not None
            else [None] * (n + 1))
    x_BTD = dropout(x_BTD, rate, keys[0])
    aux = jnp.zeros((), jnp.float32)
    for block, key in zip(blocks, keys[1:]):
        x_BTD = residual_boundary(x_BTD, boundary)
        if remat:
            x_BTD, block_aux = nnx.remat(lambda b, x, k, s, p: b(x, k, s, p))(
                block, x_BTD, key, segment_ids, positions)
        else:
            x_BTD, block_aux = block(x_BTD, key, segment_ids, positions)
        aux = aux + block_aux
    return x_BTD, aux


def check_inputs(ids_BT: jax.Array, seq_len: int, segment_ids: jax.Array | None,
                 positions: jax.Array | None) -> None:
    """ValueError if the sequence is longer than ``seq_len`` or the packing arrays do not
    have the shape of the token ids."""
    T = ids_BT.shape[1]
    if T > seq_len:
        raise ValueError(f"sequence of {T} tokens is longer than model.seq_len={seq_len}.")
    for name, arr in (("segment_ids", segment_ids), ("positions", positions)):
        if arr is not None and arr.shape != ids_BT.shape:
            raise ValueError(f"{name} has shape {tuple(arr.shape)} but the token ids have shape "
                             f"{tuple(ids_BT.shape)}; give one {name[:-1]} per token.")
