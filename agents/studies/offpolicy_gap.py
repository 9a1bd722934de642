"""The BN train/eval-mode gap of an off-policy agent (SAC, TD3, CrossQ): in its returns and its critics.

Where batch statistics act (CrossQ's actor has BatchRenorm) the gap is the one of the Atari-style experiments:
the return of the final policy acting with the statistics of its batch of evaluation envs against the return
with its running statistics. With a plain actor (the SAC arm: ``actor_norm: none``) acting never uses BN, so that
gap is zero by construction; the gap that exists is in the critics. They are trained in train mode (batch
statistics) and steer the actor through their train-mode output, while SAC's TD target comes from the target
critic in eval mode (running statistics). It is measured as the critics' Q-value of (state, greedy action) pairs
on the final policy's evaluation states, in batches of the training batch size, in train mode against eval mode:
:func:`critic_mode_gap`. Every measurement restores the running statistics it moved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.pipeline.evaluation import evaluate, has_batch_statistics


@contextmanager
def batch_statistics(module: nn.Module, train: bool = True) -> Iterator[nn.Module]:
    """Put ``module`` in train (batch statistics) or eval mode, and restore its mode and buffers afterwards.

    BN and BatchRenorm move their running statistics in every train-mode forward; a measurement must not.

    :param module: a network with norm layers
    :param train: the mode inside the block
    """
    buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
    modes = {m: m.training for m in module.modules()}
    module.train(train)
    try:
        yield module
    finally:
        with torch.no_grad():
            for name, b in module.named_buffers():
                b.copy_(buffers[name])
        for m, mode in modes.items():
            m.training = mode


class ActorInMode:
    """``predict`` of an SB3 off-policy policy with its actor held in train or eval mode.

    SB3's ``predict`` always switches to eval mode; this one keeps the chosen mode, so a BN actor acts with the
    statistics of its batch (one observation per evaluation env).

    :param policy: a SAC/TD3/CrossQ policy (``actor``, ``obs_to_tensor``, ``unscale_action``)
    :param train: act in train mode
    """

    def __init__(self, policy: Any, train: bool) -> None:
        self.policy = policy
        self.train = train

    def predict(self, obs: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = True):
        """Actions for a batch of observations, as ``BasePolicy.predict``."""
        obs_tensor, _ = self.policy.obs_to_tensor(obs)
        with torch.no_grad(), batch_statistics(self.policy.actor, self.train):
            actions = self.policy.actor(obs_tensor, deterministic=deterministic).cpu().numpy()
        if self.policy.squash_output:
            actions = self.policy.unscale_action(actions)
        return actions, None


def critic_values(policy: Any, observations: np.ndarray, *, train: bool, batch_size: int) -> np.ndarray:
    """Mean over the critics of Q(s, greedy action) for each state, in train or eval mode.

    The greedy actions come from the actor in eval mode, so only the critics' mode differs between calls.

    :param policy: a SAC/TD3/CrossQ policy
    :param observations: states, one per row
    :param train: critics in train mode (statistics of each batch of ``batch_size`` states)
    :param batch_size: states per forward (the training batch size)
    :return: one value per state
    """
    obs_tensor, _ = policy.obs_to_tensor(np.asarray(observations))
    values = []
    with torch.no_grad():
        with batch_statistics(policy.actor, False):
            actions = policy.actor(obs_tensor, deterministic=True)
        with batch_statistics(policy.critic, train):
            for start in range(0, len(obs_tensor), batch_size):
                chunk = slice(start, start + batch_size)
                q = torch.cat(policy.critic(obs_tensor[chunk], actions[chunk]), dim=1)
                values.append(q.mean(dim=1))
    return torch.cat(values).cpu().numpy()


@dataclass
class ModeGap:
    """The train/eval-mode gap of one run's final model.

    :param return_eval_mode: mean evaluation return with running statistics
    :param return_train_mode: mean evaluation return acting with batch statistics (``None``: the actor has none)
    :param q_eval_mode: mean critic value on the evaluation states, running statistics
    :param q_train_mode: the same in train mode
    :param q_gap: mean ``|Q_train - Q_eval|`` over the states, relative to mean ``|Q_eval|``
    :param states: evaluation states measured
    """

    return_eval_mode: float
    return_train_mode: float | None
    q_eval_mode: float
    q_train_mode: float
    q_gap: float
    states: int


def critic_mode_gap(
    policy: Any, env: Any, *, n_episodes: int = 10, batch_size: int = 256, max_states: int = 2048, seed: int = 0
) -> ModeGap:
    """Measure a policy's BN train/eval gap: returns in both modes (if the actor has batch statistics) and the
    critics' values in both modes on the evaluation states.

    :param policy: a SAC/TD3/CrossQ policy (its BN buffers and modes are left as found)
    :param env: evaluation VecEnv (``n_envs`` observations form one train-mode batch when acting)
    :param n_episodes: episodes per mode
    :param batch_size: states per critic forward in train mode
    :param max_states: at most this many evaluation states for the critic values
    :param seed: shuffles the states into batches, as replay sampling does
    """
    result = evaluate(ActorInMode(policy, train=False), env, n_episodes, deterministic=True, keep_obs=max_states)
    return_train = None
    if has_batch_statistics(policy.actor):
        return_train = evaluate(ActorInMode(policy, train=True), env, n_episodes, deterministic=True).mean
    states = np.asarray(result.observations)
    states = states[np.random.default_rng(seed).permutation(len(states))]
    q_eval = critic_values(policy, states, train=False, batch_size=batch_size)
    q_train = critic_values(policy, states, train=True, batch_size=batch_size)
    gap = float(np.mean(np.abs(q_train - q_eval)) / max(np.mean(np.abs(q_eval)), 1e-8))
    return ModeGap(result.mean, return_train, float(q_eval.mean()), float(q_train.mean()), gap, len(states))
