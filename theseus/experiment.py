"""An experiment: the four parts every run is made of, and ``run`` to train it."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from theseus.data.mixture import Mixture
from theseus.data.pipeline import Shards, TokenizedText
from theseus.data.seqio_source import SeqioData
from theseus.models.base import ModelConfig
from theseus.training.optimizer import AdamW
from theseus.training.trainer import Trainer, train


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``model``, ``data``, ``optimizer`` and ``trainer``: what a config function returns as a
    ``fdl.Config(Experiment, ...)`` and ``fdl.build`` turns into this object."""

    model: ModelConfig  # GPTConfig, LlamaConfig, MoEConfig (theseus.models.base)
    data: TokenizedText | Shards | Mixture | SeqioData
    optimizer: AdamW
    trainer: Trainer

    def validate(self) -> None:
        """Checks what no single part can check alone; raises ValueError before any compute."""
        import jax

        self.trainer.check_devices(jax.device_count(), self.model)
        check_platform = getattr(self.model, "check_platform", None)
        if check_platform is not None:  # e.g. splash attention off TPU
            check_platform(jax.default_backend())
        # the tokenizer fits model.vocab_size; shards match data.tokenizer and model.seq_len
        self.data.check(self.model.seq_len, self.model.vocab_size)
        try:
            self.optimizer.make(self.trainer.num_steps)
        except ValueError as e:
            raise ValueError(f"optimizer.schedule does not fit trainer.num_steps="
                             f"{self.trainer.num_steps}: {e}") from None

    def run(self, workdir: pathlib.Path | str, started_at: float | None = None,
            from_scratch: bool = False) -> dict[str, Any]:
        """Trains in ``workdir`` (resuming if it holds checkpoints) and returns the summary.
        ``from_scratch`` moves unusable checkpoints aside instead of raising."""
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        return train(self, workdir, started_at, from_scratch)
