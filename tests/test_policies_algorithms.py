"""Every algorithm with its norm policies (registry: tests/_policy_cases.py): learns a tiny task and reloads in a
fresh process with identical actions; deterministic with a seed; BN statistics move only in updates and reach
the target networks; WN/LN networks are batch independent in train mode; targets stay out of the WN cache."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from rlnorm.diagnostics import batch_dependence
from rlnorm.layers import BATCH_DEPENDENT_NORMS
from rlnorm.weight_norm import InferenceCachedWeightNorm
from tests._policy_cases import (
    ALGORITHMS,
    ALL_CASES,
    CONTINUOUS,
    LEARNED_ERROR,
    bandit_error,
    case_id,
    deterministic_actions,
    learn_steps,
    make_model,
    observations,
    tensors_equal,
)

ROOT = Path(__file__).resolve().parents[1]
#: Learned in `make test`: WnMlpPolicy of every algorithm, plus a second alias (rotated, so every network kind is
#: seen) where learning is cheap (on-policy and value-based algorithms), CrossQ's WN+BRN and two recurrent ones.
_SECOND = ("LnCnnPolicy", "BnMlpPolicy", "RmsMultiInputPolicy", "GnMlpPolicy", "NormMlpPolicy", "BrnMlpPolicy")
QUICK_LEARN = {(algo, "WnMlpPolicy") for algo in ALGORITHMS if algo != "RecurrentPPO"} | {
    ("CrossQ", "WnBrnMlpPolicy"),
    ("RecurrentPPO", "LnLstmPolicy"),
    ("RecurrentPPO", "WnCnnLstmPolicy"),
}
QUICK_LEARN |= {
    (algo, _SECOND[i % len(_SECOND)]) for i, algo in enumerate(ALGORITHMS) if algo not in CONTINUOUS | {"RecurrentPPO"}
}

# Loads every model in a new interpreter that imports nothing of this project (the zips name their classes)
# and prints the deterministic actions on the saved observations.
LOADER = """
import json, pickle, sys
import numpy as np
import sb3_contrib, stable_baselines3, torch

torch.set_num_threads(1)  # as the tests: the same reduction order, the same float actions

out = {}
for name, algo, path in json.loads(sys.argv[1]):
    cls = getattr(stable_baselines3, algo, None) or getattr(sb3_contrib, algo)
    model = cls.load(path, device="cpu")
    with open(path + ".obs.pkl", "rb") as f:
        obs = pickle.load(f)
    kwargs = {"deterministic": True}
    if algo == "RecurrentPPO":
        kwargs["episode_start"] = np.ones(8, bool)
    out[name] = np.asarray(model.predict(obs, **kwargs)[0]).tolist()
print(json.dumps(out))
"""


def _learning_error(model, algo: str, alias: str) -> float | None:
    """How far the trained case is from the bandit's best action (``None``: not expected to learn it here).

    Not expected: batch statistics in an actor loss computed on the policy's own (nearly identical) actions
    break the SAC/TQC/TD3/DDPG critics' BN (CrossQ is built for them); and TD3's and DDPG's deterministic tanh
    actors often saturate at an action bound within this budget before their critic has learned anything (with
    CNN and dict observations always, whatever the norm), after which the tanh gradient vanishes. Both still
    train, save and reload.
    """
    norm = ALGORITHMS[algo][1][alias].default_norm
    if algo in ("TD3", "DDPG") or (algo in CONTINUOUS and algo != "CrossQ" and norm in BATCH_DEPENDENT_NORMS):
        return None
    return bandit_error(model)


def _learn_and_reload(cases: list[tuple[str, str]], tmp_path) -> None:
    expected, jobs, errors = {}, [], {}
    for algo, alias in cases:
        name = case_id((algo, alias))
        model = make_model(algo, alias)
        model.learn(learn_steps(algo))
        obs = observations(model, 8, seed=1)
        error = _learning_error(model, algo, alias)
        if error is not None:
            errors[name] = error
        path = str(tmp_path / f"{name}.zip")
        model.save(path)
        with open(path + ".obs.pkl", "wb") as f:
            pickle.dump(obs, f)
        expected[name] = deterministic_actions(model, obs)
        jobs.append((name, algo, path))
    failed = {name: err for name, err in errors.items() if err > LEARNED_ERROR}
    assert not failed, f"not learned (error > {LEARNED_ERROR}): {failed}"
    result = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(jobs)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for name, actions in expected.items():
        got = np.asarray(loaded[name], dtype=actions.dtype)
        if actions.dtype.kind == "f":  # continuous actions: float32 through JSON
            np.testing.assert_allclose(got, actions, rtol=0, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got, actions, err_msg=name)


@pytest.mark.timeout(900)
def test_representative_policies_learn_and_reload_in_a_fresh_process(tmp_path):
    _learn_and_reload(sorted(QUICK_LEARN), tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_every_policy_learns_and_reloads_in_a_fresh_process(algo, tmp_path):
    _learn_and_reload([case for case in ALL_CASES if case[0] == algo and case not in QUICK_LEARN], tmp_path)


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_same_seed_gives_same_parameters(algo):
    alias = "WnLstmPolicy" if algo == "RecurrentPPO" else "WnMlpPolicy"

    def run(seed: int) -> dict[str, torch.Tensor]:
        model = make_model(algo, alias, seed=seed)
        model.learn(96)
        return model.policy.state_dict()

    first = run(3)
    assert tensors_equal(first, run(3))
    assert not tensors_equal(first, run(4))


def _running_stats(module: nn.Module) -> torch.Tensor:
    """Every running statistic of ``module`` but those of target networks (which SB3 overwrites by copying)."""
    stats = [b.detach().flatten() for n, b in module.named_buffers() if "running_" in n and "target" not in n]
    return torch.cat(stats) if stats else torch.zeros(0)


class StatisticsDuringCollection(BaseCallback):
    """Records whether any running statistic moved while the env was stepped (it must move only in updates)."""

    def __init__(self) -> None:
        super().__init__()
        self.moved_in_collection = False
        self.reference: torch.Tensor | None = None

    def _on_rollout_start(self) -> None:
        self.reference = _running_stats(self.model.policy).clone()

    def _on_step(self) -> bool:
        self.moved_in_collection |= not torch.equal(_running_stats(self.model.policy), self.reference)
        return True


@pytest.mark.parametrize("algo", [a for a in ALGORITHMS if a != "RecurrentPPO"] + ["RecurrentPPO"])
def test_bn_statistics_change_only_in_updates(algo):
    alias = "BnLstmPolicy" if algo == "RecurrentPPO" else "BnMlpPolicy"
    model = make_model(algo, alias)
    before = _running_stats(model.policy).clone()
    assert before.numel() > 0
    probe = StatisticsDuringCollection()
    model.learn(96, callback=probe)
    assert not probe.moved_in_collection
    assert not torch.equal(_running_stats(model.policy), before), "the updates used batch statistics"
    after = _running_stats(model.policy).clone()
    model.predict(observations(model), deterministic=True)  # acting uses running statistics, moves nothing
    assert torch.equal(_running_stats(model.policy), after)


#: algorithm -> (online, target) attribute pairs and the settings that copy the statistics at every update
TARGETS = {
    "SAC": ([("critic", "critic_target")], {}),
    "TQC": ([("critic", "critic_target")], {}),
    "TD3": ([("critic", "critic_target"), ("actor", "actor_target")], {"policy_delay": 1}),
    "DDPG": ([("critic", "critic_target"), ("actor", "actor_target")], {}),
    "DQN": ([("q_net", "q_net_target")], {"target_update_interval": 1}),
    "QRDQN": ([("quantile_net", "quantile_net_target")], {"target_update_interval": 1}),
}


@pytest.mark.parametrize("algo", list(TARGETS))
def test_target_updates_carry_bn_and_brn_running_statistics(algo):
    pairs, settings = TARGETS[algo]
    for alias in ("BnMlpPolicy", "BrnMlpPolicy"):
        model = make_model(algo, alias, **settings)
        model.learn(64)
        if algo in ("DQN", "QRDQN"):
            model._on_step()  # their copy comes before the next gradient step: do it once more
        for online, target in pairs:
            online_stats = _running_stats(getattr(model.policy, online))
            target_stats = _running_stats(getattr(model.policy, target))
            assert online_stats.numel() > 0 and torch.equal(online_stats, target_stats), (alias, online)
            assert not getattr(model.policy, target).training


@pytest.mark.parametrize("algo", list(TARGETS))
def test_target_networks_are_never_served_by_the_wn_cache(algo):
    model = make_model(algo, "WnMlpPolicy")
    model.policy.set_training_mode(False)
    for online, target in TARGETS[algo][0]:
        online_wn = [m for m in getattr(model.policy, online).modules() if isinstance(m, InferenceCachedWeightNorm)]
        target_wn = [m for m in getattr(model.policy, target).modules() if isinstance(m, InferenceCachedWeightNorm)]
        assert online_wn and all(m.enabled for m in online_wn)
        assert target_wn and not any(m.enabled for m in target_wn)
    model.learn(48)
    # a write through .data (as polyak_update does) is seen at the next call
    obs, _ = model.policy.obs_to_tensor(observations(model))
    target = getattr(model.policy, TARGETS[algo][0][0][1])
    before = _Outputs.call(target, obs)
    with torch.no_grad():
        for m in target.modules():
            if isinstance(m, InferenceCachedWeightNorm):
                continue
            if hasattr(m, "parametrizations"):
                m.parametrizations.weight.original0.data.mul_(0.5)
    assert not torch.equal(_Outputs.call(target, obs), before)


class _Outputs(nn.Module):
    """Observation batch -> every output of a policy's networks, for batch_dependence."""

    def __init__(self, policy: nn.Module, algo: str) -> None:
        super().__init__()
        self.policy, self.algo = policy, algo

    @staticmethod
    def call(net: nn.Module, obs: torch.Tensor) -> torch.Tensor:
        """The output of one sub-network (critics get zero actions; actors are deterministic)."""
        with torch.no_grad():
            if hasattr(net, "q_networks"):
                out = net(obs, torch.zeros(len(obs), 1))
                return torch.cat(out, dim=1) if isinstance(out, tuple) else out.flatten(1)
            if hasattr(net, "action_dist") or hasattr(net, "mu"):
                return net._predict(obs, deterministic=True)
            return net(obs).flatten(1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        p = self.policy
        if self.algo in CONTINUOUS:
            return torch.cat([self.call(p.actor, obs), self.call(p.critic, obs)], dim=1)
        if self.algo in ("DQN", "QRDQN"):
            return self.call(p.q_net if self.algo == "DQN" else p.quantile_net, obs)
        latent_pi, latent_vf = p.mlp_extractor(p.extract_features(obs))
        return torch.cat([p.action_net(latent_pi), p.value_net(latent_vf)], dim=1)


@pytest.mark.parametrize("alias", ["WnMlpPolicy", "LnMlpPolicy", "RmsMlpPolicy", "WnCnnPolicy"])
@pytest.mark.parametrize("algo", [a for a in ALGORITHMS if a != "RecurrentPPO"])
def test_wn_and_ln_networks_are_batch_independent_in_train_mode(algo, alias):
    if alias not in ALGORITHMS[algo][1]:
        pytest.skip(f"{algo} has no {alias}")
    model = make_model(algo, alias)
    model.policy.set_training_mode(True)
    obs, _ = model.policy.obs_to_tensor(observations(model, 16))
    network = _Outputs(model.policy, algo).train()
    assert batch_dependence(network, obs) < 1e-5


@pytest.mark.parametrize("alias", ["BnMlpPolicy", "BrnMlpPolicy", "WnBrnMlpPolicy"])
def test_crossq_uses_batch_statistics_only_in_its_joint_critic_forward(alias):
    from sb3_contrib.common.torch_layers import BatchRenorm1d

    from rlnorm.norms import BatchNorm

    model = make_model("CrossQ", alias)
    calls: list[tuple[bool, int]] = []
    layer = next(m for m in model.policy.critic.modules() if isinstance(m, (BatchNorm, BatchRenorm1d)))
    layer.register_forward_hook(lambda m, args, out: calls.append((m.training, args[0].shape[0])))
    model.learn(40)  # 8 gradient steps after 32 random ones
    batch = model.batch_size
    assert {n for training, n in calls if training} == {2 * batch}  # observations and next observations together
    assert {n for training, n in calls if not training} == {batch}  # the actor loss: running statistics
