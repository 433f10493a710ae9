"""Feed-forward layers: the GELU MLP of GPT and the SwiGLU MLP of Llama."""

from __future__ import annotations

import jax
from flax import nnx

from theseus.models.layers import Dense


class GeluMLP(nnx.Module):
    """``down(gelu(up(x)))`` with the tanh-approximated GELU (GPT-2)."""

    def __init__(self, d_model: int, d_ff: int, *, rngs: nnx.Rngs, out_std: float,
                 use_bias: bool = True, dtype: str = "float32", param_dtype: str = "float32",
                 matmul_precision: str = "float32"):
        kw = {"rngs": rngs, "use_bias": use_bias, "dtype": dtype, "param_dtype": param_dtype,
              "matmul_precision": matmul_precision}
        self.up = Dense(d_model, d_ff, ("embed", "mlp"), **kw)
        self.down = Dense(d_ff, d_model, ("mlp", "embed"), std=out_std, **kw)

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        return self.down(jax.nn.gelu(self.up(x_BTD), approximate=True))


class SwiGLU(nnx.Module):
    """``down(silu(gate(x)) * up(x))`` without biases (Llama)."""

    def __init__(self, d_model: int, d_ff: int, *, rngs: nnx.Rngs, out_std: float,
                 use_bias: bool = False, dtype: str = "float32", param_dtype: str = "float32",
                 matmul_precision: str = "float32"):
        kw = {"rngs": rngs, "use_bias": use_bias, "dtype": dtype, "param_dtype": param_dtype,
              "matmul_precision": matmul_precision}
        self.gate = Dense(d_model, d_ff, ("embed", "mlp"), **kw)
        self.up = Dense(d_model, d_ff, ("embed", "mlp"), **kw)
        self.down = Dense(d_ff, d_model, ("mlp", "embed"), std=out_std, **kw)

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        return self.down(jax.nn.silu(self.gate(x_BTD)) * self.up(x_BTD))
