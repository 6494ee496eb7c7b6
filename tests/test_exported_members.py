"""The public surface is exactly what is intended: everything in ``__all__`` exists, and
nothing public is missing from it."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "module_name", ["engine", "engine.protocols", "engine.asgi", "engine.backends", "app"]
)
def test_all_is_complete_and_real(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = set(module.__all__)
    assert all(hasattr(module, name) for name in exported)
    is_package = hasattr(module, "__path__")

    def ours(value: object) -> bool:
        defined_in = getattr(value, "__module__", None) or ""
        if is_package:  # a package's public names are its re-exports
            return defined_in.startswith(module_name + ".")
        return defined_in == module_name

    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(importlib)) and ours(value)
    }
    assert public <= exported, public - exported


def test_engine_does_not_import_quart() -> None:
    import subprocess
    import sys

    code = "import sys, engine, engine.asgi, engine.protocols; print('quart' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
