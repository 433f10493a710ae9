"""A Llama-style decoder: RMSNorm, rotary positions, grouped-query attention, SwiGLU, no
biases, and an untied output head (tied optionally, as Llama 3.2 1B/3B).

Parameter tree (what the HF converter maps)::

    embed.embedding            [V, D]
    blocks.N.attn_norm.scale   [D]
    blocks.N.attn.q.kernel     [D, H*K]      blocks.N.attn.k.kernel  [D, KV*K]
    blocks.N.attn.v.kernel     [D, KV*K]     blocks.N.attn.o.kernel  [H*K, D]
    blocks.N.mlp_norm.scale    [D]
    blocks.N.mlp.gate.kernel   [D, F]        blocks.N.mlp.up.kernel  [D, F]
    blocks.N.mlp.down.kernel   [F, D]
    norm.scale                 [D]
    lm_head.kernel             [D, V]        (absent when tie_embeddings)

RoPE is HF's rotate-half form; HF's ``rope_scaling`` (Llama 3.1+ long context) is not
applied.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models import base
from theseus.models.attention import GroupedAttention
from theseus.models.bf16_matmul import MATMUL_PRECISIONS, resolve_matmul_precision
from theseus.models.decoder import check_inputs, run_blocks
from theseus.models.fusion import residual_boundary
from theseus.models.layers import Dense, Embed, dropout, head_boundary, matmul
from theseus.models.mlp import SwiGLU
from theseus.models.norms import RMSNorm


@dataclasses.dataclass(frozen=True)
class LlamaConfig(base.HeadsMixin):
    """Hyperparameters of a Llama-style model; ``make`` builds the module.

    ``num_kv_heads`` key/value heads are shared by ``num_heads`` query heads (GQA;
    ``num_kv_heads == num_heads`` is plain multi-head attention). ``ffn_dim`` is the SwiGLU
    hidden width, ``rope_theta`` the RoPE base, ``norm_eps`` RMSNorm's epsilon. ``dtype``,
    ``param_dtype``, ``matmul_precision``, ``attention``, ``dropout``, ``remat`` and
    ``cpu_fusion_boundary`` mean what they mean for GPT.
    """

    vocab_size: int = 128256
    seq_len: int = 2048
    num_layers: int = 16
    d_model: int = 2048
    num_heads: int = 32
    num_kv_heads: int = 8
    ffn_dim: int = 8192
    rope_theta: float = 500000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    dropout: float = 0.0
    dtype: str = "float32"
    param_dtype: str = "float32"
    matmul_precision: Literal["float32", "bfloat16", "auto"] = "float32"
    attention: Literal["manual_vjp", "reference", "dot_product", "splash"] = "manual_vjp"
    remat: bool = False
    cpu_fusion_boundary: bool = True

    def __post_init__(self):
        base.check_positive(vocab_size=self.vocab_size, seq_len=self.seq_len,
                            num_layers=self.num_layers, d_model=self.d_model,
                            num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                            ffn_dim=self.ffn_dim)
        base.check_heads(self.d_model, self.num_heads, self.num_kv_heads, rope=True)
        if self.rope_theta <= 0 or self.norm_eps <= 0:
            raise ValueError(f"model.rope_theta ({self.rope_theta}) and model.norm_eps "
                             f"({self.norm_eps}) must be positive.")
        base.check_dropout(self.dropout)
        base.check_choice("attention", self.attention, base.ATTENTION_IMPLS)
        base.check_dtypes(dtype=self.dtype, param_dtype=self.param_dtype)
        base.check_choice("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)

    def make(self, rngs: nnx.Rngs) -> Llama:
        """Builds the module with freshly initialised parameters."""
        return Llama(self, rngs=rngs)

    def attention_params(self) -> int:
        """Parameters of one attention layer: q, k, v and o projections."""
        D, K = self.d_model, self.head_dim
        return 2 * D * self.num_heads * K + 2 * D * self.num_kv_heads * K

    def num_params(self) -> int:
        """Parameters: embedding, blocks (2 norms, attention, SwiGLU), final norm, head."""
        D, V = self.d_model, self.vocab_size
        block = 2 * D + self.attention_params() + 3 * D * self.ffn_dim
        head = 0 if self.tie_embeddings else D * V
        return V * D + self.num_layers * block + D + head

    def flops_per_token(self) -> float:
        """6N + 12·L·T·D with N the matmul parameters: blocks and the output head (the
        embedding lookup is not a matmul; a tied head counts once, as the head)."""
        n_matmul = (self.num_layers * (self.attention_params() + 3 * self.d_model * self.ffn_dim)
                    + self.vocab_size * self.d_model)
        return base.palm_flops(n_matmul, self.num_layers, self.seq_len, self.d_model)


class LlamaBlock(nnx.Module):
    """Pre-norm block: ``x + attn(rms(x))`` then ``x + swiglu(rms(x))``."""

    def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn_dim, **self._init_attention_half(cfg, rngs))

    def _init_attention_half(self, cfg: LlamaConfig, rngs: nnx.Rngs) -> dict:
        """Builds the norms, the attention and the block settings that Llama and MoE blocks
        share; returns the keyword arguments for the feed-forward layer."""
        out_std = 0.02 / math.sqrt(2 * cfg.num_layers)
        kw = {"rngs": rngs, "out_std": out_std, "dtype": cfg.dtype, "param_dtype": cfg.param_dtype,
              "matmul_precision": resolve_matmul_precision(cfg.matmul_precision)}
        norm = {"rngs": rngs, "eps": cfg.norm_eps, "param_dtype": cfg.param_dtype}
        self.attn_norm = RMSNorm(cfg.d_model, **norm)
        self.attn = GroupedAttention(cfg.d_model, cfg.num_heads, cfg.num_kv_heads,
                                     rope_base=cfg.rope_theta, impl=cfg.attention, **kw)
        self.mlp_norm = RMSNorm(cfg.d_model, **norm)
        self.rate = cfg.dropout
        self.boundary = cfg.cpu_fusion_boundary
        return kw

    def _attention_half(self, x_BTD: jax.Array, key: jax.Array | None,
                        segment_ids: jax.Array | None, positions: jax.Array | None
                        ) -> tuple[jax.Array, jax.Array | None]:
        """``x + attn(rms(x))`` (with dropout and the CPU fusion boundary), and the dropout
        key left for the feed-forward half."""
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        h_BTD = self.attn(self.attn_norm(x_BTD), segment_ids, positions)
        return residual_boundary(x_BTD + dropout(h_BTD, self.rate, k1), self.boundary), k2

    def __call__(self, x_BTD: jax.Array, key: jax.Array | None,
                 segment_ids: jax.Array | None = None, positions: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
        x_BTD, key = self._attention_half(x_BTD, key, segment_ids, positions)
        x_BTD = x_BTD + dropout(self.mlp(self.mlp_norm(x_BTD)), self.rate, key)
        return x_BTD, jnp.zeros((), jnp.float32)


class Llama(nnx.Module):
    """The decoder: token embedding, blocks, final RMSNorm, output head."""

    def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs, block_cls: type = LlamaBlock):
        kw = {"rngs": rngs, "dtype": cfg.dtype, "param_dtype": cfg.param_dtype,
              "matmul_precision": resolve_matmul_precision(cfg.matmul_precision)}
        self.embed = Embed(cfg.vocab_size, cfg.d_model, ("vocab", "embed"), **kw)
        self.blocks = nnx.List([block_cls(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.d_model, rngs=rngs, eps=cfg.norm_eps, param_dtype=cfg.param_dtype)
        self.lm_head = (None if cfg.tie_embeddings else
                        Dense(cfg.d_model, cfg.vocab_size, ("embed", "vocab"), use_bias=False,
                              **kw))
        self.cfg = cfg

    def __call__(self, ids_BT: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """Float32 logits ``[B, T, vocab]``; dropout is active only when a key is given."""
        return self.forward(ids_BT, dropout_key)[0]

    def forward(self, ids_BT: jax.Array, dropout_key: jax.Array | None = None, *,
                segment_ids: jax.Array | None = None, positions: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
        """``(logits, aux_loss)``: float32 logits and the summed auxiliary loss of the blocks
        (0 for dense blocks). ``segment_ids`` keep attention inside packed documents,
        ``positions`` (default ``0..T-1``) rotate the heads."""
        check_inputs(ids_BT, self.cfg.seq_len, segment_ids, positions)
        x_BTD, aux = run_blocks(self.blocks, self.embed(ids_BT), dropout_key, self.cfg.dropout,
                                self.cfg.remat, segment_ids, positions,
                                boundary=self.cfg.cpu_fusion_boundary)
        h_BTD = self.norm(x_BTD)
        if self.lm_head is None:
            return self.embed.attend(h_BTD, self.cfg.cpu_fusion_boundary), aux
        kernel = self.lm_head.kernel[...].astype(self.cfg.dtype)
        logits = matmul(h_BTD.astype(self.cfg.dtype), kernel, preferred_element_type=jnp.float32,
                        precision=self.lm_head.matmul_precision)
        return head_boundary(logits, self.lm_head.matmul_precision,
                             self.cfg.cpu_fusion_boundary), aux
