"""What every model family shares: the config protocol, parameter counting, the FLOPs
formula and the checks of common config fields.

A model config is a frozen dataclass (``GPTConfig``, ``LlamaConfig``, ``MoEConfig``) that
satisfies :class:`ModelConfig`: ``make`` builds the nnx module, ``flops_per_token`` gives
the training FLOPs that MFU is measured against and ``num_params`` the parameter count.
The module implements ``forward(ids_BT, dropout_key, *, segment_ids=None, positions=None)
-> (logits_BTV float32, aux_loss)`` and ``__call__(ids_BT, dropout_key=None) -> logits``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import nnx

ATTENTION_IMPLS = ("manual_vjp", "reference", "dot_product", "splash")


@runtime_checkable
class ModelConfig(Protocol):
    """What the trainer, MFU and validation need from a model config."""

    vocab_size: int
    seq_len: int
    dropout: float

    def make(self, rngs: nnx.Rngs) -> nnx.Module:
        """Builds the module with freshly initialised parameters."""
        ...

    def flops_per_token(self) -> float:
        """Training FLOPs per token (6N + 12·L·T·D, N = matmul parameters used per token)."""
        ...

    def num_params(self) -> int:
        """Number of parameters the module holds."""
        ...

    def check_platform(self, platform: str) -> None:
        """Raises ValueError if the config cannot run on ``platform`` (``cpu``, ``gpu``, ``tpu``)."""
        ...


class HeadsMixin:
    """``head_dim`` and ``check_platform`` for a config dataclass with ``d_model``,
    ``num_heads`` and ``attention`` fields (GPT, Llama, MoE)."""

    d_model: int
    num_heads: int
    attention: str

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.num_heads

    def check_platform(self, platform: str) -> None:
        """ValueError if the attention kernel cannot run on ``platform``."""
        check_attention_platform(self.attention, platform)


def count_params(state: nnx.State) -> int:
    """Number of scalars in a model state (or its abstract ``eval_shape``)."""
    return sum(int(math.prod(x.shape)) for x in jax.tree.leaves(state))


def abstract_num_params(cfg: ModelConfig) -> int:
    """Parameter count of ``cfg``'s module, from shapes only (no memory is allocated)."""
    abstract = nnx.eval_shape(lambda: cfg.make(nnx.Rngs(0)))
    return count_params(nnx.state(abstract, nnx.Param))


def palm_flops(matmul_params: int, num_layers: int, seq_len: int, attn_width: int) -> float:
    """6N + 12·L·T·D (PaLM appendix B; the causal mask is not halved)."""
    return 6.0 * matmul_params + 12.0 * num_layers * seq_len * attn_width


def check_positive(**values: int) -> None:
    """ValueError naming the first ``model.FIELD`` that is not a positive integer."""
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"model.{name} must be a positive integer, got {value}.")


def check_choice(name: str, value: str, allowed: Iterable[str]) -> None:
    """ValueError if ``model.name`` is not one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"model.{name} must be one of {allowed}, got {value!r}.")


def check_dtypes(**values: str) -> None:
    """ValueError if a dtype field does not name a floating-point dtype."""
    for name, value in values.items():
        try:
            floating = jnp.issubdtype(jnp.dtype(value), jnp.floating)
        except TypeError:
            floating = False
        if not floating:
            raise ValueError(f"model.{name} '{value}' is not a floating-point dtype; use e.g. "
                             f"'float32' or 'bfloat16'.")


def check_dropout(rate: float) -> None:
    """ValueError unless ``0 <= rate < 1``."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {rate}.")


def check_heads(d_model: int, num_heads: int, num_kv_heads: int | None, rope: bool) -> None:
    """ValueError if the heads do not split ``d_model`` (or the query heads into KV groups),
    or rotary positions get an odd head dimension."""
    if d_model % num_heads:
        raise ValueError(f"model.d_model ({d_model}) must be divisible by model.num_heads "
                         f"({num_heads}).")
    if num_kv_heads is not None and num_heads % num_kv_heads:
        raise ValueError(f"model.num_heads ({num_heads}) must be a multiple of "
                         f"model.num_kv_heads ({num_kv_heads}).")
    if rope and (d_model // num_heads) % 2:
        raise ValueError(f"rotary positions need an even head dimension; "
                         f"d_model / num_heads = {d_model // num_heads}.")


def check_attention_platform(attention: str, platform: str) -> None:
    """ValueError if ``attention='splash'`` is asked for off TPU."""
    if attention == "splash" and platform != "tpu":
        raise ValueError(f"model.attention='splash' runs only on TPU, but the JAX backend is "
                         f"'{platform}'; use model.attention='dot_product' (or 'manual_vjp').")
