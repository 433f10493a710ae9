"""``python -m theseus.cli``: the same as the ``theseus`` command."""

from theseus.cli import main

main()
