"""Evaluation of a policy under clean and perturbed observations, and in BN train vs eval mode.

SB3's ``predict`` always switches the policy to eval mode, which is what we want except when measuring
how a batch-norm policy behaves with *batch* statistics; :func:`train_mode_copy` gives a copy that stays in
train mode (a copy, so evaluation never moves the running statistics of the policy being trained).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import VecEnv
from torch import nn


@dataclass
class EvalResult:
    """Returns of the finished episodes, and (optionally) observations seen on the way.

    :param returns: one return per episode
    :param lengths: one length per episode
    :param observations: up to ``keep_obs`` observations, for distribution comparisons
    """

    returns: list[float]
    lengths: list[int]
    observations: list[np.ndarray] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))


def has_batch_statistics(policy: nn.Module) -> bool:
    """Whether any layer of ``policy`` keeps running batch statistics: torch's and rlnorm's BN-like layers
    (BN, BatchRenorm, mean-only BN: ``running_mean``) and sb3-contrib's BatchRenorm (CrossQ: ``ra_mean``)."""
    return any(hasattr(m, "running_mean") or hasattr(m, "ra_mean") for m in policy.modules())


@contextmanager
def copyable(policy: nn.Module) -> Iterator[nn.Module]:
    """Let ``copy.deepcopy`` copy a policy that has run a forward pass.

    SB3's action distribution object keeps the last output distribution, whose tensors are not graph
    leaves and cannot be deep-copied; it is a cache rebuilt at every call, so it is set aside meanwhile.

    :param policy: the policy
    """
    action_dist = getattr(policy, "action_dist", None)
    saved = getattr(action_dist, "distribution", None)
    if saved is not None:
        action_dist.distribution = None
    try:
        yield policy
    finally:
        if saved is not None:
            action_dist.distribution = saved


def train_mode_copy(policy: BasePolicy) -> BasePolicy:
    """A copy of ``policy`` that stays in train mode, so batch norms use the statistics of each batch.

    :param policy: the policy (left untouched)
    :return: a deep copy whose ``set_training_mode`` always selects train mode
    """
    with copyable(policy):
        clone = copy.deepcopy(policy)

    def keep_training_mode(mode: bool) -> None:
        nn.Module.train(clone, True)

    # predict() calls set_training_mode(False); overriding it on this instance only keeps batch statistics
    clone.set_training_mode = keep_training_mode  # type: ignore[method-assign]
    return clone


def evaluate(
    policy: BasePolicy,
    env: VecEnv,
    n_episodes: int,
    *,
    deterministic: bool = False,
    keep_obs: int = 0,
) -> EvalResult:
    """Run ``n_episodes`` episodes spread evenly over the envs of ``env`` (as SB3's ``evaluate_policy``).

    Returns come from ``info["episode"]`` (the true, unclipped return recorded by the env's Monitor) when
    the env provides it, else from the summed rewards.

    :param policy: anything with SB3's ``predict(obs, state, episode_start, deterministic)`` (recurrent
        policies included)
    :param env: the evaluation VecEnv (reset here)
    :param n_episodes: number of episodes
    :param deterministic: greedy actions
    :param keep_obs: keep up to this many observations in the result
    :return: the episode returns and lengths
    """
    n_envs = env.num_envs
    targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)], dtype=int)
    counts = np.zeros(n_envs, dtype=int)
    running_return = np.zeros(n_envs)
    running_length = np.zeros(n_envs, dtype=int)
    result = EvalResult(returns=[], lengths=[])
    obs = env.reset()
    state = None
    episode_start = np.ones(n_envs, dtype=bool)
    while (counts < targets).any():
        actions, state = policy.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        if len(result.observations) < keep_obs and isinstance(obs, np.ndarray):
            result.observations.extend(obs[: keep_obs - len(result.observations)])
        obs, rewards, dones, infos = env.step(actions)
        running_return += rewards
        running_length += 1
        for i in range(n_envs):
            if not dones[i]:
                continue
            if counts[i] < targets[i]:
                episode = infos[i].get("episode")
                result.returns.append(float(episode["r"]) if episode else float(running_return[i]))
                result.lengths.append(int(episode["l"]) if episode else int(running_length[i]))
                counts[i] += 1
            running_return[i] = 0.0
            running_length[i] = 0
        episode_start = dones
    return result


@torch.no_grad()
def _action_distribution(policy: ActorCriticPolicy, obs: torch.Tensor) -> torch.distributions.Distribution:
    if isinstance(policy, RecurrentActorCriticPolicy):
        # each observation taken as the first step of an episode: zero LSTM states, episode start flags set
        layers, _, hidden = policy.lstm_hidden_state_shape
        zeros = torch.zeros(layers, obs.shape[0], hidden, device=policy.device)
        starts = torch.ones(obs.shape[0], device=policy.device)
        return policy.get_distribution(obs, (zeros, zeros), starts)[0].distribution
    return policy.get_distribution(obs).distribution


def action_kl(train_policy: BasePolicy, eval_policy: BasePolicy, observations: np.ndarray) -> float | None:
    """Mean KL(train-mode || eval-mode) between the action distributions on ``observations``.

    :param train_policy: the policy in train mode (see :func:`train_mode_copy`)
    :param eval_policy: the policy in eval mode
    :param observations: a batch of raw observations
    :return: the mean KL, or ``None`` for policies without an action distribution (e.g. DQN)
    """
    if not isinstance(eval_policy, ActorCriticPolicy) or len(observations) == 0:
        return None
    obs_tensor, _ = eval_policy.obs_to_tensor(np.asarray(observations))
    nn.Module.train(train_policy, True)
    eval_policy.set_training_mode(False)
    dist_train = _action_distribution(train_policy, obs_tensor)
    dist_eval = _action_distribution(eval_policy, obs_tensor)
    kl = torch.distributions.kl_divergence(dist_train, dist_eval)
    if kl.dim() > 1:  # diagonal Gaussian: sum over action dimensions
        kl = kl.sum(dim=-1)
    return float(kl.mean())
