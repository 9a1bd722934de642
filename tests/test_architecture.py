"""The shape of the code base, read from the source (:mod:`tests._import_graph`; nothing is imported).

* the import graph of the project's own modules (imports inside functions count too) has no cycle;
* no module imports another module's ``_private`` name;
* the layers hold: ``rlnorm`` <- ``envs`` <- ``agents`` <- ``benchmarks``, and nothing imports ``tests``;
* torch's private API stays in the places listed in :data:`TORCH_PRIVATE_USES`;
* a module over :data:`MAX_LINES` lines says why at the top.
"""

from __future__ import annotations

import ast
import re

import pytest

from tests._import_graph import (
    PACKAGES,
    ROOT,
    all_import_nodes,
    all_imports,
    cycle_through,
    find_cycles,
    group_of,
    import_graph,
    imported_top_levels,
    location,
    module_aliases,
    package_graph,
    parse,
    private_name,
    project_files,
    strongly_connected,
    torch_private_uses,
)

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
    ("rlnorm.torch_internals", "_BatchNorm"): "every torch BN class at once",
    ("rlnorm.torch_internals", "_ConvNd"): "every torch convolution class at once",
    (
        "rlnorm.torch_internals",
        "_WeightNorm",
    ): "torch's WN parametrization: subclassed; how WN layers are found",
    ("rlnorm.torch_internals", "_C"): "torch._C.TensorBase.data: the raw .data descriptor TrackedParameter wraps",
    ("rlnorm.torch_internals", "_VF"): "torch._VF.lstm / lstm_cell: the fused LSTM kernels with precomputed weights",
    ("rlnorm.torch_internals", "_weight_norm"): "torch._weight_norm: the fused g * v / ||v|| kernel",
    ("rlnorm.torch_internals", "_version"): "tensor._version: the inference cache's key",
    ("rlnorm.torch_internals", "_conv_forward"): "a convolution's forward with a masked weight",
    ("rlnorm.torch_internals", "_parameters"): "a module's own parameters, for pickling WN layers",
    ("rlnorm.torch_internals", "_buffers"): "a module's own buffers, for pickling WN layers",
    ("rlnorm.torch_internals", "_register_load_state_dict_pre_hook"): "renames the state-dict keys of older WN layers",
    # TorchScript compiles this call itself (a wrapper from another module would have to be scriptable too)
    ("rlnorm.rnn.scripting", "_weight_norm"): "torch._weight_norm in the TorchScript twin of WNLSTM",
}


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
        cycle = cycle_through(graph, component)
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
        aliases = module_aliases(module)
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


def test_package_order_inside_agents_has_no_cycle() -> None:
    """The sub-packages of ``agents`` import one way (docs/CONTRACTS.md lists the order)."""
    graph = package_graph("agents.", 2)
    cycles = find_cycles(graph)
    assert not cycles, "agents sub-packages import each other in a circle:\n" + "\n".join(map(" -> ".join, cycles))


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
