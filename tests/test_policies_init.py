"""Initialization of the norm policies: orthogonal effective weights (also for WN) and WN data-dependent init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from agents.policies import actor_critic as ac_policies
from agents.policies import register_policies
from agents.policies.options import DATA_INIT_FLAG
from rlnorm.layers import linear, weight_layers
from rlnorm.weight_norm import is_weight_normalized, wn_g
from tests._policy_envs import cartpole_env, minatar_env

register_policies()


def _orthogonality_error(layer: nn.Module, gain: float) -> float:
    """``max |W W^T - gain^2 I|`` on the smaller side of the effective weight (rows are output units)."""
    w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return (gram - gain**2 * torch.eye(gram.shape[0])).abs().max().item()


@pytest.mark.parametrize(
    ("policy_cls", "space"),
    [
        (ac_policies.WnMlpPolicy, spaces.Box(-1, 1, (6,), np.float32)),
        (ac_policies.WnCnnPolicy, spaces.Box(0, 1, (4, 10, 10), np.uint8)),
        (ac_policies.WnCnnPolicy, spaces.Box(0, 255, (4, 84, 84), np.uint8)),
        (ac_policies.WnMobnCnnPolicy, spaces.Box(0, 1, (4, 10, 10), np.uint8)),
        (ac_policies.LnMlpPolicy, spaces.Box(-1, 1, (6,), np.float32)),
    ],
)
def test_ortho_init_sets_effective_weights_with_sb3_gains(policy_cls, space):
    policy = policy_cls(space, spaces.Discrete(5), lambda _: 3e-4)
    hidden = list(weight_layers(policy.features_extractor)) + list(weight_layers(policy.mlp_extractor))
    assert hidden
    for layer in hidden:
        assert is_weight_normalized(layer) == (policy.norm in ("wn", "wn+mobn"))
        assert _orthogonality_error(layer, math.sqrt(2)) < 1e-4
    assert _orthogonality_error(policy.action_net, 0.01) < 1e-6
    assert _orthogonality_error(policy.value_net, 1.0) < 1e-5


def test_sb3_init_weights_would_leave_a_wn_layer_unchanged():
    # why the policies override init_weights: SB3's version writes into a recomputed tensor
    layer = linear(16, 8, "wn")
    before = layer.weight.detach().clone()
    BasePolicy.init_weights(layer, gain=math.sqrt(2))
    assert torch.equal(layer.weight.detach(), before)
    assert _orthogonality_error(layer, math.sqrt(2)) > 0.1
    ac_policies.NormActorCriticPolicy.init_weights(layer, gain=math.sqrt(2))
    assert _orthogonality_error(layer, math.sqrt(2)) < 1e-5


class DataInitProbe(BaseCallback):
    """Records whether the data init was done during rollouts and right after the first update."""

    def __init__(self) -> None:
        super().__init__()
        self.during_rollout: list[bool] = []
        self.at_rollout_end: list[bool] = []

    def _on_step(self) -> bool:
        self.during_rollout.append(self.model.policy._data_init_done)
        return True

    def _on_rollout_end(self) -> None:
        self.at_rollout_end.append(self.model.policy._data_init_done)


def _pre_activation_stats(policy, obs: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    stats = []

    def hook(module, args, out):
        dims = [d for d in range(out.dim()) if d != 1]
        stats.append((out.mean(dims), out.std(dims, unbiased=False)))

    handles = [m.register_forward_hook(hook) for m in weight_layers(policy) if is_weight_normalized(m)]
    with torch.no_grad():
        policy.set_training_mode(True)
        policy.evaluate_actions(obs, torch.zeros(obs.shape[0]))
    for h in handles:
        h.remove()
    return stats


@pytest.mark.parametrize(("alias", "make_env"), [("WnMlpPolicy", cartpole_env), ("WnCnnPolicy", minatar_env)])
def test_wn_data_init_runs_on_the_first_rollout_batch_before_the_first_update(alias, make_env):
    # one rollout of 2 x 64 steps, one minibatch of all of it, learning rate 0: the parameters after learn()
    # are exactly those of the data init on that batch
    model = PPO(
        alias,
        make_env(),
        n_steps=64,
        batch_size=128,
        n_epochs=1,
        learning_rate=0.0,
        seed=1,
        policy_kwargs=dict(wn_data_init=True),
    )
    g_before = [wn_g(m).detach().clone() for m in weight_layers(model.policy) if is_weight_normalized(m)]
    probe = DataInitProbe()
    model.learn(128, callback=probe)
    assert not any(probe.during_rollout) and probe.at_rollout_end == [False]
    assert model.policy._data_init_done
    g_after = [wn_g(m).detach() for m in weight_layers(model.policy) if is_weight_normalized(m)]
    assert all(not torch.allclose(a, b) for a, b in zip(g_before, g_after))
    obs = torch.as_tensor(model.rollout_buffer.observations).reshape(128, *model.observation_space.shape)
    stats = _pre_activation_stats(model.policy, obs)
    assert len(stats) == len(g_after)
    for mean, std in stats:
        live = std > 1e-3  # ReLU units that are never active on the batch keep a zero output
        assert mean.abs().max() < 1e-4
        assert torch.allclose(std[live], torch.ones_like(std[live]), atol=1e-3)


def test_wn_data_init_is_saved_and_not_redone_after_load(tmp_path):
    model = PPO("WnMlpPolicy", cartpole_env(), n_steps=32, batch_size=64, seed=0, policy_kwargs=dict(wn_data_init=True))
    model.learn(64)
    flag = model.policy.state_dict()[DATA_INIT_FLAG]
    assert flag.is_floating_point() and flag.item() == 1.0
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip")
    assert loaded.policy.wn_data_init and not loaded.policy.data_init_pending
    before = {k: v.clone() for k, v in loaded.policy.state_dict().items() if isinstance(v, torch.Tensor)}
    obs = torch.randn(16, 4)
    loaded.policy.set_training_mode(True)
    with torch.no_grad():
        loaded.policy.evaluate_actions(obs, torch.zeros(16))
    after = loaded.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_dqn_wn_data_init_initializes_online_and_target_networks_alike():
    model = DQN(
        "WnMlpPolicy",
        cartpole_env(),
        learning_starts=64,
        batch_size=32,
        train_freq=4,
        learning_rate=0.0,
        target_update_interval=10_000,  # no target update during the run: the copy comes from the data init
        seed=0,
        policy_kwargs=dict(wn_data_init=True),
    )
    g_before = wn_g(model.policy.q_net.q_net[0]).detach().clone()
    model.learn(80)
    policy = model.policy
    assert policy._data_init_done
    assert not torch.allclose(wn_g(policy.q_net.q_net[0]), g_before)
    online, target = policy.q_net.state_dict(), policy.q_net_target.state_dict()
    assert all(torch.equal(online[k], target[k]) for k in online)
    assert not policy.q_net_target.training
