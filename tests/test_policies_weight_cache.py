"""The WN inference cache never serves stale weights: one test per way of writing a WN layer's g or v."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.utils import polyak_update

from agents.policies import register_policies
from rlnorm.weight_norm import InferenceCachedWeightNorm, set_inference_cache, weight_normalized_layers, wn_g, wn_v
from tests._policy_envs import cartpole_env

register_policies()


def _model(seed: int = 0) -> PPO:
    return PPO("WnMlpPolicy", cartpole_env(), n_steps=16, batch_size=16, seed=seed, device="cpu")


def _layers(policy) -> list[torch.nn.Module]:
    return [m for _, m in weight_normalized_layers(policy)]


def _scale_g_data(policy) -> None:
    for layer in _layers(policy):
        wn_g(layer).data.mul_(0.5)  # weight surgery


def _shift_v_data(policy) -> None:
    for layer in _layers(policy):
        wn_v(layer).data.add_(torch.randn_like(wn_v(layer)))


def _assign_data(policy) -> None:
    for layer in _layers(policy):
        wn_g(layer).data = wn_g(layer).data * 0.5  # a new tensor assigned to .data


def _copy_into_data(policy) -> None:
    for layer in _layers(policy):
        wn_g(layer).data.copy_(torch.rand_like(wn_g(layer)))


def _polyak_from_other(policy) -> None:
    polyak_update(_model(seed=1).policy.parameters(), policy.parameters(), tau=0.5)  # SB3's target update


def _average_checkpoints(policy) -> None:
    other = _model(seed=2).policy
    for p, q in zip(policy.parameters(), other.parameters()):
        p.data.lerp_(q.data, 0.5)


def _load_state_dict(policy) -> None:
    policy.load_state_dict(_model(seed=3).policy.state_dict())


def _set_parameters(policy) -> None:
    other = _model(seed=4)
    other.policy = policy
    other.set_parameters({"policy": _model(seed=5).policy.state_dict()}, exact_match=False)


def _in_place_no_grad(policy) -> None:
    with torch.no_grad():
        for layer in _layers(policy):
            wn_g(layer).mul_(0.5)


def _optimizer_step(policy) -> None:
    policy.set_training_mode(True)
    obs = torch.randn(8, 4)
    values, log_prob, _ = policy.evaluate_actions(obs, torch.zeros(8))
    policy.optimizer.zero_grad()
    (values.sum() + log_prob.sum()).backward()
    policy.optimizer.step()
    policy.set_training_mode(False)


def _vector_to_parameters(policy) -> None:
    vec = torch.nn.utils.parameters_to_vector(policy.parameters())
    torch.nn.utils.vector_to_parameters(vec * 0.5, policy.parameters())


WRITES: dict[str, Callable] = {
    "g.data.mul_": _scale_g_data,
    "v.data.add_": _shift_v_data,
    "g.data = ...": _assign_data,
    "g.data.copy_": _copy_into_data,
    "polyak_update": _polyak_from_other,
    "checkpoint averaging": _average_checkpoints,
    "load_state_dict": _load_state_dict,
    "set_parameters": _set_parameters,
    "no_grad in-place": _in_place_no_grad,
    "optimizer step": _optimizer_step,
    "vector_to_parameters": _vector_to_parameters,
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_to_g_or_v_is_seen_by_the_next_eval_call(write):
    policy = _model().policy
    policy.set_training_mode(False)  # as in rollouts and predict: the cache is on
    assert all(m.enabled for m in policy.modules() if isinstance(m, InferenceCachedWeightNorm))
    obs = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (8, 4)), dtype=torch.float32)
    with torch.no_grad():
        before = policy.predict_values(obs)
        assert torch.equal(policy.predict_values(obs), before)  # served from the cache
    WRITES[write](policy)
    with torch.no_grad():
        after = policy.predict_values(obs)
        set_inference_cache(policy, False)
        fresh = policy.predict_values(obs)
    assert torch.equal(after, fresh), f"{write}: the cache served a stale weight"
    assert not torch.allclose(after, before), f"{write}: the write changed nothing, so the test proves nothing"
