"""Old module paths that keep importing after a move, with a ``DeprecationWarning`` naming the new path.

A package installs its table once (``install_moved_modules({"old.path": ("new.path", ...)})``). Importing an old
path that moved whole returns the new module itself; an old module that was split returns a view whose names
resolve in its new modules, in order. Either way each class keeps its identity, so models pickled under the old
path (SB3 zips name their policy class by module path) load unchanged. ``python -m old.path`` runs the
``main()`` of the first new module that has one. CHANGELOG.md lists the moves; the aliases go in a later release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import CodeType, ModuleType
from typing import Any


def split_module_view(old: str, targets: Sequence[str]) -> ModuleType:
    """A module named ``old`` whose attributes are looked up in each of ``targets`` in turn."""
    view = ModuleType(old, f"Moved: the names of {old} now live in {', '.join(targets)}.")

    def lookup(name: str) -> Any:
        for target in targets:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} (moved to {', '.join(targets)}) has no attribute {name!r}")

    view.__getattr__ = lookup  # type: ignore[method-assign]  # PEP 562 module __getattr__
    return view


class MovedModuleLoader(importlib.abc.Loader):
    """Loads an old module path as its new module(s)."""

    def __init__(self, old: str, targets: Sequence[str]) -> None:
        self.old = old
        self.targets = tuple(targets)
        self.new_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{self.old} moved to {' / '.join(self.targets)}; import from there", DeprecationWarning, stacklevel=3
        )
        if len(self.targets) > 1:
            return split_module_view(self.old, self.targets)
        module = importlib.import_module(self.targets[0])
        self.new_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # nothing to execute; the import system set the module's __spec__ to the old name: put the real one back
        if self.new_spec is not None:
            module.__spec__ = self.new_spec
        sys.modules[self.old] = module

    def get_code(self, fullname: str) -> CodeType:
        """What ``python -m <old path>`` runs: the ``main()`` of the first new module that has one."""
        source = (
            "import importlib, sys, warnings\n"
            f"targets = {self.targets!r}\n"
            "module = next(m for m in map(importlib.import_module, targets) if hasattr(m, 'main'))\n"
            f"warnings.warn('python -m {self.old} is deprecated: use python -m agents --help', DeprecationWarning)\n"
            "sys.exit(module.main())\n"
        )
        return compile(source, f"<moved module {self.old}>", "exec")


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of one table of moves (old dotted path -> new dotted paths)."""

    def __init__(self, moves: Mapping[str, Sequence[str]]) -> None:
        self.moves = {old: tuple(new) for old, new in moves.items()}

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        """A spec for an old path of the table, ``None`` for every other name."""
        targets = self.moves.get(fullname)
        if targets is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, MovedModuleLoader(fullname, targets))


def install_moved_modules(moves: Mapping[str, Sequence[str]]) -> None:
    """Make each old path in ``moves`` import (with a ``DeprecationWarning``) as its new module(s); idempotent.

    :param moves: old dotted module path -> the new dotted module paths holding its names, main one first
    """
    table = {old: tuple(new) for old, new in moves.items()}
    if any(isinstance(f, MovedModuleFinder) and f.moves == table for f in sys.meta_path):
        return
    sys.meta_path.append(MovedModuleFinder(table))
