"""``DataError``: bad data found while a run prepares or reads it.

It is a ``ConfigError`` (so ``launch.py`` prints one ``error:`` line and exits 2, as for a
bad config) and a ``ValueError`` (so code that checks data the way it always did still
catches it). ``data_errors()`` turns the ``ValueError`` of a data step into one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from theseus.config import ConfigError


class DataError(ConfigError, ValueError):
    """A corpus, shard or split that cannot feed the run; the message says how to fix it."""


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Re-raises a ``ValueError`` of the block as a ``DataError`` with the same sentence."""
    try:
        yield
    except DataError:
        raise
    except ValueError as e:
        raise DataError(str(e)) from None
