"""Loading a finished (or running) run back: its experiment, its newest trained parameters,
and text generated from them. Used by ``theseus sample`` and ``quick().params()``.

Only the ``state`` item of an orbax checkpoint is read (not the data-iterator position), from
``checkpoints/<step>/`` — the newest committed one unless a step is asked for — or from
``best/<version>/`` (the lowest validation loss; its ``meta`` item records the step).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from theseus.config.errors import ConfigError

COMMIT_MARKER = "commit_success.txt"


@dataclasses.dataclass
class Restored:
    """A run's experiment, model graph and parameters at ``step``."""

    experiment: Any
    graphdef: Any
    params: dict
    step: int


def load_experiment(workdir: pathlib.Path) -> Any:
    """Builds the experiment recorded in ``workdir/config.json``."""
    from theseus.config.loading import load_config
    from theseus.runner import build_experiment

    if not (workdir / "config.json").is_file():
        raise ConfigError(f"'{workdir}' is not a run directory (it has no config.json)")
    cfg, _ = load_config(str(workdir / "config.json"))
    return build_experiment(cfg)


def checkpoint_steps(folder: pathlib.Path) -> list[int]:
    """Steps of the committed checkpoints in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    steps = [int(p.name) for p in folder.iterdir()
             if p.name.isdigit() and (p / COMMIT_MARKER).exists()]
    return sorted(steps, reverse=True)


def _pick_step(workdir: pathlib.Path, folder: pathlib.Path, step: int | None) -> int:
    """The step to restore from ``folder``; ConfigError if there is none (or not that one)."""
    steps = checkpoint_steps(folder)
    if not steps:
        raise ConfigError(f"run '{workdir}' has no complete checkpoint in {folder.name}/ yet")
    if step is None:
        return steps[0]
    if step not in steps:
        raise ConfigError(f"run '{workdir}' has no checkpoint of step {step}; it has steps "
                          f"{', '.join(map(str, sorted(steps)))}")
    return step


def restore_params(workdir: pathlib.Path | str, step: int | None = None, best: bool = False
                   ) -> Restored:
    """The trained parameters of the run in ``workdir``: the newest checkpoint, checkpoint
    ``step``, or (``best``) the one with the lowest validation loss."""
    import orbax.checkpoint as ocp

    from theseus.training import sharding
    from theseus.training.state import StateFactory

    workdir = pathlib.Path(workdir)
    experiment = load_experiment(workdir)
    folder = workdir / ("best" if best else "checkpoints")
    chosen = _pick_step(workdir, folder, step)
    tx = experiment.optimizer.make(experiment.trainer.num_steps)
    factory = StateFactory(experiment.model, tx, experiment.trainer.seed, sharding.make_mesh())
    handlers = {"state": ocp.StandardCheckpointHandler()}
    args = {"state": ocp.args.StandardRestore(factory.abstract)}
    if best:  # best/ folders are numbered by version; meta/ records the training step
        handlers["meta"] = ocp.JsonCheckpointHandler()
        args["meta"] = ocp.args.JsonRestore()
    manager = ocp.CheckpointManager(folder.absolute(), item_handlers=handlers,
                                    options=ocp.CheckpointManagerOptions(create=False))
    try:
        restored = manager.restore(chosen, args=ocp.args.Composite(**args))
    finally:
        manager.close()
    step = int(restored["meta"]["step"]) if best else chosen
    return Restored(experiment, factory.graphdef, restored["state"]["params"], step)


def generate(restored: Restored, prompt: str, num_tokens: int = 200, temperature: float = 0.8,
             seed: int = 0) -> str:
    """Continues ``prompt`` by ``num_tokens`` tokens sampled from the restored model."""
    from theseus.evaluation.sampling import sample

    if num_tokens < 1:
        raise ConfigError(f"the number of tokens to sample must be at least 1, got {num_tokens}")
    experiment = restored.experiment
    tokenizer = experiment.data.prepare().tokenizer
    ids = tokenizer.encode(prompt) if prompt else []
    ids = ids or [tokenizer.eot_id]
    out = sample(restored.graphdef, restored.params, ids, num_tokens, experiment.model.seq_len,
                 tokenizer.vocab_size, temperature=temperature, seed=seed)
    return tokenizer.decode(out)
