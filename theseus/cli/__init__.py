"""The ``theseus`` command (placeholder until the CLI issue lands)."""

import sys


def main() -> None:
    """Entry point of the ``theseus`` console script."""
    print("error: the theseus command is being built; use launch.py for now.", file=sys.stderr)
    sys.exit(2)
