"""An experiment: the four parts every run is made of, and ``run`` to train it."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from theseus.data.pipeline import TokenizedText
from theseus.models.gpt import GPTConfig
from theseus.training.optimizer import AdamW
from theseus.training.trainer import Trainer, train


@dataclasses.dataclass(frozen=True)
class Experiment:
    """``model``, ``data``, ``optimizer`` and ``trainer``: what a config function returns as a
    ``fdl.Config(Experiment, ...)`` and ``fdl.build`` turns into this object."""

    model: GPTConfig
    data: TokenizedText
    optimizer: AdamW
    trainer: Trainer

    def validate(self) -> None:
        """Checks what no single part can check alone; raises ValueError before any compute."""
        import jax

        self.trainer.check_devices(jax.device_count())
        if self.model.vocab_size < self.data.tokenizer.vocab_size:
            raise ValueError(f"model.vocab_size ({self.model.vocab_size}) is smaller than "
                             f"data.tokenizer.vocab_size ({self.data.tokenizer.vocab_size}).")
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
