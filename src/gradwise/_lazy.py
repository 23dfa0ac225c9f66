"""Packages that import their public names on first use (PEP 562).

``gradwise``, ``gradwise.data``, ``gradwise.diagnosis`` and ``gradwise.optim`` each map their
public names to the submodule that defines them, so importing the package, or one of its
light submodules, does not wait for torch, pandas or Optuna.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str], submodules: tuple[str, ...] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``(__getattr__, __dir__)``: ``homes`` maps each public name to the
    submodule (relative, ``".chain"``) that defines it; ``submodules`` are handed out whole."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            value = getattr(importlib.import_module(homes[name], package), name)
        elif name in submodules:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes, *submodules})

    return __getattr__, __dir__
