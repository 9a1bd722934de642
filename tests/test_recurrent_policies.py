"""RecurrentPPO policies with WNLSTM/LNLSTM: construction, optimizer, episode-start resets, save/load, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

import envs
from agents.policies import register_policies
from agents.policies.extractors import NormNatureCNN, NormSmallCNN
from agents.policies.recurrent import (
    LSTM_KINDS,
    NormRecurrentActorCriticPolicy,
    recurrent_aliases,
    recurrent_policy_for,
)
from rlnorm.rnn import LNLSTM, WNLSTM
from tests._policy_envs import atari_env, minatar_env

register_policies()

EXPECTED = {  # alias -> (LSTM class, norm of extractor/heads, CNN?)
    "WnLstmPolicy": (WNLSTM, "wn", False),
    "LnLstmPolicy": (LNLSTM, "ln", False),
    "BnLstmPolicy": (nn.LSTM, "bn", False),
    "CnnWnLstmPolicy": (WNLSTM, "wn", True),
    "CnnLnLstmPolicy": (LNLSTM, "ln", True),
    "CnnBnLstmPolicy": (nn.LSTM, "bn", True),
}
SMALL = {"n_steps": 8, "batch_size": 8, "n_epochs": 1}


def _model(alias: str, env=None, seed: int = 0, **policy_kwargs) -> RecurrentPPO:
    if env is None:
        env = (
            minatar_env(2, seed) if alias.startswith("Cnn") else envs.make_env("CartPoleNoVel-v1", n_envs=2, seed=seed)
        )
    policy_kwargs.setdefault("lstm_hidden_size", 16)
    return RecurrentPPO(alias, env, seed=seed, device="cpu", policy_kwargs=policy_kwargs, **SMALL)


def test_aliases_registered():
    for name, cls in recurrent_aliases().items():
        assert RecurrentPPO.policy_aliases[name] is cls
    assert set(EXPECTED) <= set(RecurrentPPO.policy_aliases)
    assert RecurrentPPO.policy_aliases["MlpLstmPolicy"].__name__ == "RecurrentActorCriticPolicy"  # untouched


@pytest.mark.parametrize("alias", list(EXPECTED))
def test_alias_builds_lstms_extractor_and_optimizer(alias):
    lstm_class, norm, cnn = EXPECTED[alias]
    model = _model(alias)
    policy = model.policy
    assert type(policy.lstm_actor) is lstm_class and type(policy.lstm_critic) is lstm_class
    assert policy.lstm_actor is not policy.lstm_critic
    assert policy.norm == norm
    if cnn:
        assert isinstance(policy.features_extractor, NormSmallCNN) and policy.features_extractor.norm == norm
    assert policy.mlp_extractor.norm == norm
    # the optimizer holds exactly the policy's parameters (none of the nn.LSTMs sb3-contrib built and dropped)
    in_optimizer = [p for group in policy.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in in_optimizer} == {id(p) for p in policy.parameters()}
    before = {n: p.detach().clone() for n, p in policy.lstm_actor.named_parameters()}
    model.learn(16)
    moved = [n for n, p in policy.lstm_actor.named_parameters() if not torch.equal(p, before[n])]
    assert moved, "no LSTM parameter was updated by training"


def test_cnn_alias_on_atari_uses_nature_cnn():
    model = _model("CnnLnLstmPolicy", env=atari_env("ALE/Pong-v5", n_envs=1))
    assert isinstance(model.policy.features_extractor, NormNatureCNN)
    assert model.policy.features_extractor.norm == "ln" and type(model.policy.lstm_actor) is LNLSTM
    model.learn(8)


def test_generic_policy_takes_lstm_and_norm_kwargs():
    model = _model("NormLstmPolicy", lstm="wn", norm="gn", lstm_kwargs={"forget_bias": 1.0}, n_lstm_layers=2)
    policy = model.policy
    assert type(policy.lstm_actor) is WNLSTM and policy.lstm_actor.num_layers == 2
    torch.testing.assert_close(policy.lstm_actor.cells[0].ih.bias[16:32], torch.ones(16))
    assert policy.norm == "gn"
    model.learn(16)


def test_shared_and_critic_free_lstm_options():
    shared = _model("LnLstmPolicy", shared_lstm=True, enable_critic_lstm=False).policy
    assert shared.lstm_critic is None and type(shared.lstm_actor) is LNLSTM
    no_critic = _model("WnLstmPolicy", enable_critic_lstm=False).policy
    assert no_critic.lstm_critic is None and isinstance(no_critic.critic, nn.Linear)


def test_bad_kwargs_name_the_field():
    with pytest.raises(ValueError, match=r"policy_kwargs\['lstm'\].*none, wn, ln"):
        _model("NormLstmPolicy", lstm="gru")
    with pytest.raises(ValueError, match=r"policy_kwargs\['norm'\]"):
        _model("NormLstmPolicy", norm="batch")
    with pytest.raises(ValueError, match="network"):
        recurrent_policy_for("rnn", "ln")


def test_recurrent_policy_for_picks_lstm_by_norm():
    assert recurrent_policy_for("mlp", "wn")[1] == {"norm": "wn", "lstm": "wn"}
    assert recurrent_policy_for("mlp", "wn+mobn")[1]["lstm"] == "wn"
    assert recurrent_policy_for("cnn", "ln")[1] == {"norm": "ln", "lstm": "ln"}
    cls, kwargs = recurrent_policy_for("mlp", "bn")
    assert cls is NormRecurrentActorCriticPolicy and kwargs["lstm"] == "none"
    assert set(LSTM_KINDS) == {"none", "wn", "ln"}


@pytest.mark.parametrize("lstm", ["wn", "ln"])
def test_episode_starts_reset_states_mid_sequence(lstm):
    """sb3-contrib's per-step path (an episode starts mid-sequence) equals running each episode from zeros."""
    torch.manual_seed(0)
    policy = _model("NormLstmPolicy", lstm=lstm).policy
    module = policy.lstm_actor
    n_seq, steps, dim, hid = 3, 6, policy.features_dim, 16
    features = torch.randn(n_seq * steps, dim)  # batch layout: sequence-major, as in RecurrentPPO
    state = (torch.randn(1, n_seq, hid), torch.randn(1, n_seq, hid))
    starts = torch.zeros(n_seq, steps)
    starts[0, 2] = starts[2, 4] = 1.0  # two episodes begin mid-sequence
    with torch.no_grad():
        out, (h_n, c_n) = policy._process_sequence(features, state, starts.flatten(), module)
        # the one-call path of these policies equals sb3-contrib's own step-by-step path
        sb3_out, (sb3_h, sb3_c) = RecurrentActorCriticPolicy._process_sequence(
            features, state, starts.flatten(), module
        )
        torch.testing.assert_close(out, sb3_out)
        torch.testing.assert_close((h_n, c_n), (sb3_h, sb3_c))
        seq = features.reshape(n_seq, steps, dim)
        for s in range(n_seq):
            h, c = state[0][:, s : s + 1], state[1][:, s : s + 1]
            expected = []
            for t in range(steps):
                if starts[s, t]:
                    h, c = torch.zeros_like(h), torch.zeros_like(c)
                y, (h, c) = module(seq[s, t].view(1, 1, dim), (h, c))
                expected.append(y[0, 0])
            torch.testing.assert_close(out.reshape(n_seq, steps, hid)[s], torch.stack(expected))
            torch.testing.assert_close(h_n[:, s], h[:, 0])
            torch.testing.assert_close(c_n[:, s], c[:, 0])
        # no reset inside: the fused whole-sequence path gives the same as the per-step path
        fast, _ = policy._process_sequence(features, state, torch.zeros(n_seq * steps), module)
        hc = state
        per_step = []
        for t in range(steps):
            y, hc = module(seq[:, t].unsqueeze(0), hc)
            per_step.append(y[0])
        torch.testing.assert_close(fast.reshape(n_seq, steps, hid), torch.stack(per_step, 1))
        assert not torch.allclose(fast, out)  # the resets did change the outputs


@pytest.mark.parametrize("alias", ["WnLstmPolicy", "LnLstmPolicy"])
def test_evaluate_actions_matches_rollout_forward(alias):
    """Values and log-probs recomputed over whole sequences equal those of the step-by-step rollout."""
    policy = _model(alias).policy.eval()
    env = envs.make_env("CartPoleNoVel-v1", n_envs=2, seed=3)
    obs = env.reset()
    n_envs, hid = 2, 16
    zeros = (torch.zeros(1, n_envs, hid), torch.zeros(1, n_envs, hid))
    states = RNNStates(zeros, zeros)
    start = torch.ones(n_envs)
    rec = {"obs": [], "act": [], "val": [], "logp": [], "start": []}
    with torch.no_grad():
        for _ in range(12):
            o = torch.as_tensor(obs)
            act, val, logp, states = policy(o, states, start)
            rec["obs"].append(o), rec["act"].append(act), rec["val"].append(val.flatten())
            rec["logp"].append(logp), rec["start"].append(start)
            obs, _, dones, _ = env.step(act.numpy())
            start = torch.as_tensor(dones, dtype=torch.float32)
        # sequence-major batch (env 0's steps, then env 1's), as RecurrentPPO's buffer lays it out
        flat = {k: torch.stack(v, 1).reshape(n_envs * 12, *torch.stack(v, 1).shape[2:]) for k, v in rec.items()}
        val, logp, _ = policy.evaluate_actions(flat["obs"], flat["act"], RNNStates(zeros, zeros), flat["start"])
    torch.testing.assert_close(val.flatten(), flat["val"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logp, flat["logp"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alias", ["WnLstmPolicy", "LnLstmPolicy"])
def test_deterministic_training_on_cpu(alias):
    def trained() -> dict[str, torch.Tensor]:
        model = _model(alias, seed=7)
        model.learn(32)
        return {k: v.clone() for k, v in model.policy.state_dict().items()}

    a, b = trained(), trained()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


_LOAD_SCRIPT = """
import json, sys
import numpy as np, torch
import agents  # noqa: F401  (registers the aliases, as a user would)
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
model = RecurrentPPO.load(sys.argv[1], device="cpu")
obs = np.load(sys.argv[2])
actions, state = model.predict(obs, deterministic=True)
actions2, state2 = model.predict(obs, state=state, episode_start=np.zeros(len(obs), bool), deterministic=True)
print(json.dumps({"policy": type(model.policy).__name__, "lstm": type(model.policy.lstm_actor).__name__,
                  "actions": actions2.tolist(), "h": state2[0].tolist()}))
"""


@pytest.mark.parametrize("alias", ["WnLstmPolicy", "LnLstmPolicy"])
def test_save_load_round_trip_in_fresh_process(alias, tmp_path: Path):
    model = _model(alias)
    model.learn(16)
    path = tmp_path / "model.zip"
    model.save(path)
    obs = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    actions, state = model.predict(obs, deterministic=True)
    actions, state = model.predict(obs, state=state, episode_start=np.zeros(5, bool), deterministic=True)
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(path), str(tmp_path / "obs.npy")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["policy"] == alias
    assert loaded["lstm"] == type(model.policy.lstm_actor).__name__
    assert loaded["actions"] == actions.tolist()
    np.testing.assert_allclose(np.array(loaded["h"]), state[0], rtol=1e-6, atol=1e-6)


class CueRecallEnv(gym.Env):
    """A memory task: a cue (-1 or +1) shown only at the first step must be reported ``delay`` steps later.

    Observations are ``[cue, query]``: ``[±1, 0]`` first, then ``[0, 0]``, and ``[0, 1]`` when the answer is due.
    The action taken on the query step is rewarded 1 if it names the cue (action 1 for +1), else 0; nothing else
    is rewarded. Every observation after the first is the same whatever the cue, so any memoryless policy
    succeeds with probability 1/2.

    :param delay: steps between the cue and the query
    """

    def __init__(self, delay: int = 4) -> None:
        self.delay = delay
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2))
        self.t = 0
        return np.array([2 * self.cue - 1, 0], np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t <= self.delay:
            return np.array([0, float(self.t == self.delay)], np.float32), 0.0, False, False, {}
        return np.zeros(2, np.float32), float(int(action) == self.cue), True, False, {}


def _success_rate(model, n_episodes: int = 200) -> float:
    env = make_vec_env(CueRecallEnv, n_envs=8, seed=12345)
    obs, state, start, rewards = env.reset(), None, np.ones(8, bool), []
    while len(rewards) < n_episodes:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, reward, done, _ = env.step(action)
        start = done
        rewards += list(reward[done])
    return float(np.mean(rewards))


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["LnLstmPolicy", "WnLstmPolicy", "MlpPolicy"])
def test_learns_memory_task_that_feed_forward_cannot(alias):
    env = make_vec_env(CueRecallEnv, n_envs=8, seed=0)
    common = dict(n_steps=32, batch_size=64, n_epochs=8, learning_rate=3e-3, gamma=0.9, ent_coef=0.0, seed=0)
    if alias == "MlpPolicy":  # the memoryless control, same budget
        model = PPO(alias, env, policy_kwargs=dict(net_arch=[32]), device="cpu", **common)
    else:
        model = RecurrentPPO(alias, env, policy_kwargs=dict(lstm_hidden_size=32, net_arch=[32]), device="cpu", **common)
    model.learn(12_000)
    success = _success_rate(model)
    if alias == "MlpPolicy":
        assert success < 0.7, success
    else:
        assert success >= 0.9, success
