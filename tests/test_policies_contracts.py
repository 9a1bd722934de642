"""SB3's contracts, for every (algorithm, alias) of the registry (tests/_policy_cases.py): state dicts of floating
tensors, get/set_parameters with random values, pickle / deepcopy / ``BaseModel.save``-``load`` of the policy and
each sub-network, named policies that are what their names say, option errors before any env step."""

from __future__ import annotations

import copy
import io
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

from agents.policies import ALIAS_NORMS, algorithm_aliases
from agents.policies.extractors import NormNatureCNN
from tests._policy_cases import (
    ALGORITHMS,
    ALL_CASES,
    CONTINUOUS,
    case_param,
    deterministic_actions,
    make_model,
    observations,
    sub_networks,
    tensors_equal,
)
from tests._policy_envs import BanditEnv

NETWORKS = {"PPO": ("Mlp", "Cnn", "MultiInput"), "CrossQ": ("Mlp",), "RecurrentPPO": ()}


def test_every_algorithm_has_every_alias_with_its_norm():
    for algo_name, (algo, aliases) in algorithm_aliases().items():
        for name, cls in aliases.items():
            assert algo.policy_aliases[name] is cls, (algo_name, name)
        for network in NETWORKS.get(algo_name, NETWORKS["PPO"]):
            assert aliases[f"Norm{network}Policy"].default_norm == "none"
            for prefix, norm in ALIAS_NORMS.items():
                cls = aliases[f"{prefix}{network}Policy"]
                assert cls.default_norm == norm and cls.fixed_options == {"norm": norm}
                assert getattr(__import__(cls.__module__, fromlist=["_"]), cls.__qualname__) is cls  # importable
        assert any(
            cls.__module__.startswith(("stable_baselines3", "sb3_contrib")) for cls in algo.policy_aliases.values()
        )
    # DDPG got its own dict, so TD3's names are not DDPG's by accident and vice versa
    assert ALGORITHMS["DDPG"][0].policy_aliases is not ALGORITHMS["TD3"][0].policy_aliases


#: Integer counters of upstream layers, which ``th.rand_like`` cannot perturb: torch BN's and sb3-contrib's BRN's.
UPSTREAM_COUNTERS = ("num_batches_tracked", "steps")


def _check_state_dict(model) -> None:
    for name, value in model.policy.state_dict().items():
        assert isinstance(value, torch.Tensor), f"{name} is a {type(value).__name__}, not a tensor"
        assert value.is_floating_point() or name.endswith(UPSTREAM_COUNTERS), f"{name}: {value.dtype}"


def _check_random_parameters_round_trip(model) -> None:
    # as SB3's test_save_load: every entry perturbed with th.rand_like, set with an exact match, read back;
    # entries of one shared module (a features extractor under three names) get one value
    params = model.get_parameters()
    drawn: dict[tuple, torch.Tensor] = {}

    def perturb(name: str, value: torch.Tensor) -> torch.Tensor:
        if name.endswith(UPSTREAM_COUNTERS) and not value.is_floating_point():
            return value
        return drawn.setdefault((value.data_ptr(), value.shape), torch.rand_like(value))

    random = {
        obj: value if "optim" in obj else {k: perturb(k, v) for k, v in value.items()} for obj, value in params.items()
    }
    model.set_parameters(random, exact_match=True)
    got = model.get_parameters()
    for obj, value in random.items():
        if "optim" not in obj:
            assert tensors_equal(got[obj], value), obj


def _forward(net: torch.nn.Module, policy: BasePolicy, obs) -> list[torch.Tensor]:
    """Deterministic outputs of a sub-network (empty where it is not a network of its own)."""
    tensor_obs, _ = policy.obs_to_tensor(obs)
    with torch.no_grad():
        if hasattr(net, "q_networks"):  # a critic
            actions = torch.zeros(
                len(next(iter(tensor_obs.values())) if isinstance(tensor_obs, dict) else tensor_obs), 1
            )
            out = net(tensor_obs, actions)
            return list(out) if isinstance(out, tuple) else [out]
        if isinstance(net, BasePolicy):
            return [net._predict(tensor_obs, deterministic=True)]
    return []


def _round_trips(module: torch.nn.Module, tmp_path, name: str) -> dict[str, torch.nn.Module]:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    copies = {
        "pickle": pickle.loads(pickle.dumps(module)),
        "deepcopy": copy.deepcopy(module),
        "torch.save": torch.load(buffer, weights_only=False),
    }
    if isinstance(module, BaseModel):
        module.save(tmp_path / f"{name}.pt")
        copies["BaseModel.save"] = type(module).load(tmp_path / f"{name}.pt", device="cpu")
    return copies


def _check_copies(model, tmp_path) -> None:
    policy = model.policy
    policy.set_training_mode(False)
    obs = observations(model)
    actions = deterministic_actions(model, obs)
    for how, clone in _round_trips(policy, tmp_path, "policy").items():
        assert type(clone) is type(policy), how
        assert tensors_equal(clone.state_dict(), policy.state_dict()), how
        clone.set_training_mode(False)
        model.policy = clone
        np.testing.assert_array_equal(deterministic_actions(model, obs), actions, err_msg=how)
        model.policy = policy
    for name, net in sub_networks(policy).items():
        net.eval()
        expected = _forward(net, policy, obs)
        for how, clone in _round_trips(net, tmp_path, name).items():
            assert tensors_equal(clone.state_dict(), net.state_dict()), f"{name} {how}"
            clone.eval()
            for a, b in zip(_forward(clone, policy, obs), expected):
                assert torch.equal(a, b), f"{name} {how}"


@pytest.mark.parametrize(("algo", "alias"), [case_param(c) for c in ALL_CASES])
def test_policy_keeps_sb3_contracts(algo, alias, tmp_path):
    model = make_model(algo, alias)
    model.learn(64)  # moves weights and running statistics; leaves the action distribution's last tensors
    _check_state_dict(model)
    _check_copies(model, tmp_path)
    _check_random_parameters_round_trip(model)


class CountingEnv(gym.Wrapper):
    """Counts reset and step calls, to show errors come before the first env interaction."""

    calls = 0

    def reset(self, **kwargs):
        CountingEnv.calls += 1
        return super().reset(**kwargs)

    def step(self, action):
        CountingEnv.calls += 1
        return super().step(action)


def _construct(algo: str, alias: str, policy_kwargs: dict) -> None:
    env = DummyVecEnv([lambda: CountingEnv(BanditEnv(algo in CONTINUOUS, masked=algo == "MaskablePPO"))])
    CountingEnv.calls = 0
    try:
        ALGORITHMS[algo][0](alias, env, policy_kwargs=policy_kwargs, device="cpu")
    finally:
        assert CountingEnv.calls == 0


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_bad_norm_names_fail_before_any_env_step_listing_the_allowed_ones(algo):
    alias = "NormLstmPolicy" if algo == "RecurrentPPO" else "NormMlpPolicy"
    keys = ["norm"] if algo in ("DQN", "QRDQN", "RecurrentPPO") else ["norm", "actor_norm", "critic_norm"]
    for key in keys:
        with pytest.raises(ValueError, match=rf"policy_kwargs\['{key}'\]") as info:
            _construct(algo, alias, {key: "batchnorm"})
        assert all(f"{n}" in str(info.value) for n in ("none", "wn", "bn", "ln", "rms")), str(info.value)


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_a_named_policy_refuses_a_conflicting_option_naming_both(algo):
    alias, options = ("LnLstmPolicy", ["norm", "lstm"]) if algo == "RecurrentPPO" else ("WnMlpPolicy", ["norm"])
    if algo not in ("DQN", "QRDQN", "RecurrentPPO"):
        options += ["actor_norm", "critic_norm"]
    for key in options:
        value = "wn" if key == "lstm" else "gn"
        with pytest.raises(ValueError, match=rf"{alias} has .*policy_kwargs\['{key}'\]={value!r}"):
            _construct(algo, alias, {key: value})
    _construct(algo, alias, {"norm": "ln" if algo == "RecurrentPPO" else "wn"})  # the name's own value is fine


def test_crossq_batch_renorm_layout_takes_only_none_or_wn():
    with pytest.raises(ValueError, match="batch_norm"):
        _construct("CrossQ", "NormMlpPolicy", {"batch_norm": True, "critic_norm": "ln"})
    with pytest.raises(ValueError, match=r"WnBrnMlpPolicy has batch_norm=True"):
        _construct("CrossQ", "WnBrnMlpPolicy", {"batch_norm": False})


def test_nature_cnn_accepts_channel_first_images_with_more_channels_than_rows():
    # SB3's test_vec_transpose_skip: 10 grey channels stacked 5 times, VecTransposeImage(skip=True)
    def make() -> gym.Env:
        env = BanditEnv(observation="image")
        env.observation_space = gym.spaces.Box(0, 255, (10, 41, 40), np.uint8)
        return env

    env = VecTransposeImage(VecFrameStack(DummyVecEnv([make]), n_stack=5, channels_order="first"), skip=True)
    assert env.observation_space.shape == (50, 41, 40)
    for algo in ("PPO", "DQN"):
        model = ALGORITHMS[algo][0]("WnCnnPolicy", env, device="cpu", **({"buffer_size": 10} if algo == "DQN" else {}))
        network = model.policy if algo == "PPO" else model.policy.q_net
        assert isinstance(network.features_extractor, NormNatureCNN)
    # a non-image box (not transposed by SB3) in channel-last layout is still caught
    with pytest.raises(ValueError, match="channel-first"):
        NormNatureCNN(gym.spaces.Box(0.0, 1.0, (84, 84, 4), np.float32))


def test_pipeline_knows_every_algorithm():
    from agents.policies.algos import algo_class, policy_for

    for name, (algo, aliases) in ALGORITHMS.items():
        assert algo_class(name) is algo
        cls, kwargs = policy_for(name, "mlp", "wn")
        assert kwargs["norm"] == "wn" and cls in aliases.values()
    with pytest.raises(ValueError, match="CrossQ has no cnn policy"):
        policy_for("CrossQ", "cnn", "wn")
    with pytest.raises(ValueError, match=r"algo: must be one of .*SAC.*CrossQ"):
        algo_class("SACX")
