"""BatchNorm correctness: rollouts in eval mode (running statistics), updates in train mode, DQN target in eval."""

from __future__ import annotations

import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback

from agents.policies import register_policies
from rlnorm.norms import BatchNorm
from tests._policy_envs import cartpole_env, minatar_env

register_policies()


class ModeRecorder:
    """Forward hooks on every BatchNorm of a module: the ``training`` flag of each call, tagged by phase."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.phase = "rollout"
        self.calls: dict[str, list[bool]] = {"rollout": [], "update": []}
        self.bns = [m for m in module.modules() if isinstance(m, BatchNorm)]
        assert self.bns
        for bn in self.bns:
            bn.register_forward_hook(lambda m, args, out: self.calls[self.phase].append(m.training))


class CollectionCheck(BaseCallback):
    """At each rollout end, re-evaluates the stored actions and compares with what was recorded in collection."""

    def __init__(self, recorder: ModeRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.eval_gaps: list[float] = []
        self.train_gaps: list[float] = []

    def _on_rollout_start(self) -> None:
        self.recorder.phase = "rollout"

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        policy, buffer = self.model.policy, self.model.rollout_buffer
        obs = torch.as_tensor(buffer.observations).reshape(-1, *self.model.observation_space.shape)
        actions = torch.as_tensor(buffer.actions).reshape(-1)
        recorded = torch.as_tensor(buffer.log_probs).reshape(-1)
        self.recorder.phase = "probe"
        self.recorder.calls["probe"] = []
        with torch.no_grad():
            for mode, gaps in ((False, self.eval_gaps), (True, self.train_gaps)):
                policy.set_training_mode(mode)
                state = {k: v.clone() for k, v in policy.state_dict().items() if "running" in k}
                _, log_prob, _ = policy.evaluate_actions(obs, actions)
                policy.load_state_dict(state, strict=False)  # the probe must not move the running statistics
                gaps.append((log_prob - recorded).abs().max().item())
        self.recorder.phase = "update"


def _check_collection_matches_eval_mode(model) -> None:
    recorder = ModeRecorder(model.policy)
    check = CollectionCheck(recorder)
    model.learn(3 * model.n_steps * model.n_envs, callback=check)
    assert recorder.calls["rollout"] and not any(recorder.calls["rollout"])  # running statistics
    assert recorder.calls["update"] and all(recorder.calls["update"])  # batch statistics
    # the distribution used to collect is the eval-mode one, exactly; train mode would differ
    assert max(check.eval_gaps) < 1e-5
    assert min(check.train_gaps[1:]) > 1e-4
    running = recorder.bns[0].running_mean
    assert running.abs().sum() > 0  # statistics were accumulated during the updates


def test_ppo_collects_with_eval_mode_statistics_and_updates_in_train_mode():
    model = PPO("BnCnnPolicy", minatar_env(), n_steps=32, batch_size=32, n_epochs=2, seed=0)
    _check_collection_matches_eval_mode(model)


def test_a2c_collects_with_eval_mode_statistics_and_updates_in_train_mode():
    model = A2C("BnMlpPolicy", cartpole_env(), n_steps=16, seed=0)
    _check_collection_matches_eval_mode(model)


def test_dqn_target_network_stays_in_eval_mode_and_receives_running_statistics():
    model = DQN(
        "BnMlpPolicy",
        cartpole_env(),
        learning_starts=32,
        batch_size=16,
        train_freq=4,
        target_update_interval=8,
        seed=0,
    )
    online, target = ModeRecorder(model.policy.q_net), ModeRecorder(model.policy.q_net_target)

    class Phases(BaseCallback):
        def _on_rollout_start(self) -> None:
            online.phase = target.phase = "rollout"

        def _on_rollout_end(self) -> None:
            online.phase = target.phase = "update"

        def _on_step(self) -> bool:
            return True

    model.learn(96, callback=Phases())
    assert online.calls["rollout"] and not any(online.calls["rollout"])
    assert online.calls["update"] and all(online.calls["update"])
    assert target.calls["update"] and not any(target.calls["update"])
    assert not target.calls["rollout"]
    assert not model.policy.q_net_target.training
    # SB3 copies the BN running statistics into the target at each target update
    assert target.bns[0].running_mean.abs().sum() > 0


def test_wn_weights_are_computed_once_per_rollout_and_fresh_after_each_update(monkeypatch):
    """Rollouts reuse each WN weight instead of recomputing it at every env step; updates invalidate it."""
    from rlnorm.weight_norm import is_weight_normalized

    register_policies()
    computed: list[int] = []
    real_weight_norm = torch._weight_norm
    monkeypatch.setattr(torch, "_weight_norm", lambda *a: computed.append(1) or real_weight_norm(*a))

    class CountPerRollout(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.per_rollout: list[int] = []
            self.weights: list[list[torch.Tensor]] = []

        def _on_rollout_start(self) -> None:
            computed.clear()

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            self.per_rollout.append(len(computed))
            layers = [m for m in self.model.policy.modules() if is_weight_normalized(m)]
            with torch.no_grad():
                self.weights.append([m.weight.clone() for m in layers])

    model = PPO("WnMlpPolicy", cartpole_env(), n_steps=64, batch_size=64, n_epochs=1, seed=0)
    n_wn_layers = sum(is_weight_normalized(m) for m in model.policy.modules())
    counter = CountPerRollout()
    model.learn(3 * 64 * model.n_envs, callback=counter)
    # 64 steps per env per rollout, but each WN weight computed once (without the cache: 64 times or more)
    assert counter.per_rollout == [n_wn_layers] * 3
    # and every rollout after an update saw the updated weights
    for earlier, later in zip(counter.weights, counter.weights[1:]):
        assert all(not torch.equal(a, b) for a, b in zip(earlier, later))
