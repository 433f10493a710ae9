"""A GPT-2-style decoder: pre-norm blocks, tied embeddings, learned or rotary positions."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models import base
from theseus.models.attention import FusedAttention
from theseus.models.base import count_params  # noqa: F401  (re-exported for callers)
from theseus.models.bf16_matmul import MATMUL_PRECISIONS, resolve_matmul_precision
from theseus.models.decoder import check_inputs, run_blocks
from theseus.models.fusion import residual_boundary
from theseus.models.layers import Embed, dropout
from theseus.models.mlp import GeluMLP
from theseus.models.norms import LayerNorm


@dataclasses.dataclass(frozen=True)
class GPTConfig(base.HeadsMixin):
    """Hyperparameters of a GPT-2-style model; ``make`` builds the module.

    ``dtype`` is the compute dtype (use ``bfloat16`` on accelerators), ``param_dtype`` the
    storage dtype of parameters. ``matmul_precision='bfloat16'`` rounds the operands of the
    dense layers and the output head to bfloat16 and sums their products in float32 (TPU's
    default for float32 matmuls; 4-5x faster dots on CPUs with AMX, see
    theseus/models/bf16_matmul.py); everything else stays in ``dtype``. ``'auto'`` picks
    ``bfloat16`` on CPUs with AMX and ``float32`` elsewhere. ``attention`` picks the
    attention kernel: ``manual_vjp`` (the default: einsums with a hand-written backward
    pass, fastest on CPU), ``reference`` (einsums, backward derived by JAX),
    ``dot_product`` (``jax.nn.dot_product_attention``, cuDNN on GPU) or ``splash`` (TPU
    only). ``remat`` recomputes each block's activations in
    the backward pass to save memory.
    ``cpu_fusion_boundary`` (on by default; CPU only, no effect elsewhere) materialises the
    residual stream's cotangent at each block input and between the attention and MLP
    residual adds in the backward pass (theseus/models/fusion.py): values are unchanged, the
    backward pass on XLA:CPU is much faster.
    """

    vocab_size: int = 50304
    seq_len: int = 1024
    num_layers: int = 12
    d_model: int = 768
    num_heads: int = 12
    mlp_ratio: int = 4
    dropout: float = 0.0
    position: Literal["learned", "rope"] = "learned"
    dtype: str = "float32"
    param_dtype: str = "float32"
    matmul_precision: Literal["float32", "bfloat16", "auto"] = "float32"
    attention: Literal["manual_vjp", "reference", "dot_product", "splash"] = "manual_vjp"
    remat: bool = False
    use_bias: bool = True
    cpu_fusion_boundary: bool = True

    def __post_init__(self):
        base.check_positive(vocab_size=self.vocab_size, seq_len=self.seq_len,
                            num_layers=self.num_layers, d_model=self.d_model,
                            num_heads=self.num_heads, mlp_ratio=self.mlp_ratio)
        base.check_heads(self.d_model, self.num_heads, None, self.position == "rope")
        base.check_dropout(self.dropout)
        base.check_choice("position", self.position, ("learned", "rope"))
        base.check_choice("attention", self.attention, base.ATTENTION_IMPLS)
        base.check_dtypes(dtype=self.dtype, param_dtype=self.param_dtype)
        base.check_choice("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)

    def make(self, rngs: nnx.Rngs) -> GPT:
        """Builds the module with freshly initialised parameters."""
        return GPT(self, rngs=rngs)

    def num_params(self) -> int:
        """Parameters: tied embedding, learned positions (if any), blocks, final norm."""
        D, F, L = self.d_model, self.mlp_ratio * self.d_model, self.num_layers
        b = 1 if self.use_bias else 0
        block = 4 * D + 4 * D * D + b * 4 * D + 2 * D * F + b * (F + D)
        wpe = self.seq_len * D if self.position == "learned" else 0
        return self.vocab_size * D + wpe + L * block + 2 * D

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N + 12·L·T·D (PaLM appendix B, causal mask not halved).

        N counts every matmul parameter, including the tied output head (vocab x d_model),
        and excludes the learned position table, which is a lookup.
        """
        d, f, L = self.d_model, self.mlp_ratio * self.d_model, self.num_layers
        n_matmul = L * (4 * d * d + 2 * d * f) + self.vocab_size * d
        return base.palm_flops(n_matmul, L, self.seq_len, d)


class Block(nnx.Module):
    """Pre-norm residual block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
        out_std = 0.02 / math.sqrt(2 * cfg.num_layers)
        kw = {"rngs": rngs, "out_std": out_std, "use_bias": cfg.use_bias, "dtype": cfg.dtype,
              "param_dtype": cfg.param_dtype,
              "matmul_precision": resolve_matmul_precision(cfg.matmul_precision)}
        self.ln1 = LayerNorm(cfg.d_model, rngs=rngs, param_dtype=cfg.param_dtype)
        self.attn = FusedAttention(cfg.d_model, cfg.num_heads, impl=cfg.attention,
                                   rope_base=10000.0 if cfg.position == "rope" else None, **kw)
        self.ln2 = LayerNorm(cfg.d_model, rngs=rngs, param_dtype=cfg.param_dtype)
        self.mlp = GeluMLP(cfg.d_model, cfg.mlp_ratio * cfg.d_model, **kw)
        self.rate = cfg.dropout
        self.boundary = cfg.cpu_fusion_boundary

    def __call__(self, x_BTD: jax.Array, key: jax.Array | None,
                 segment_ids: jax.Array | None = None, positions: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        x_BTD = x_BTD + dropout(self.attn(self.ln1(x_BTD), segment_ids, positions), self.rate, k1)
        x_BTD = residual_boundary(x_BTD, self.boundary)
        x_BTD = x_BTD + dropout(self.mlp(self.ln2(x_BTD)), self.rate, k2)
        return x_BTD, jnp.zeros((), jnp.float32)


class GPT(nnx.Module):
    """The decoder: token (+ position) embeddings, blocks, final norm, tied output head."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
        kw = {"rngs": rngs, "dtype": cfg.dtype, "param_dtype": cfg.param_dtype,
              "matmul_precision": resolve_matmul_precision(cfg.matmul_precision)}
        self.wte = Embed(cfg.vocab_size, cfg.d_model, ("vocab", "embed"), **kw)
        self.wpe = (Embed(cfg.seq_len, cfg.d_model, (None, "embed"), std=0.01, **kw)
                    if cfg.position == "learned" else None)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.ln_f = LayerNorm(cfg.d_model, rngs=rngs, param_dtype=cfg.param_dtype)
        self.cfg = cfg

    def __call__(self, ids_BT: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """Float32 logits ``[B, T, vocab]``; dropout is active only when a key is given."""
        return self.forward(ids_BT, dropout_key)[0]

    def forward(self, ids_BT: jax.Array, dropout_key: jax.Array | None = None, *,
                segment_ids: jax.Array | None = None, positions: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
        """``(logits, aux_loss)``; a dense model's auxiliary loss is 0. With packed documents,
        attention stays inside a segment and ``positions`` index the position table (or
        rotate the heads)."""
        check_inputs(ids_BT, self.cfg.seq_len, segment_ids, positions)
        x_BTD = self.wte(ids_BT)
        if self.wpe is not None:
            pos = jnp.arange(ids_BT.shape[1])[None] if positions is None else positions
            x_BTD = x_BTD + self.wpe(pos)
        x_BTD, aux = run_blocks(self.blocks, x_BTD, dropout_key, self.cfg.dropout,
                                self.cfg.remat, segment_ids, positions,
                                boundary=self.cfg.cpu_fusion_boundary)
        return self.wte.attend(self.ln_f(x_BTD), self.cfg.cpu_fusion_boundary), aux
