"""How the zips in this folder were made: run once at commit 9afdbee (rlnorm 0.1.0, flat ``agents/`` layout).

``python -m tests.data.legacy_0_1_0.make_models`` at that commit writes one small model per policy family and
``expected.npz`` with its deterministic actions and values on fixed observations. ``tests/test_legacy_models.py``
loads them with today's code and checks the same outputs, so a moved class or a changed state dict cannot
break users' saved models unnoticed. Do not regenerate them with newer code: they are the old format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO

import agents  # noqa: F401 - registers the aliases
from tests._policy_envs import cartpole_env, minatar_env

HERE = Path(__file__).resolve().parent

SMALL_CNN = {"features_extractor_kwargs": {"features_dim": 16}}

# name -> (algorithm, alias, env, policy_kwargs, algorithm kwargs)
MODELS = {
    "ppo_wn_cnn": (
        PPO,
        "WnCnnPolicy",
        "minatar",
        {"wn_data_init": True, **SMALL_CNN},
        {"n_steps": 16, "batch_size": 16},
    ),
    "ppo_wn_mlp": (
        PPO,
        "WnMlpPolicy",
        "cartpole",
        {"wn_data_init": True, "net_arch": [16]},
        {"n_steps": 16, "batch_size": 16},
    ),
    "a2c_bn_mlp": (A2C, "BnMlpPolicy", "cartpole", {"net_arch": [16]}, {"n_steps": 8}),
    "dqn_wn_cnn": (
        DQN,
        "WnCnnPolicy",
        "minatar",
        {"wn_data_init": True, **SMALL_CNN},
        {"learning_starts": 16, "batch_size": 16, "buffer_size": 200, "train_freq": 4, "target_update_interval": 8},
    ),
    "dqn_ln_mlp": (
        DQN,
        "LnMlpPolicy",
        "cartpole",
        {"net_arch": [16]},
        {"learning_starts": 16, "batch_size": 16, "buffer_size": 200, "train_freq": 4},
    ),
    "rppo_ln_lstm": (
        RecurrentPPO,
        "LnLstmPolicy",
        "cartpole",
        {"lstm_hidden_size": 8, "net_arch": [8]},
        {"n_steps": 16, "batch_size": 16},
    ),
    "rppo_wn_lstm": (
        RecurrentPPO,
        "WnLstmPolicy",
        "cartpole",
        {"lstm_hidden_size": 8, "net_arch": [8]},
        {"n_steps": 16, "batch_size": 16},
    ),
    "rppo_cnn_bn_lstm": (
        RecurrentPPO,
        "CnnBnLstmPolicy",
        "minatar",
        {"lstm_hidden_size": 8, **SMALL_CNN},
        {"n_steps": 16, "batch_size": 16},
    ),
}


def outputs(model, obs: np.ndarray) -> dict[str, np.ndarray]:
    """Deterministic actions and value estimates (Q-values for DQN) on ``obs``."""
    if isinstance(model, RecurrentPPO):
        starts = np.ones(len(obs), dtype=bool)
        actions, _ = model.predict(obs, episode_start=starts, deterministic=True)
        return {"actions": np.asarray(actions)}
    actions, _ = model.predict(obs, deterministic=True)
    with torch.no_grad():
        t = torch.as_tensor(obs)
        values = model.policy.q_net(t) if isinstance(model, DQN) else model.policy.predict_values(t)
    return {"actions": np.asarray(actions), "values": values.numpy()}


def main() -> None:
    torch.set_num_threads(1)
    expected = {}
    for name, (algo, alias, env_name, policy_kwargs, kwargs) in MODELS.items():
        env = minatar_env(2, seed=0) if env_name == "minatar" else cartpole_env(2, seed=0)
        model = algo(alias, env, policy_kwargs=policy_kwargs, seed=0, device="cpu", **kwargs)
        model.learn(64)
        obs = np.stack([env.observation_space.sample() for _ in range(6)])
        model.save(HERE / f"{name}.zip")
        expected[f"{name}/obs"] = obs
        for key, value in outputs(model, obs).items():
            expected[f"{name}/{key}"] = value
    np.savez(HERE / "expected.npz", **expected)


if __name__ == "__main__":
    main()
