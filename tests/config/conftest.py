"""Keeps config tests from leaking sys.path entries and modules imported from tmp dirs."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Restores sys.path and forgets modules loaded from pytest's temp dirs after each test."""
    saved_path = list(sys.path)
    # The project's own `configs` package (imported by other test modules) would shadow the
    # throwaway `configs` packages these tests create under their tmp dirs.
    hidden = {n: sys.modules.pop(n) for n in list(sys.modules) if n == "configs" or n.startswith("configs.")}
    before = set(sys.modules)
    yield
    sys.path[:] = saved_path
    base = str(tmp_path_factory.getbasetemp())
    for name in set(sys.modules) - before:
        module = sys.modules[name]
        places = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", [])]
        if any(str(p).startswith(base) for p in places):
            del sys.modules[name]
    for name in [n for n in sys.modules if n == "configs" or n.startswith("configs.")]:
        del sys.modules[name]
    sys.modules.update(hidden)
