"""Weights in and out of Hugging Face ``transformers`` checkpoints (GPT-2 and Llama).

``hf_io`` reads and writes checkpoint directories (``config.json`` + ``model.safetensors``)
with numpy only; ``hf_gpt2`` and ``hf_llama`` map parameter trees both ways. torch and
transformers are needed only to *use* the exported checkpoints (the optional ``torch`` group).
"""
