"""Model families, each an nnx Module built from a typed config dataclass.

Families: ``gpt`` (GPT-2 style), ``llama`` (RoPE, RMSNorm, SwiGLU, GQA) and ``moe``
(Llama with top-k routed experts). They compose the shared layers: ``layers`` (dense,
embeddings, dropout), ``norms``, ``rope``, ``attention`` (kernels and attention layers;
``splash`` for TPU), ``mlp``, ``moe_layer``, and the block stack in ``decoder``. ``base``
holds the ``ModelConfig`` protocol every config satisfies and the shared checks.
"""
