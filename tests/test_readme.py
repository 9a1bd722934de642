"""Every ```python block of README.md runs, as written, except for the training lengths.

Training is shrunk in two documented ways, so the README keeps the numbers a user would run:

* :data:`LEARN_CALL` rewrites each ``.learn(<int>)`` to ``.learn(SHRUNK_TIMESTEPS)``;
* :func:`small_algorithms` sets small rollout / replay defaults (:data:`SMALL_DEFAULTS`) on the SB3 algorithms,
  so one ``learn`` call collects a few hundred steps instead of SB3's 2048 per env. Arguments the README passes win.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

README = Path(__file__).resolve().parent.parent / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: ``.learn(10_000)`` -> ``.learn(SHRUNK_TIMESTEPS)``
LEARN_CALL = re.compile(r"\.learn\(\s*\d[\d_]*\s*\)")
SHRUNK_TIMESTEPS = 64
#: algorithm -> defaults that make one ``learn(SHRUNK_TIMESTEPS)`` quick
SMALL_DEFAULTS: dict[type, dict[str, Any]] = {
    PPO: {"n_steps": 16, "batch_size": 32, "n_epochs": 1},
    RecurrentPPO: {"n_steps": 16, "batch_size": 32, "n_epochs": 1},
    A2C: {"n_steps": 5},
    DQN: {"buffer_size": 1_000, "learning_starts": 16, "batch_size": 16},
}


def python_blocks(text: str) -> list[str]:
    """The code of every ```python block, in order."""
    return PYTHON_BLOCK.findall(text)


def shrink(code: str) -> str:
    """The code with every ``.learn(<int>)`` shortened to :data:`SHRUNK_TIMESTEPS`."""
    return LEARN_CALL.sub(f".learn({SHRUNK_TIMESTEPS})", code)


@pytest.fixture
def small_algorithms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every SB3 algorithm of :data:`SMALL_DEFAULTS` its small defaults for this test."""
    for cls, small in SMALL_DEFAULTS.items():
        original = cls.__init__

        def init(self: Any, *args: Any, _original: Any = original, _small: dict = small, **kwargs: Any) -> None:
            _original(self, *args, **{**_small, **kwargs})

        monkeypatch.setattr(cls, "__init__", init)


def test_readme_has_the_blocks_this_test_expects() -> None:
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3, "README.md: expected at least 3 ```python blocks"
    assert shrink("m.learn(10_000)\nm.learn( 5 )") == f"m.learn({SHRUNK_TIMESTEPS})\nm.learn({SHRUNK_TIMESTEPS})"


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_block_runs(index: int, small_algorithms: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = shrink(python_blocks(README.read_text())[index])
    monkeypatch.chdir(tmp_path)  # whatever a snippet writes stays out of the checkout
    namespace: dict[str, Any] = {"__name__": f"readme_block_{index}"}
    try:
        exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)
    finally:
        for value in namespace.values():  # close the envs a snippet made (ALE threads, subprocesses)
            env = value.get_env() if isinstance(value, BaseAlgorithm) else value
            if isinstance(env, VecEnv):
                env.close()


def test_import_envs_registers_the_ale_ids() -> None:
    """The README names ``ALE/<Game>-v5`` ids; ``import envs`` makes them known to gymnasium."""
    import gymnasium as gym

    import envs  # noqa: F401

    assert "ALE/Pong-v5" in gym.registry
