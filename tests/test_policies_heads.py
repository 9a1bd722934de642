"""Normalized output heads (``head_norm``) for every algorithm, and the head-statistics callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from agents.policies.head_stats import HeadStatsCallback, norm_frequency_correlation
from agents.policies.heads import discrete_head, head_weight_norms
from rlnorm.heads import CosineLinear
from rlnorm.weight_norm import is_weight_normalized
from tests._policy_cases import ALGORITHMS, CONTINUOUS, deterministic_actions, make_model, observations

HEADS = {  # algorithm -> output layers of each network, as (network attribute path, module attribute)
    "actor_critic": [("", "action_net"), ("", "value_net")],
    "DQN": [("q_net", "q_net")],
    "QRDQN": [("quantile_net", "quantile_net")],
    "continuous": [("actor", "mu"), ("critic", "qf0")],  # and every other Q-network of the critic
}


def _output_layers(policy: nn.Module, algo: str) -> list[nn.Module]:
    family = "continuous" if algo in CONTINUOUS else algo if algo in HEADS else "actor_critic"
    layers = []
    for net, attr in HEADS[family]:
        module = getattr(getattr(policy, net) if net else policy, attr)
        if isinstance(module, nn.Sequential):
            module = [m for m in module if isinstance(m, nn.Linear)][-1]
        layers.append(module)
    if family == "continuous":
        layers += [[m for m in q if isinstance(m, nn.Linear)][-1] for q in policy.critic.q_networks[1:]]
    return layers


@pytest.mark.parametrize("head_norm", ["wn", "cosine"])
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_head_norm_normalizes_every_output_layer_and_trains(algo, head_norm, tmp_path):
    alias = "LnLstmPolicy" if algo == "RecurrentPPO" else "LnMlpPolicy"
    kwargs = {"head_norm": head_norm} | ({"head_kwargs": {"scale": 2.0}} if head_norm == "cosine" else {})
    model = make_model(algo, alias, policy_kwargs=kwargs)
    layers = _output_layers(model.policy, algo)
    check = is_weight_normalized if head_norm == "wn" else (lambda m: isinstance(m, CosineLinear))
    assert layers and all(check(m) for m in layers), layers
    # every parameter is optimized (the heads were replaced before the optimizers were built)
    optimizers = [model.policy.optimizer] if hasattr(model.policy, "optimizer") else []
    optimizers += [getattr(model.policy, n).optimizer for n in ("actor", "critic") if algo in CONTINUOUS]
    optimized = {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}
    assert all(id(p) in optimized for m in layers for p in m.parameters())
    model.learn(64)
    obs = observations(model)
    actions = deterministic_actions(model, obs)
    model.save(tmp_path / "m.zip")
    loaded = type(model).load(tmp_path / "m.zip", device="cpu")
    assert loaded.policy.head_norm == head_norm
    np.testing.assert_array_equal(deterministic_actions(loaded, obs), actions)


def test_wn_head_keeps_sb3_init_gain():
    model = make_model("PPO", "WnMlpPolicy", policy_kwargs={"head_norm": "wn"})
    head = model.policy.action_net
    assert is_weight_normalized(head)
    w = head.weight.detach()
    torch.testing.assert_close(w @ w.T, 0.01**2 * torch.eye(w.shape[0]), atol=1e-7, rtol=0)  # orthogonal, gain 0.01


def test_bad_head_options_name_the_field():
    with pytest.raises(ValueError, match=r"policy_kwargs\['head_norm'\].*cosine"):
        make_model("PPO", "NormMlpPolicy", policy_kwargs={"head_norm": "bn"})
    with pytest.raises(ValueError, match=r"head_kwargs.*scale"):
        make_model("DQN", "NormMlpPolicy", policy_kwargs={"head_norm": "cosine", "head_kwargs": {"sigma": 1}})


def test_head_weight_norms_per_action():
    plain = nn.Linear(4, 6)
    expected = plain.weight.detach().reshape(2, 3, 4).norm(dim=2).pow(2).sum(0).sqrt()  # 2 quantiles x 3 actions
    torch.testing.assert_close(head_weight_norms(plain, 3), expected)
    cosine = CosineLinear(4, 3, scale=2.0)
    torch.testing.assert_close(head_weight_norms(cosine, 3), torch.full((3,), 2.0))


@pytest.mark.parametrize("algo", ["PPO", "DQN", "QRDQN"])
def test_head_stats_callback_logs_norms_beside_frequencies(algo):
    model = make_model(algo, "WnMlpPolicy")
    callback = HeadStatsCallback(log_freq=16)
    model.learn(64, callback=callback)
    norms, frequencies = callback.last
    n = model.action_space.n
    assert norms.shape == frequencies.shape == (n,) and np.isclose(frequencies.sum(), 1.0)
    assert np.all(np.isfinite(norms)) and np.all(norms > 0)
    callback.counts[:] = 1  # a window with actions: log once more, right now, and read the logger
    callback.log_now()
    logged = model.logger.name_to_value
    torch.testing.assert_close(
        torch.tensor([logged[f"heads/weight_norm/a{a}"] for a in range(n)], dtype=torch.float64),
        head_weight_norms(discrete_head(model.policy), n).cpu().double(),
    )
    assert all(logged[f"heads/action_freq/a{a}"] == 1 / n for a in range(n))


def test_head_stats_callback_ignores_continuous_actions():
    model = make_model("SAC", "WnMlpPolicy")
    callback = HeadStatsCallback(log_freq=8)
    model.learn(40, callback=callback)
    assert callback.last is None


def test_norm_frequency_correlation():
    assert norm_frequency_correlation(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.7])) > 0.9
    assert np.isnan(norm_frequency_correlation(np.ones(3), np.array([0.1, 0.2, 0.7])))
