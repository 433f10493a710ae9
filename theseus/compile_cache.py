"""JAX's persistent compilation cache, on by default for every run.

A second run of the same experiment loads its compiled programs from disk instead of
compiling them again. ``THESEUS_COMPILE_CACHE`` decides where they go:

- unset: ``$THESEUS_CACHE/jax`` when ``THESEUS_CACHE`` is set, else ``~/.cache/theseus/jax``;
- ``off`` (or ``0``, ``false``, ``no``, empty): no persistent cache;
- anything else: that directory.

Every program is cached, however small and however quickly it compiled (JAX's defaults skip
programs that compile in under a second, which is most of them on a CPU).
"""

from __future__ import annotations

import os
import pathlib

from theseus.config.errors import ConfigError

ENV_VAR = "THESEUS_COMPILE_CACHE"
OFF_VALUES = ("", "0", "off", "false", "no")


def cache_dir(environ: dict[str, str] | None = None) -> pathlib.Path | None:
    """The cache directory ``THESEUS_COMPILE_CACHE`` (or its default) names; None when off."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR)
    if value is None:
        root = env.get("THESEUS_CACHE")
        base = pathlib.Path(root) if root else pathlib.Path("~/.cache/theseus")
        return (base / "jax").expanduser()
    if value.strip().lower() in OFF_VALUES:
        return None
    return pathlib.Path(value).expanduser()


def enable(directory: pathlib.Path | str | None = None) -> pathlib.Path | None:
    """Turns the persistent cache on in ``directory`` (default: ``cache_dir()``); returns the
    directory in use, or None when the cache is off.

    Call it before the first compilation: JAX decides whether to use the cache once, at its
    first compile. Raises ConfigError when the directory cannot be created.
    """
    path = pathlib.Path(directory).expanduser() if directory is not None else cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the compilation cache directory {path} ({e.strerror}); "
                         f"set {ENV_VAR} to a writable directory, or to 'off'.") from None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
