"""Norm policies by alias: registration, every alias trains with PPO/A2C/DQN, architecture and option errors."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from agents.policies import ALIAS_NORMS, register_policies
from agents.policies import actor_critic as ac_policies
from agents.policies import dqn as dqn_policies
from agents.policies.extractors import NormCombinedExtractor, NormNatureCNN, NormSmallCNN
from rlnorm.norms import BatchNorm, InstanceNorm, LayerNorm
from rlnorm.weight_norm import MeanOnlyBatchNorm, is_weight_normalized
from tests._policy_envs import atari_env, cartpole_env, env_for, minatar_env

register_policies()

ALIASES = [f"{prefix}{kind}Policy" for prefix in ALIAS_NORMS for kind in ("Mlp", "Cnn")]


class RecordingWriter(KVWriter):
    """Keeps every logged ``*loss*`` value (SB3 clears its logger at each dump)."""

    def __init__(self) -> None:
        self.losses: dict[str, list[float]] = {}

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        for key, value in key_values.items():
            if "loss" in key:
                self.losses.setdefault(key, []).append(float(value))


def _train(model, steps: int) -> dict[str, list[float]]:
    writer = RecordingWriter()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(steps)
    model.logger.dump(model.num_timesteps)  # values of the last update are still pending
    return writer.losses


def test_register_policies_adds_every_alias_with_its_norm():
    for algo, module in ((PPO, ac_policies), (A2C, ac_policies), (DQN, dqn_policies)):
        for prefix, norm in ALIAS_NORMS.items():
            for kind in ("Mlp", "Cnn"):
                cls = algo.policy_aliases[f"{prefix}{kind}Policy"]
                assert cls is getattr(module, f"{prefix}{kind}Policy")
                assert cls.default_norm == norm
        assert algo.policy_aliases["NormMlpPolicy"].default_norm == "none"
    # SB3's own names are untouched: they stay the baseline
    assert PPO.policy_aliases["CnnPolicy"].__module__.startswith("stable_baselines3")


@pytest.mark.parametrize("alias", ALIASES)
def test_every_alias_trains_with_ppo_a2c_dqn(alias):
    runs = {
        "PPO": PPO(alias, env_for(alias), n_steps=64, batch_size=32, n_epochs=2, seed=0),
        "A2C": A2C(alias, env_for(alias), n_steps=16, seed=0),
        "DQN": DQN(alias, env_for(alias), learning_starts=64, buffer_size=1000, batch_size=32, train_freq=4, seed=0),
    }
    for name, model in runs.items():
        assert model.policy.norm == ALIAS_NORMS[alias.removesuffix("CnnPolicy").removesuffix("MlpPolicy")]
        losses = _train(model, 192)
        assert losses, f"{name} {alias}: no loss was logged"
        for key, values in losses.items():
            assert all(math.isfinite(v) for v in values), f"{name} {alias}: {key} = {values}"
        for p in model.policy.parameters():
            assert torch.isfinite(p).all()


def _layer_types(module: nn.Module) -> set[type]:
    return {type(m) for m in module.modules()}


@pytest.mark.parametrize(
    ("norm", "expected"),
    [("bn", BatchNorm), ("ln", LayerNorm), ("wn+mobn", MeanOnlyBatchNorm), ("in", InstanceNorm)],
)
def test_cnn_policy_normalizes_every_hidden_layer(norm, expected):
    model = PPO("NormCnnPolicy", minatar_env(), policy_kwargs=dict(norm=norm, net_arch=[32]), n_steps=8, batch_size=16)
    policy = model.policy
    assert isinstance(policy.features_extractor, NormSmallCNN)
    # one norm per conv and per hidden linear layer; heads stay plain
    n_norms = sum(isinstance(m, expected) for m in policy.modules())
    if norm == "in":  # instance norm on the convolution, layer norm on the flat layers
        assert n_norms == 1
        assert sum(isinstance(m, LayerNorm) for m in policy.modules()) == 3
    else:
        assert n_norms == 4  # conv, CNN linear, pi hidden, vf hidden
    assert type(policy.action_net) is nn.Linear and type(policy.value_net) is nn.Linear


def test_wn_policy_parametrizes_every_hidden_weight():
    policy = PPO("WnMlpPolicy", cartpole_env(), n_steps=8, batch_size=16).policy
    hidden = [m for m in policy.mlp_extractor.modules() if isinstance(m, nn.Linear)]
    assert len(hidden) == 4 and all(is_weight_normalized(m) for m in hidden)
    assert not is_weight_normalized(policy.action_net)


def test_nature_cnn_is_chosen_for_atari_sized_images():
    space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    policy = ac_policies.WnCnnPolicy(space, spaces.Discrete(6), lambda _: 1e-3)
    assert isinstance(policy.features_extractor, NormNatureCNN)
    assert policy.features_dim == 512 and policy.net_arch == []
    convs = [m for m in policy.features_extractor.cnn.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 64] and all(is_weight_normalized(c) for c in convs)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    actions, values, log_prob = policy(obs)
    assert actions.shape == (3,) and values.shape == (3, 1) and log_prob.shape == (3,)


@pytest.mark.parametrize(("algo", "alias"), [(PPO, "WnCnnPolicy"), (DQN, "BnCnnPolicy")])
def test_nature_cnn_policies_train_on_a_real_atari_game(algo, alias):
    env = atari_env()
    assert env.observation_space.shape == (4, 84, 84)
    kwargs = (
        dict(n_steps=32, batch_size=32, n_epochs=1)
        if algo is PPO
        else dict(learning_starts=32, batch_size=8, buffer_size=200)
    )
    model = algo(alias, env, seed=0, **kwargs)
    network = model.policy if algo is PPO else model.policy.q_net
    assert isinstance(network.features_extractor, NormNatureCNN)
    losses = _train(model, 64)
    assert losses and all(math.isfinite(v) for values in losses.values() for v in values)


def test_small_cnn_for_minatar_keeps_unit_range():
    env = minatar_env()
    model = DQN("LnCnnPolicy", env, learning_starts=0, buffer_size=100)
    extractor = model.policy.q_net.features_extractor
    assert isinstance(extractor, NormSmallCNN) and extractor.features_dim == 128
    conv = extractor.cnn[0][0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (4, 16, (3, 3), (1, 1))
    obs = torch.as_tensor(env.reset())
    # high=1: SB3 does not divide by 255, the CNN sees the 0/1 planes as they are
    seen = {}
    extractor.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    model.policy.q_net(obs)
    assert torch.equal(seen["x"], obs.float())


def test_features_extractor_class_can_be_given_with_its_own_norm():
    model = PPO(
        "CnnPolicy",
        minatar_env(),
        policy_kwargs=dict(features_extractor_class=NormSmallCNN, features_extractor_kwargs=dict(norm="gn")),
        n_steps=16,
        batch_size=16,
    )
    assert isinstance(model.policy.features_extractor, NormSmallCNN)
    assert model.policy.features_extractor.norm == "gn"
    model.learn(16)


def test_dict_observations_use_normalized_cnn_for_images():
    env = DummyVecEnv([lambda: SimpleMultiObsEnv(channel_last=False)] * 2)
    for algo in (PPO, DQN):
        kwargs = dict(n_steps=32, batch_size=32) if algo is PPO else dict(learning_starts=32, batch_size=16)
        model = algo("NormMultiInputPolicy", env, policy_kwargs=dict(norm="wn"), seed=0, **kwargs)
        policy = model.policy if algo is PPO else model.policy.q_net
        extractor = policy.features_extractor
        assert isinstance(extractor, NormCombinedExtractor)
        assert isinstance(extractor.extractors["img"], NormNatureCNN)
        convs = [m for m in extractor.extractors["img"].modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(is_weight_normalized(c) for c in convs)
        assert isinstance(extractor.extractors["vec"], nn.Flatten)
        model.learn(64)


class CountingEnv(gym.Wrapper):
    """Counts reset and step calls, to show errors come before the first env interaction."""

    calls = 0

    def reset(self, **kwargs):
        CountingEnv.calls += 1
        return super().reset(**kwargs)

    def step(self, action):
        CountingEnv.calls += 1
        return super().step(action)


@pytest.mark.parametrize(
    ("policy_kwargs", "message"),
    [
        (dict(norm="batchnorm"), "policy_kwargs['norm']"),
        (dict(norm=None, wn_data_init=True), "wn_data_init"),
        (dict(norm="bn", wn_data_init=True), "wn_data_init"),
        (dict(features_extractor_kwargs=dict(norm="xx")), "features_extractor_kwargs['norm']"),
    ],
)
@pytest.mark.parametrize("algo", [PPO, A2C, DQN])
def test_bad_norm_options_fail_at_construction_before_any_step(algo, policy_kwargs, message):
    alias = "NormCnnPolicy" if "features_extractor_kwargs" in policy_kwargs else "NormMlpPolicy"
    inner = minatar_env(1).envs[0] if alias == "NormCnnPolicy" else gym.make("CartPole-v1")
    env = DummyVecEnv([lambda: CountingEnv(inner)])
    CountingEnv.calls = 0
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        algo(alias, env, policy_kwargs=policy_kwargs)
    assert CountingEnv.calls == 0
    if "norm" in policy_kwargs and policy_kwargs["norm"] == "batchnorm":
        assert "wn" in str(info.value) and "bn" in str(info.value)  # lists the allowed values
