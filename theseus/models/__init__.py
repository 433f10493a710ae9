"""Model families. Each model is a flax nnx Module built from a typed config dataclass."""
