"""The registry the policy contract tests run over: every (algorithm, alias) pair, tiny settings per algorithm.

A new algorithm is covered by a row of :func:`agents.policies.algorithm_aliases` (plus, where its defaults are slow,
an entry in :data:`ALGO_KWARGS`): every test parametrized by :data:`ALL_CASES` / :data:`QUICK_CASES` picks it up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise

from agents.policies import algorithm_aliases
from tests._policy_envs import BanditEnv, bandit_env

ALGORITHMS = algorithm_aliases()
#: Algorithms with continuous (Box) actions.
CONTINUOUS = frozenset({"SAC", "TD3", "DDPG", "TQC", "CrossQ"})
#: Names kept only so that models saved before 0.2 load (the same classes as their new names).
OLD_NAMES = frozenset({"CnnNormLstmPolicy", "CnnWnLstmPolicy", "CnnLnLstmPolicy", "CnnBnLstmPolicy"})

_OFF_POLICY = dict(learning_starts=32, batch_size=32, buffer_size=2000, learning_rate=3e-3)
_ON_POLICY = dict(n_steps=32, batch_size=32, learning_rate=3e-3)
#: Small, fast settings per algorithm (a bandit is learned in :data:`LEARN_STEPS` steps).
ALGO_KWARGS: dict[str, dict[str, Any]] = {
    "PPO": dict(_ON_POLICY, n_epochs=4),
    "A2C": dict(n_steps=8, learning_rate=3e-3),
    "TRPO": dict(_ON_POLICY),
    "MaskablePPO": dict(_ON_POLICY, n_epochs=4),
    "RecurrentPPO": dict(_ON_POLICY, n_epochs=4),
    "DQN": dict(_OFF_POLICY, target_update_interval=50, exploration_fraction=0.3),
    "QRDQN": dict(_OFF_POLICY, target_update_interval=50, exploration_fraction=0.3),
    "SAC": dict(_OFF_POLICY),
    "TD3": dict(_OFF_POLICY, action_noise=NormalActionNoise(np.zeros(1), np.full(1, 0.3))),
    "DDPG": dict(_OFF_POLICY, action_noise=NormalActionNoise(np.zeros(1), np.full(1, 0.3))),
    "TQC": dict(_OFF_POLICY),
    "CrossQ": dict(_OFF_POLICY),
}
#: Steps to learn the bandit: on-policy updates are cheap, off-policy ones take a gradient step per env step
LEARN_STEPS = {"on_policy": 1024, "off_policy": 400}


def learn_steps(algo: str) -> int:
    """Steps of :data:`LEARN_STEPS` for ``algo``."""
    return LEARN_STEPS.get(algo, LEARN_STEPS["off_policy" if "learning_starts" in ALGO_KWARGS[algo] else "on_policy"])


def case_param(case: tuple[str, str]) -> Any:
    """``pytest.param`` of a case, marked ``slow`` unless it is one of :data:`QUICK_CASES`."""
    marks = () if case in QUICK_CASES else (pytest.mark.slow,)
    return pytest.param(*case, marks=marks, id=case_id(case))


def sub_networks(policy: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The policy's direct sub-networks (actor, critic, targets, q_net, features extractor, ...)."""
    return dict(policy.named_children())


ALL_CASES: list[tuple[str, str]] = [
    (algo, alias) for algo, (_, aliases) in ALGORITHMS.items() for alias in aliases if alias not in OLD_NAMES
]
#: A representative subset for `make test`: the generic and three named policies of each algorithm.
QUICK_ALIASES = ("NormMlpPolicy", "WnMlpPolicy", "BnMlpPolicy", "LnCnnPolicy", "WnBrnMlpPolicy", "LnLstmPolicy")
QUICK_CASES = [(algo, alias) for algo, alias in ALL_CASES if alias in QUICK_ALIASES or alias == "WnCnnLstmPolicy"]


def case_id(case: tuple[str, str]) -> str:
    return f"{case[0]}-{case[1]}"


def observation_kind(alias: str) -> str:
    """``image`` for Cnn aliases, ``dict`` for MultiInput ones, ``vector`` otherwise."""
    return "image" if "Cnn" in alias else "dict" if "MultiInput" in alias else "vector"


def small_policy_kwargs(algo: str, alias: str) -> dict[str, Any]:
    """Small networks for the case (the architecture options of each policy family)."""
    kwargs: dict[str, Any] = {"net_arch": [16]}
    kind = observation_kind(alias)
    if kind == "image":
        kwargs["features_extractor_kwargs"] = {"features_dim": 16}
    elif kind == "dict":
        kwargs["features_extractor_kwargs"] = {"cnn_output_dim": 16}
    if algo == "RecurrentPPO":
        kwargs["lstm_hidden_size"] = 16
    if algo in ("QRDQN", "TQC"):
        kwargs["n_quantiles"] = 5
    return kwargs


def make_model(
    algo: str, alias: str, seed: int = 0, policy_kwargs: dict[str, Any] | None = None, **overrides: Any
) -> BaseAlgorithm:
    """The case's algorithm with the case's policy on the bandit task, small and seeded, on CPU."""
    env = bandit_env(algo in CONTINUOUS, observation_kind(alias), masked=algo == "MaskablePPO", seed=seed)
    kwargs = {**small_policy_kwargs(algo, alias), **(policy_kwargs or {})}
    settings = {**ALGO_KWARGS[algo], **overrides}
    return ALGORITHMS[algo][0](alias, env, policy_kwargs=kwargs, seed=seed, device="cpu", **settings)


def observations(model: BaseAlgorithm, n: int = 8, seed: int = 0) -> Any:
    """``n`` observations of the model's space (numpy, or a dict of numpy arrays)."""
    space = model.observation_space
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    if isinstance(samples[0], dict):
        return {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    return np.stack(samples)


def deterministic_actions(model: BaseAlgorithm, obs: Any) -> np.ndarray:
    """Deterministic actions on ``obs`` (episode starts for recurrent policies, all actions valid if masked)."""
    kwargs: dict[str, Any] = {"deterministic": True}
    if ALGORITHMS["RecurrentPPO"][0] is type(model):
        kwargs["episode_start"] = np.ones(len(next(iter(obs.values())) if isinstance(obs, dict) else obs), bool)
    actions, _ = model.predict(obs, **kwargs)
    return np.asarray(actions)


def task_observations(model: BaseAlgorithm, n: int = 32, seed: int = 2) -> Any:
    """``n`` observations as the bandit emits them (a narrow part of the space, see :class:`BanditEnv`)."""
    env = BanditEnv(isinstance(model.action_space, spaces.Box), observation_kind_of(model.observation_space))
    env.reset(seed=seed)
    samples = [env.observe() for _ in range(n)]
    if isinstance(samples[0], dict):
        return {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    return np.stack(samples)


def bandit_error(model: BaseAlgorithm, n: int = 32, seed: int = 2) -> float:
    """How far the deterministic actions on ``n`` of the task's observations are from the bandit's best: the
    fraction of wrong actions (discrete; a random policy: 2/3) or the mean ``|a - 0.5|`` (continuous; 0.625)."""
    actions = deterministic_actions(model, task_observations(model, n, seed))
    if isinstance(model.action_space, spaces.Box):
        return float(np.mean(np.abs(actions - BanditEnv.BEST_CONTINUOUS)))
    return float(np.mean(actions != BanditEnv.BEST_DISCRETE))


def observation_kind_of(space: spaces.Space) -> str:
    """The :class:`BanditEnv` observation kind of ``space``."""
    return "dict" if isinstance(space, spaces.Dict) else "image" if len(space.shape) == 3 else "vector"


#: :func:`bandit_error` below which a case counts as learned (random policies: 0.67 / 0.625).
LEARNED_ERROR = 0.3


def tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
