"""Logits of a theseus model and of a transformers model, for the parity tests."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx


def theseus_logits(cfg, params: dict, ids: np.ndarray) -> np.ndarray:
    """Logits of the theseus model of ``cfg`` with ``params``."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: cfg.make(nnx.Rngs(0))))
    model = nnx.merge(graphdef, jax.tree.map(jax.numpy.asarray, params))
    return np.asarray(model(jax.numpy.asarray(ids)))


def hf_logits(model, ids: np.ndarray) -> np.ndarray:
    """Logits of a transformers model in eval mode."""
    import torch

    with torch.no_grad():
        return model.eval()(torch.as_tensor(ids)).logits.numpy()
