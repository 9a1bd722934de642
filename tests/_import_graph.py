"""The import graph of the project's own modules, read from the source with ``ast`` (nothing is imported).

:mod:`tests.test_architecture` checks its rules on it; ``python -m tests._import_graph`` prints the package-level
import order (docs/CONTRACTS.md is written from it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rlnorm", "envs", "agents", "benchmarks")


@dataclass(frozen=True)
class Import:
    """One import statement's target inside the project.

    :param source: the importing module
    :param target: the imported project module (a ``from m import n`` of a submodule ``n`` targets ``m.n``)
    :param names: the names taken from it (``from m import a, b``), empty for ``import m``
    :param line: line number in the importing file
    :param in_function: inside a function body (runs later, still part of the graph)
    """

    source: str
    target: str
    names: tuple[str, ...]
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    """``agents/report/compare.py`` -> ``agents.report.compare``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_files() -> dict[str, Path]:
    """Every module of :data:`PACKAGES`, by dotted name."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


@cache
def parse(module: str) -> ast.Module:
    """The syntax tree of a project module."""
    path = project_files()[module]
    return ast.parse(path.read_text(), str(path))


def is_package(module: str) -> bool:
    """Whether the module is a package (an ``__init__.py``)."""
    return project_files()[module].name == "__init__.py"


def resolve_relative(module: str, level: int, name: str | None) -> str:
    """The absolute module of ``from .{name} import ...`` written in ``module``."""
    base = module.split(".") if is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _walk_with_scope(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it sits inside a function."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, in_function = stack.pop()
        yield node, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def imports_of(module: str) -> list[Import]:
    """The imports of one module that land in the project, module level and inside functions."""
    modules = project_files()
    found = []
    for node, in_function in _walk_with_scope(parse(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    found.append(Import(module, alias.name, (), node.lineno, in_function))
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(module, node.level, node.module) if node.level else node.module or ""
            if base.split(".")[0] not in PACKAGES:
                continue
            plain = tuple(a.name for a in node.names if f"{base}.{a.name}" not in modules)
            if plain:
                found.append(Import(module, base, plain, node.lineno, in_function))
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.append(Import(module, f"{base}.{alias.name}", (), node.lineno, in_function))
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    """The imports of every project module."""
    return tuple(imp for module in project_files() for imp in imports_of(module))


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (module level and inside functions)."""
    graph: dict[str, set[str]] = {m: set() for m in project_files()}
    for imp in all_imports():
        if imp.target in graph and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one node (Tarjan): each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component, as ``[a, b, ..., a]``."""
    return [cycle_through(graph, component) for component in strongly_connected(graph)]


def cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle inside one strongly connected component, starting at its first module by name."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for succ in sorted(graph[node] & component):
            if succ == start:
                return [*paths[node], start]
            if succ not in paths:
                paths[succ] = [*paths[node], succ]
                frontier.append(succ)
    raise AssertionError(f"not a cycle: {sorted(component)}")  # a strongly connected component always has one


def group_of(module: str, depth: int) -> str:
    """The module's package at ``depth`` dotted parts (``agents.report.stats``, 2 -> ``agents.report``)."""
    return ".".join(module.split(".")[:depth])


def package_graph(prefix: str = "", depth: int = 1) -> dict[str, set[str]]:
    """The import graph folded to packages: ``depth`` dotted parts, modules under ``prefix`` only.

    A package's ``__init__`` is left out: it re-exports from its submodules, so it would make every package
    depend on itself through its parent.
    """
    graph: dict[str, set[str]] = {}
    for source, targets in import_graph().items():
        if not source.startswith(prefix) or is_package(source):
            continue
        node = group_of(source, depth)
        graph.setdefault(node, set())
        for target in targets:
            if target.startswith(prefix) and group_of(target, depth) != node:
                graph[node].add(group_of(target, depth))
    return graph


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Topological levels: each list imports only from the lists before it.

    The members of a cycle stay together as one entry ``a+b`` (so the order can still be printed while a cycle
    is being removed; the tests fail on it anyway).
    """
    merged = {member: "+".join(sorted(c)) for c in strongly_connected(graph) for member in c}
    condensed: dict[str, set[str]] = {}
    for node, targets in graph.items():
        condensed.setdefault(merged.get(node, node), set()).update(merged.get(t, t) for t in targets)
    placed: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(condensed):
        level = sorted(n for n in condensed if n not in done and condensed[n] <= done | {n})
        placed.append(level)
        done.update(level)
    return placed


def all_import_nodes() -> Iterator[tuple[str, ast.Import | ast.ImportFrom]]:
    """Every import statement of every project module (also outside the project)."""
    for module in project_files():
        for node in ast.walk(parse(module)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield module, node


def imported_top_levels(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The top-level packages an import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if node.level:
        return [resolve_relative(module, node.level, node.module).split(".")[0]]
    return [(node.module or "").split(".")[0]]


def private_name(name: str) -> bool:
    """``_x`` but not ``__x__``."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def location(module: str, line: int) -> str:
    """``path:line`` relative to the repository root."""
    return f"{project_files()[module].relative_to(ROOT)}:{line}"


def module_aliases(module: str) -> dict[str, str]:
    """Local names bound to other project modules in ``module`` (``import a.b as c``, ``from a import b``)."""
    modules = project_files()
    aliases = {}
    for node in ast.walk(parse(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.name != module:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in modules and full != module:
                    aliases[alias.asname or alias.name] = full
    # ``import agents.x`` binds ``agents``: attribute chains through it are not followed (rare, and public)
    return {local: target for local, target in aliases.items() if "." not in local}


def names_defined_in(modules: list[str]) -> set[str]:
    """Every name the given modules define: functions, classes, assigned names and attributes, registered buffers
    and parameters, import aliases."""
    defined: set[str] = set()
    for module in modules:
        for node in ast.walk(parse(module)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for sub in (n for t in targets for n in ast.walk(t)):
                    if isinstance(sub, ast.Name):
                        defined.add(sub.id)
                    elif isinstance(sub, ast.Attribute):
                        defined.add(sub.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                first = node.args[0]
                if node.func.attr in ("register_buffer", "register_parameter") and isinstance(first, ast.Constant):
                    defined.add(str(first.value))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined.update(alias.asname or alias.name for alias in node.names)
    return defined


def torch_private_uses() -> dict[tuple[str, str], list[int]]:
    """``(module, name) -> lines`` of every private torch name that rlnorm touches.

    A private name imported from torch, or a ``._name`` attribute that rlnorm does not define itself (so it is
    torch's: ``torch._VF``, ``tensor._version``, ``module._register_load_state_dict_pre_hook``, ...).
    """
    modules = [m for m in project_files() if m.split(".")[0] == "rlnorm"]
    own = names_defined_in(modules) - {
        alias.asname or alias.name
        for m in modules
        for node in ast.walk(parse(m))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch"
        for alias in node.names
        if private_name(alias.name)
    }
    uses: dict[tuple[str, str], list[int]] = {}
    for module in modules:
        for node in ast.walk(parse(module)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
                for alias in node.names:
                    if private_name(alias.name):
                        uses.setdefault((module, alias.name), []).append(node.lineno)
            elif isinstance(node, ast.Attribute) and private_name(node.attr) and node.attr not in own:
                uses.setdefault((module, node.attr), []).append(node.lineno)
    return uses


if __name__ == "__main__":
    print("packages:", " <- ".join(" ".join(level) for level in layers(package_graph("", 1))))
    print("inside agents:", " <- ".join(" ".join(level) for level in layers(package_graph("agents.", 2))))
    for prefix in ("rlnorm.", "envs."):
        print(f"inside {prefix[:-1]}:", " <- ".join(" ".join(level) for level in layers(package_graph(prefix, 2))))
