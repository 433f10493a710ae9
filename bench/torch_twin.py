"""A PyTorch twin of ``theseus.models.gpt.GPT`` and its optimizer, for speed comparisons.

Same architecture as the JAX model with ``position="learned"``: token + learned position
embeddings, pre-norm blocks (LayerNorm eps 1e-5, fused QKV projection, causal softmax
attention, GELU-tanh MLP of width ``mlp_ratio * d_model``), a final LayerNorm and an output
head tied to the token embedding. Same initialisation: normal(0.02) for kernels and token
embeddings, normal(0.01) for positions, normal(0.02 / sqrt(2L)) for the two residual output
projections, zero biases, unit norm gains.

Same optimizer as ``configs/gpt.py``'s ``AdamW``: clip the global gradient norm to
``clip_norm``, then AdamW (b1, b2, eps, decoupled weight decay scaled by the learning rate)
with decay on the kernels only, and the learning rate of ``theseus.training.schedules.Cosine``
(linear warmup from ``peak / W``, cosine decay to ``final_fraction * peak`` at the last step).

``load_jax_params`` copies the parameters of a theseus GPT into the twin, so that tests can
check that both compute the same logits and losses. Attention uses
``torch.nn.functional.scaled_dot_product_attention`` (flash attention on CPU and GPU), as
a PyTorch user would write it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``."""

    def __init__(self, d_model: int, num_heads: int, mlp_ratio: int):
        super().__init__()
        self.num_heads = num_heads
        self.ln1 = nn.LayerNorm(d_model, eps=1e-5)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model, eps=1e-5)
        self.up = nn.Linear(d_model, mlp_ratio * d_model)
        self.down = nn.Linear(mlp_ratio * d_model, d_model)

    def attention(self, x_BTD: torch.Tensor) -> torch.Tensor:
        """Causal multi-head self-attention with a fused QKV projection."""
        B, T, D = x_BTD.shape
        H = self.num_heads
        qkv_BT3HK = self.qkv(x_BTD).view(B, T, 3, H, D // H)
        q_BHTK, k_BHTK, v_BHTK = qkv_BT3HK.permute(2, 0, 3, 1, 4).unbind(0)
        y_BHTK = F.scaled_dot_product_attention(q_BHTK, k_BHTK, v_BHTK, is_causal=True)
        return self.out(y_BHTK.transpose(1, 2).reshape(B, T, D))

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        """The block's output, same shape as its input."""
        x_BTD = x_BTD + self.attention(self.ln1(x_BTD))
        return x_BTD + self.down(F.gelu(self.up(self.ln2(x_BTD)), approximate="tanh"))


class TwinGPT(nn.Module):
    """The decoder: token + position embeddings, blocks, final norm, tied output head."""

    def __init__(self, vocab_size: int, seq_len: int, num_layers: int, d_model: int,
                 num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads}).")
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, mlp_ratio)
                                    for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)
        self._init(num_layers)

    @torch.no_grad()
    def _init(self, num_layers: int) -> None:
        std_out = 0.02 / math.sqrt(2 * num_layers)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        for block in self.blocks:
            for layer in (block.qkv, block.out, block.up, block.down):
                nn.init.normal_(layer.weight, std=std_out if layer in (block.out, block.down)
                                else 0.02)
                nn.init.zeros_(layer.bias)

    def forward(self, ids_BT: torch.Tensor) -> torch.Tensor:
        """Float32 logits ``[B, T, vocab]``."""
        T = ids_BT.shape[1]
        x_BTD = self.wte(ids_BT) + self.wpe(torch.arange(T, device=ids_BT.device))[None]
        for block in self.blocks:
            x_BTD = block(x_BTD)
        return self.ln_f(x_BTD) @ self.wte.weight.T


def loss_fn(model: TwinGPT, tokens_BT1: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of a ``[B, T + 1]`` batch, in nats."""
    logits_BTV = model(tokens_BT1[:, :-1])
    return F.cross_entropy(logits_BTV.reshape(-1, logits_BTV.shape[-1]),
                           tokens_BT1[:, 1:].reshape(-1))


def cosine_lr(step: int, peak: float, warmup_steps: int, total_steps: int,
              final_fraction: float = 0.1) -> float:
    """``theseus.training.schedules.Cosine`` at optimizer step ``step`` (0 = first update)."""
    if step < warmup_steps:
        return peak * min(1.0, (step + 1) / warmup_steps)
    p = min(max((step - warmup_steps) / (total_steps - warmup_steps), 0.0), 1.0)
    return peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * p)))


class TwinTrainer:
    """Clipping + AdamW (kernels decayed) + the cosine schedule, one ``step`` per batch.

    ``bf16_autocast`` runs the forward pass (and so its backward) under
    ``torch.autocast("cpu", bfloat16)``: torch's counterpart of theseus's
    ``model.matmul_precision='bfloat16'`` (matmuls on bfloat16 operands through oneDNN)."""

    def __init__(self, model: TwinGPT, learning_rate: float, warmup_steps: int,
                 total_steps: int, b1: float = 0.9, b2: float = 0.95, eps: float = 1e-8,
                 weight_decay: float = 0.1, clip_norm: float | None = 1.0,
                 final_fraction: float = 0.1, bf16_autocast: bool = False):
        self.model, self.clip_norm, self.bf16_autocast = model, clip_norm, bf16_autocast
        self.schedule = {"peak": learning_rate, "warmup_steps": warmup_steps,
                         "total_steps": total_steps, "final_fraction": final_fraction}
        kernels = [p for n, p in model.named_parameters()
                   if n.endswith("weight") and p.ndim == 2 and not n.startswith(("wte", "wpe"))]
        ids = {id(p) for p in kernels}
        others = [p for p in model.parameters() if id(p) not in ids]
        self.opt = torch.optim.AdamW(
            [{"params": kernels, "weight_decay": weight_decay},
             {"params": others, "weight_decay": 0.0}],
            lr=learning_rate, betas=(b1, b2), eps=eps, foreach=True)
        self.step_count = 0

    def step(self, tokens_BT1: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update; returns the loss and the pre-clipping gradient norm (tensors)."""
        lr = cosine_lr(self.step_count, **self.schedule)
        for group in self.opt.param_groups:
            group["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16_autocast):
            loss = loss_fn(self.model, tokens_BT1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.clip_norm if self.clip_norm is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.opt.step()
        self.step_count += 1
        return {"loss": loss.detach(), "grad_norm": grad_norm}


def _np(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def load_jax_params(model: TwinGPT, params: Mapping[str, Any]) -> None:
    """Copies a theseus GPT's parameters (``nnx.to_pure_dict`` of the model) into ``model``.

    Dense kernels are ``[d_in, d_out]`` in theseus and ``[d_out, d_in]`` in torch, so they
    are transposed; everything else is copied as is.
    """
    def put(dst: torch.Tensor, src: Any, transpose: bool = False) -> None:
        value = torch.from_numpy(_np(src).T.copy() if transpose else _np(src).copy())
        if value.shape != dst.shape:
            raise ValueError(f"parameter shape {tuple(value.shape)} does not fit the twin's "
                             f"{tuple(dst.shape)}; build the twin with the model's dimensions.")
        dst.copy_(value)

    with torch.no_grad():
        put(model.wte.weight, params["wte"]["embedding"])
        put(model.wpe.weight, params["wpe"]["embedding"])
        put(model.ln_f.weight, params["ln_f"]["scale"])
        put(model.ln_f.bias, params["ln_f"]["bias"])
        for i, block in enumerate(model.blocks):
            p = params["blocks"][i]
            for ln, name in ((block.ln1, "ln1"), (block.ln2, "ln2")):
                put(ln.weight, p[name]["scale"])
                put(ln.bias, p[name]["bias"])
            for layer, (part, name) in ((block.qkv, ("attn", "qkv")), (block.out, ("attn", "out")),
                                        (block.up, ("mlp", "up")), (block.down, ("mlp", "down"))):
                put(layer.weight, p[part][name]["kernel"], transpose=True)
                put(layer.bias, p[part][name]["bias"])
