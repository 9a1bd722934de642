"""Same seed, same parameters after a short training run on CPU (norm policies, PPO/A2C/DQN)."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO

from agents.policies import register_policies
from tests._policy_envs import cartpole_env, minatar_env

register_policies()

RUNS = [
    (PPO, "WnCnnPolicy", dict(n_steps=32, batch_size=32, n_epochs=2, policy_kwargs=dict(wn_data_init=True))),
    (PPO, "BnMlpPolicy", dict(n_steps=32, batch_size=32, n_epochs=2)),
    (A2C, "LnMlpPolicy", dict(n_steps=8)),
    (DQN, "WnMobnMlpPolicy", dict(learning_starts=32, batch_size=16, policy_kwargs=dict(wn_data_init=True))),
]


def _train(algo, alias, kwargs, seed):
    env = minatar_env(seed=seed) if "Cnn" in alias else cartpole_env(seed=seed)
    model = algo(alias, env, seed=seed, **kwargs)
    model.learn(128)
    return model.policy.state_dict()


@pytest.mark.parametrize(("algo", "alias", "kwargs"), RUNS, ids=[f"{a.__name__}-{p}" for a, p, _ in RUNS])
def test_same_seed_gives_same_parameters(algo, alias, kwargs):
    first, second = _train(algo, alias, kwargs, seed=3), _train(algo, alias, kwargs, seed=3)
    assert first.keys() == second.keys()
    tensors = [k for k in first if isinstance(first[k], torch.Tensor)]
    assert all(torch.equal(first[k], second[k]) for k in tensors)
    other = _train(algo, alias, kwargs, seed=4)
    assert any(not torch.equal(first[k], other[k]) for k in tensors if first[k].is_floating_point())
