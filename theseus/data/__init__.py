"""Data: corpora, tokenizers, tokenized shards on disk and grain input pipelines."""
