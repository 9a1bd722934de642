"""Save/load round trip of every norm policy: same deterministic actions and values in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO

from agents.policies import ALIAS_NORMS, register_policies
from agents.policies.options import DATA_INIT_FLAG
from tests._policy_envs import cartpole_env, minatar_env

register_policies()

ALGOS = {"PPO": PPO, "A2C": A2C, "DQN": DQN}
ROOT = Path(__file__).resolve().parents[1]

# Loads each model in a new interpreter (only `import agents.policies.actor_critic` registers anything there) and writes
# its deterministic actions and values on the saved observations.
LOADER = """
import json, sys
import numpy as np, torch
from stable_baselines3 import A2C, DQN, PPO
import agents.policies.actor_critic  # noqa: F401 - the classes must be importable by name, nothing else is needed

out = {}
for name, algo, path in json.loads(sys.argv[1]):
    model = {"PPO": PPO, "A2C": A2C, "DQN": DQN}[algo].load(path, device="cpu")
    obs = np.load(path + ".obs.npy")
    actions, _ = model.predict(obs, deterministic=True)
    with torch.no_grad():
        t = torch.as_tensor(obs)
        values = model.policy.q_net(t) if algo == "DQN" else model.policy.predict_values(t)
    extra = float(model.policy.state_dict()["wn_data_initialized"])
    out[name] = {"actions": actions.tolist(), "values": values.numpy().tolist(), "extra": extra}
print(json.dumps(out))
"""


def _outputs(model, algo: str, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    actions, _ = model.predict(obs, deterministic=True)
    with torch.no_grad():
        t = torch.as_tensor(obs)
        values = model.policy.q_net(t) if algo == "DQN" else model.policy.predict_values(t)
    return actions, values.numpy()


def _short_run(algo: str, alias: str, policy_kwargs: dict):
    env = minatar_env() if "Cnn" in alias else cartpole_env()
    if algo == "DQN":
        kwargs = dict(learning_starts=16, batch_size=16, buffer_size=500, train_freq=2, target_update_interval=8)
    elif algo == "PPO":
        kwargs = dict(n_steps=16, batch_size=16, n_epochs=1)
    else:
        kwargs = dict(n_steps=8)
    model = ALGOS[algo](alias, env, seed=0, policy_kwargs=policy_kwargs, **kwargs)
    model.learn(48)  # moves weights and BN running statistics away from their initial values
    obs = np.stack([env.observation_space.sample() for _ in range(8)])
    return model, obs


CASES = [(algo, f"{p}{k}Policy", {}) for algo in ("PPO", "DQN") for p in ALIAS_NORMS for k in ("Mlp", "Cnn")]
CASES += [
    ("A2C", "BnCnnPolicy", {}),
    ("A2C", "WnMlpPolicy", {}),
    ("PPO", "WnCnnPolicy", {"wn_data_init": True}),
    ("DQN", "WnMlpPolicy", {"wn_data_init": True}),
    ("PPO", "NormCnnPolicy", {"norm": "gn", "norm_kwargs": {"num_groups": 4}}),
]


@pytest.mark.timeout(600)
def test_every_policy_round_trips_through_save_and_load_in_a_fresh_process(tmp_path):
    expected, jobs = {}, []
    for i, (algo, alias, policy_kwargs) in enumerate(CASES):
        name = f"{algo}-{alias}-{i}"
        model, obs = _short_run(algo, alias, policy_kwargs)
        path = str(tmp_path / f"{name}.zip")
        model.save(path)
        np.save(path + ".obs.npy", obs)
        expected[name] = (*_outputs(model, algo, obs), float(model.policy.state_dict()[DATA_INIT_FLAG]))
        jobs.append((name, algo, path))
    result = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(jobs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (actions, values, extra) in expected.items():
        np.testing.assert_array_equal(np.asarray(loaded[name]["actions"]), actions, err_msg=name)
        np.testing.assert_allclose(np.asarray(loaded[name]["values"]), values, rtol=0, atol=1e-6, err_msg=name)
        assert loaded[name]["extra"] == extra, name


def test_bn_running_statistics_are_restored_by_load(tmp_path):
    model, _ = _short_run("PPO", "BnCnnPolicy", {})
    saved = {k: v.clone() for k, v in model.policy.state_dict().items() if "running" in k}
    assert saved and any(v.abs().sum() > 0 for k, v in saved.items() if "mean" in k)
    model.save(tmp_path / "bn.zip")
    restored = PPO.load(tmp_path / "bn.zip").policy.state_dict()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)
    fresh = PPO("BnCnnPolicy", minatar_env(), seed=0).policy.state_dict()
    assert any(not torch.equal(saved[k], fresh[k]) for k in saved)  # so the check above means something
