"""The one exception type for configuration mistakes made by a user."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """A user's mistake in a config spec, override, flag or saved config.

    Its message is one sentence that says what is wrong, where, and how to fix
    it (the valid choices when there are few). Entry points print it as
    ``error: <message>`` and exit with status 2, without a traceback.
    """


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Returns `` (did you mean 'x'?)`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
