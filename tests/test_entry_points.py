"""Every command line starts under ``python -OO``, and every module path of 0.1 still imports.

The checks run in subprocesses (a fresh interpreter: ``-OO`` strips docstrings, and a module path warns only on
its first import); each subprocess runs a batch of checks and prints one JSON answer, to keep the suite fast.
``tests/data/legacy_0_1_0/public_names.json`` holds the public top-level names of every 0.1 module that moved or
became a package (read from the 0.1 source, commit ec85b2f): each must still resolve through its old path.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.__main__ import COMMANDS, STUDIES

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("[a-z]*.py"))
PUBLIC_NAMES_0_1: dict[str, list[str]] = json.loads(
    (ROOT / "tests" / "data" / "legacy_0_1_0" / "public_names.json").read_text()
)
#: (old module, name) of 0.1 that no longer resolves, on purpose -> why (CHANGELOG.md says it too)
REMOVED_NAMES: dict[tuple[str, str], str] = {
    ("agents.recurrent", "register_recurrent_policies"): "agents.policies.register_policies registers every alias",
    ("agents.norm_options", "norm_aliases"): "the alias tables are built by agents.policies.base.define_aliases",
    ("agents.sweep", "PROGRESS_LINE_EVERY"): "progress lines are agents.pipeline.progress's (LINE_EVERY_NON_TTY)",
}

#: runs every ``python -m agents COMMAND --help`` and ``python -m benchmarks.NAME --help`` in one interpreter
HELP_SCRIPT = """
import contextlib, io, json, runpy, sys
from agents.__main__ import COMMANDS, STUDIES, main

def run(fn):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = fn()
    except SystemExit as exit:
        code = exit.code
    except Exception as err:
        code = f"{type(err).__name__}: {err}"
    return [code, out.getvalue()]

def bench(name):
    sys.argv = [name, "--help"]
    runpy.run_module(f"benchmarks.{name}", run_name="__main__")

answers = {"optimize": sys.flags.optimize}
for command in ["--help", *COMMANDS, "study"]:
    answers[f"agents {command}"] = run(lambda: main([command, "--help"]))
for study in STUDIES:
    answers[f"agents study {study}"] = run(lambda: main(["study", study, "--help"]))
for name in sys.argv[1:]:
    answers[f"benchmarks.{name}"] = run(lambda: bench(name))
print(json.dumps(answers))
"""

#: imports every old module path (both tables) in one interpreter; prints what each gave
MOVED_SCRIPT = """
import importlib, inspect, json, sys, warnings
import agents, rlnorm
from rlnorm.moved import MovedModuleFinder

names_0_1 = json.loads(sys.argv[1])
moves = {}
for finder in sys.meta_path:
    if isinstance(finder, MovedModuleFinder):
        moves.update(finder.moves)
answers = {}
for old, targets in sorted(moves.items()):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    new = [importlib.import_module(t) for t in targets]
    # each class defined in a new module is the very object the old path gives
    classes = [(t.__name__, n) for t in new for n, c in vars(t).items()
               if inspect.isclass(c) and c.__module__ == t.__name__ and not n.startswith("_")]
    answers[old] = {
        "targets": list(targets),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)],
        "other_classes": [f"{t}.{n}" for t, n in classes if getattr(module, n, None) is not getattr(sys.modules[t], n)],
    }
missing = {}
for old, names in names_0_1.items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module(old)
    missing[old] = [n for n in names if not hasattr(module, n)]
print(json.dumps({"moves": answers, "missing": missing}))
"""


def run_python(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python ARGS...`` from the repository root (the checkout's modules, not an installed copy)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def json_answer(result: subprocess.CompletedProcess) -> dict:
    """The JSON a check script printed last; fails with its stderr when it did not get that far."""
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def help_answers() -> dict:
    """Every command's ``--help`` under ``python -OO``, from one subprocess."""
    return json_answer(run_python("-OO", "-c", HELP_SCRIPT, *BENCHMARKS))


@pytest.fixture(scope="module")
def moved_answers() -> dict:
    """What every old module path gives, from one subprocess."""
    return json_answer(run_python("-c", MOVED_SCRIPT, json.dumps(PUBLIC_NAMES_0_1)))


def test_help_runs_without_docstrings(help_answers: dict) -> None:
    assert help_answers["optimize"] == 2
    labels = [
        "agents --help",
        *(f"agents {c}" for c in COMMANDS),
        "agents study",
        *(f"agents study {s}" for s in STUDIES),
        *(f"benchmarks.{b}" for b in BENCHMARKS),
    ]
    problems = [
        f"{label}: exit {help_answers[label][0]!r}\n{help_answers[label][1][-600:]}"
        for label in labels
        if help_answers[label][0] not in (0, None) or "usage:" not in help_answers[label][1]
    ]
    assert not problems, "--help under python -OO:\n" + "\n".join(problems)


def test_every_command_goes_through_python_m_agents() -> None:
    """``python -m agents COMMAND`` is the one entry point: a module that runs as ``__main__`` is one of its commands
    (benchmarks apart: ``python -m benchmarks.<name>``)."""
    commands = {module for module, _ in COMMANDS.values()} | set(STUDIES.values()) | {"agents.__main__"}
    runnable = []
    for path in sorted(p for package in ("agents", "envs", "rlnorm") for p in (ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body):
            runnable.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    stray = sorted(set(runnable) - commands)
    assert not stray, f"modules with a __main__ block that python -m agents does not dispatch to: {stray}"


def test_python_oo_m_agents_names_an_unknown_command() -> None:
    """The real ``python -OO -m agents`` (``__main__`` and all), cheaply: an unknown command is named."""
    result = run_python("-OO", "-m", "agents", "trian")
    assert result.returncode == 2
    assert "unknown command 'trian'" in result.stderr and "train" in result.stderr


def test_old_command_path_runs_and_warns() -> None:
    result = run_python("-m", "agents.train", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: python -m agents train" in result.stdout
    assert "DeprecationWarning" in result.stderr and "python -m agents" in result.stderr


def test_old_module_paths_warn_with_the_new_path(moved_answers: dict) -> None:
    problems = [
        f"{old}: warnings {answer['warnings']}"
        for old, answer in moved_answers["moves"].items()
        if not any(old in w and answer["targets"][0] in w for w in answer["warnings"])
    ]
    assert not problems, "an old path must warn once, naming its new module:\n" + "\n".join(problems)


def test_old_module_paths_give_the_same_classes(moved_answers: dict) -> None:
    problems = [f"{old}: {answer['other_classes']}" for old, answer in moved_answers["moves"].items()]
    problems = [p for p, a in zip(problems, moved_answers["moves"].values()) if a["other_classes"]]
    assert not problems, "the old path gives another object than the new module's class:\n" + "\n".join(problems)


def test_every_table_is_checked(moved_answers: dict) -> None:
    """Both tables (agents.moved and rlnorm's) are installed, and every moved path has its 0.1 names listed."""
    moved = set(moved_answers["moves"])
    assert "agents.train" in moved and "rlnorm.pixelcnn_layers" in moved
    assert moved <= set(PUBLIC_NAMES_0_1)


@pytest.mark.parametrize("old", sorted(PUBLIC_NAMES_0_1))
def test_names_of_0_1_still_resolve(old: str, moved_answers: dict) -> None:
    missing = [n for n in moved_answers["missing"][old] if (old, n) not in REMOVED_NAMES]
    assert not missing, f"{old}: these 0.1 names no longer resolve through the old path: {missing}"


def test_removed_names_are_really_gone(moved_answers: dict) -> None:
    """A name listed in :data:`REMOVED_NAMES` that resolves again is taken off the list."""
    back = [f"{old}.{n}" for old, n in REMOVED_NAMES if n not in moved_answers["missing"][old]]
    assert not back, f"listed as removed but resolving: {back}"
