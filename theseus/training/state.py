"""Creating the train state directly in its sharded placement, and its abstract twin."""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from theseus.training import sharding
from theseus.training.checkpoint import abstract_like


class ModelConfig(Protocol):
    """What the trainer needs from a model config."""

    def make(self, rngs: nnx.Rngs) -> nnx.Module: ...

    def flops_per_token(self) -> float: ...


class StateFactory:
    """Knows the model's graph, the state's placement, and how to make a fresh state.

    ``init()`` runs one jitted function whose outputs are born sharded (parameters follow
    their logical axes; optimizer moments are placed exactly like the parameters, counters
    are replicated), so no device ever holds the whole unsharded state first.
    ``shardings`` is that placement, as a tree like the state.
    """

    def __init__(self, model_cfg: ModelConfig, tx: optax.GradientTransformation, seed: int,
                 mesh: Mesh):
        abstract_model = nnx.eval_shape(lambda: model_cfg.make(nnx.Rngs(0)))
        self.graphdef, abstract_vars = nnx.split(abstract_model)
        self.abstract_params = nnx.to_pure_dict(abstract_vars)
        param_shardings = nnx.to_pure_dict(sharding.state_shardings(abstract_vars, mesh))
        self.shardings = {
            "params": param_shardings,
            "opt_state": sharding.optimizer_shardings(tx, self.abstract_params,
                                                      param_shardings, mesh),
            "step": sharding.replicated(mesh)}

        def init() -> dict[str, Any]:
            _, variables = nnx.split(model_cfg.make(nnx.Rngs(params=seed)))
            params = jax.lax.with_sharding_constraint(nnx.to_pure_dict(variables), param_shardings)
            return {"params": params, "opt_state": tx.init(params),
                    "step": jnp.zeros((), jnp.int32)}

        self._init = jax.jit(init, out_shardings=self.shardings)
        self.abstract = abstract_like(self.shardings, jax.eval_shape(init))

    def init(self) -> dict[str, Any]:
        """A freshly initialised, sharded train state."""
        return self._init()
