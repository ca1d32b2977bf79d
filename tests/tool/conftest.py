"""Fixtures for the tool's tests: fake backends registered for one test."""

import sys
import types

import pytest

from crossconv import registry
from crossconv.registry import BACKENDS, Backend, Implementation


@pytest.fixture
def fake_backend(monkeypatch):
    """``install(name, {op: torch function}, limits)``: a torch backend for this test only."""
    pytest.importorskip("torch")

    def install(name, functions, limits=None, **implementation):
        module = types.ModuleType(f"fake_backend_{name}")
        for op, fn in functions.items():
            setattr(module, op, fn)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(BACKENDS, name, Backend(name, module.__name__, "torch", ("torch",), "test"))
        impls = tuple(Implementation(op, name, limits=limits or {}, **implementation)
                      for op in functions)
        monkeypatch.setattr(registry, "IMPLEMENTATIONS", registry.IMPLEMENTATIONS + impls)
        return impls

    return install
