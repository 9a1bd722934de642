"""The shape of the code base, read from the source with ``ast`` (nothing is imported).

* the import graph of the project's own modules (imports inside functions count too) has no cycle;
* no module imports another module's ``_private`` name;
* the layers hold: ``rlnorm`` <- ``envs`` <- ``agents`` (and ``benchmarks`` on top);
* torch's private API stays in the places listed in :data:`TORCH_PRIVATE_USES`;
* a module over :data:`MAX_LINES` lines says why at the top.

``python -m tests.test_architecture`` prints the package-level import order (docs/CONTRACTS.md is written from it).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rlnorm", "envs", "agents", "benchmarks")
MAX_LINES = 400
LONG_MODULE_REASON = re.compile(r"Longer than \d+ lines because \S")

#: package -> top-level names it must never import (the layering: rlnorm <- envs <- agents <- benchmarks; the
#: test suite sits on top of everything)
FORBIDDEN_IMPORTS: dict[str, tuple[str, ...]] = {
    "rlnorm": ("envs", "agents", "benchmarks", "tests", "stable_baselines3", "sb3_contrib", "gymnasium", "gym"),
    "envs": ("agents", "benchmarks", "tests"),
    "agents": ("benchmarks", "tests"),
    "benchmarks": ("tests",),
}

#: torch's private names used inside rlnorm: (module, name) -> why. Each one may break with a torch release, so
#: a new use is added here on purpose (the test fails on any use not listed, and on a listed one that is gone).
TORCH_PRIVATE_USES: dict[tuple[str, str], str] = {
    ("rlnorm.weight_norm", "_WeightNorm"): "subclassed for the inference cache; isinstance test of WN layers",
    ("rlnorm.weight_norm", "_C"): "torch._C.TensorBase.data: the raw .data descriptor TrackedParameter wraps",
    ("rlnorm.weight_norm", "_version"): "tensor._version: the inference cache's key (changes on every in-place write)",
    ("rlnorm.weight_norm", "_parameters"): "ParametrizationList._parameters/_buffers: pickling WN layers",
    ("rlnorm.weight_norm", "_buffers"): "ParametrizationList._parameters/_buffers: pickling WN layers",
    ("rlnorm.weight_norm", "_register_load_state_dict_pre_hook"): "loads the state-dict keys of older WN layers",
    ("rlnorm.pixelcnn.layers", "_WeightNorm"): "MaskedWeightNorm subclasses it so WN helpers treat it as WN",
    ("rlnorm.pixelcnn.layers", "_weight_norm"): "torch._weight_norm: the fused g * v / ||v|| kernel",
    ("rlnorm.pixelcnn.layers", "_conv_forward"): "nn.Conv2d._conv_forward: the convolution with the masked weight",
    ("rlnorm.rnn.wn_lstm", "_VF"): "torch._VF.lstm / lstm_cell: the fused LSTM kernel with precomputed weights",
    ("rlnorm.rnn.scripting", "_weight_norm"): "torch._weight_norm in the TorchScript twin of WNLSTM",
    ("rlnorm.diagnostics", "_BatchNorm"): "nn.modules.batchnorm._BatchNorm: every torch BN class at once",
    ("rlnorm.layers", "_ConvNd"): "nn.modules.conv._ConvNd: every torch convolution class at once",
}


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
    return [_cycle_through(graph, component) for component in strongly_connected(graph)]


def _cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
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


def test_import_graph_sees_every_package() -> None:
    graph = import_graph()
    assert {m.split(".")[0] for m in graph} == set(PACKAGES)
    # sanity: imports inside functions are edges too (load_policy imports agents.policies.algos lazily)
    assert "agents.policies.algos" in graph["agents.studies.batch_probe"]


def test_find_cycles_reports_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    problems = []
    for component in strongly_connected(graph):
        cycle = _cycle_through(graph, component)
        edges = [
            f"  {location(imp.source, imp.line)}: {imp.source} imports {imp.target}"
            + (" (inside a function)" if imp.in_function else "")
            for imp in all_imports()
            if imp.source in component and imp.target in component and imp.source != imp.target
        ]
        problems.append(" -> ".join(cycle) + "\n" + "\n".join(sorted(set(edges))))
    assert not problems, "import cycles (imports inside functions count):\n" + "\n".join(problems)


def test_no_private_names_across_modules() -> None:
    """``from m import _x`` and ``m._x`` of another project module: make the name public or keep it at home.

    A ``_module`` is private to its package: its siblings may import it (``benchmarks._timing``).
    """
    problems = []
    for imp in all_imports():
        for name in imp.names:
            if private_name(name):
                problems.append(f"{location(imp.source, imp.line)}: {imp.source} imports {name} from {imp.target}")
        parts = imp.target.split(".")
        for i, part in enumerate(parts):
            if private_name(part) and group_of(imp.source, len(parts[:i])) != ".".join(parts[:i]):
                problems.append(f"{location(imp.source, imp.line)}: {imp.source} imports private module {imp.target}")
    for module in project_files():
        aliases = _module_aliases(module)
        for node in ast.walk(parse(module)):
            if (
                isinstance(node, ast.Attribute)
                and private_name(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                target = aliases[node.value.id]
                problems.append(f"{location(module, node.lineno)}: {module} uses {target}.{node.attr}")
    assert not problems, "private names used across modules:\n" + "\n".join(problems)


def _module_aliases(module: str) -> dict[str, str]:
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


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_layering(package: str) -> None:
    forbidden = FORBIDDEN_IMPORTS[package]
    problems = [
        f"{location(module, node.lineno)}: {module} imports {top}"
        for module, node in all_import_nodes()
        if module.split(".")[0] == package
        for top in imported_top_levels(module, node)
        if top in forbidden
    ]
    assert not problems, f"{package} must not import {', '.join(forbidden)}:\n" + "\n".join(problems)


@pytest.mark.xfail(
    strict=True,
    reason="agents.pipeline.cli imports agents.report.compare (the report after training) while agents.report.* "
    "import agents.pipeline.tb_layout (the tag names): tb_layout belongs below both (docs/CONTRACTS.md)",
)
def test_package_order_inside_agents_has_no_cycle() -> None:
    """The sub-packages of ``agents`` import one way (docs/CONTRACTS.md lists the order)."""
    graph = package_graph("agents.", 2)
    cycles = find_cycles(graph)
    assert not cycles, "agents sub-packages import each other in a circle:\n" + "\n".join(map(" -> ".join, cycles))


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


def test_torch_private_api_only_where_listed() -> None:
    uses = torch_private_uses()
    new = [f"{location(m, lines[0])}: {m} uses torch's {n}" for (m, n), lines in uses.items()]
    new = [line for line, key in zip(new, uses) if key not in TORCH_PRIVATE_USES]
    gone = [f"{m}: {n}" for (m, n) in TORCH_PRIVATE_USES if (m, n) not in uses]
    assert not new, "torch private API used outside TORCH_PRIVATE_USES (list it there, with why):\n" + "\n".join(new)
    assert not gone, "listed in TORCH_PRIVATE_USES but no longer used (remove it):\n" + "\n".join(gone)


def test_long_modules_say_why() -> None:
    problems = []
    for module, path in project_files().items():
        n_lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(parse(module)) or ""
        if n_lines > MAX_LINES and not LONG_MODULE_REASON.search(docstring):
            problems.append(f"{path.relative_to(ROOT)}: {n_lines} lines")
    assert not problems, (
        f"modules over {MAX_LINES} lines: split them, or say at the top of the docstring "
        f"'Longer than {MAX_LINES} lines because ...':\n" + "\n".join(problems)
    )


if __name__ == "__main__":
    print("packages:", " <- ".join(" ".join(level) for level in layers(package_graph("", 1))))
    print("inside agents:", " <- ".join(" ".join(level) for level in layers(package_graph("agents.", 2))))
    for prefix in ("rlnorm.", "envs."):
        print(f"inside {prefix[:-1]}:", " <- ".join(" ".join(level) for level in layers(package_graph(prefix, 2))))
