"""A mixture-of-experts decoder: the Llama architecture with every SwiGLU replaced by top-k
routed SwiGLU experts (``theseus.models.moe_layer``), as Mixtral.

Parameter tree: Llama's, with ``blocks.N.moe.{router,gate,up,down}.kernel`` in place of
``blocks.N.mlp``: router ``[D, E]``, gate/up ``[E, D, F]``, down ``[E, F, D]`` (logical
axis ``expert`` on E). ``forward`` returns the load-balancing loss, averaged over layers and
scaled by ``aux_loss_weight``, as ``aux_loss``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
from flax import nnx

from theseus.models import base
from theseus.models.layers import dropout
from theseus.models.llama import Llama, LlamaBlock, LlamaConfig
from theseus.models.moe_layer import DISPATCH_MODES, MoE


@dataclasses.dataclass(frozen=True)
class MoEConfig(LlamaConfig):
    """Llama's hyperparameters plus the experts': ``num_experts`` SwiGLU experts of width
    ``ffn_dim``, ``experts_per_token`` (top-k) of them per token; ``dispatch`` is
    ``capacity`` (assignments beyond ``capacity_factor`` times the even share are dropped)
    or ``dropless``; ``aux_loss_weight`` scales the load-balancing loss. ``matmul_precision``
    applies to the attention projections and the output head; the experts' einsums and the
    router run in the compute dtype and float32."""

    num_experts: int = 8
    experts_per_token: int = 2
    capacity_factor: float = 1.25
    dispatch: Literal["capacity", "dropless"] = "capacity"
    aux_loss_weight: float = 0.01

    def __post_init__(self):
        super().__post_init__()
        base.check_positive(num_experts=self.num_experts,
                            experts_per_token=self.experts_per_token)
        if self.experts_per_token > self.num_experts:
            raise ValueError(f"model.experts_per_token ({self.experts_per_token}) must not exceed "
                             f"model.num_experts ({self.num_experts}).")
        if self.capacity_factor <= 0:
            raise ValueError(f"model.capacity_factor must be positive, got {self.capacity_factor}.")
        if self.aux_loss_weight < 0:
            raise ValueError(f"model.aux_loss_weight must be >= 0, got {self.aux_loss_weight}.")
        base.check_choice("dispatch", self.dispatch, DISPATCH_MODES)

    def make(self, rngs: nnx.Rngs) -> Llama:
        """Builds the module with freshly initialised parameters."""
        return Llama(self, rngs=rngs, block_cls=MoEBlock)

    def num_params(self) -> int:
        """Parameters: embedding, blocks (2 norms, attention, router, experts), norm, head."""
        D, V, E = self.d_model, self.vocab_size, self.num_experts
        block = 2 * D + self.attention_params() + D * E + E * 3 * D * self.ffn_dim
        head = 0 if self.tie_embeddings else D * V
        return V * D + self.num_layers * block + D + head

    def active_params(self) -> int:
        """Matmul parameters one token uses: attention, router, its k experts, the head."""
        D = self.d_model
        per_layer = (self.attention_params() + D * self.num_experts
                     + self.experts_per_token * 3 * D * self.ffn_dim)
        return self.num_layers * per_layer + self.vocab_size * D

    def flops_per_token(self) -> float:
        """6N + 12·L·T·D with N the active matmul parameters (only the k chosen experts)."""
        return base.palm_flops(self.active_params(), self.num_layers, self.seq_len, self.d_model)


class MoEBlock(LlamaBlock):
    """Pre-norm block: ``x + attn(rms(x))`` then ``x + moe(rms(x))``; returns its weighted
    share of the load-balancing loss."""

    def __init__(self, cfg: MoEConfig, *, rngs: nnx.Rngs):  # noqa: PLW0231 (builds its own MLP)
        kw = self._init_attention_half(cfg, rngs)
        kw.pop("matmul_precision")  # the experts' einsums stay in the compute dtype
        self.moe = MoE(cfg.d_model, cfg.ffn_dim, cfg.num_experts, cfg.experts_per_token,
                       capacity_factor=cfg.capacity_factor, dispatch=cfg.dispatch, **kw)
        self.aux_scale = cfg.aux_loss_weight / cfg.num_layers

    def __call__(self, x_BTD: jax.Array, key: jax.Array | None,
                 segment_ids: jax.Array | None = None, positions: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
        x_BTD, key = self._attention_half(x_BTD, key, segment_ids, positions)
        y_BTD, balance = self.moe(self.mlp_norm(x_BTD))
        return x_BTD + dropout(y_BTD.astype(x_BTD.dtype), self.rate, key), self.aux_scale * balance
