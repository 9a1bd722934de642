"""DQN with the mixed Monte Carlo return of Bellemare et al. (2016) and Ostrovski et al. (2017).

The Q-learning target of a transition is mixed with the discounted Monte Carlo return ``R_MC`` of the rest of its
episode (exploration bonus included, since the bonus wrappers add it to the stored reward)::

    y = (1 - beta) * y_TD + beta * R_MC,    y_TD = r + gamma * (1 - done) * max_a Q_target(s', a)

``beta`` is :attr:`MixedReturnDQN.mixed_return` (Ostrovski et al. report ``beta = 0.1`` for their DQN agents);
``beta = 0`` is SB3's DQN update exactly. In an experiment config it is an algorithm argument of DQN:
``hyperparams: {default: {mixed_return: 0.1}}`` (:func:`agents.policies.algos.algo_class` then builds
:class:`MixedReturnDQN`).

:class:`MixedReturnReplayBuffer` keeps, per stored transition, ``R_MC`` once its episode has ended: at the end of
an episode of env ``i`` it walks that env's transitions back from the last one, ``R_t = r_t + gamma * R_{t+1}``
(``R`` after the last step is 0). Transitions without a Monte Carlo return use the pure TD target:

- those whose episode has not ended yet (``R_MC`` is not known);
- those of an episode cut off by a time limit (``info["TimeLimit.truncated"]``): the rewards after the cut are
  unknown, so a sum up to the cut is not the return;
- those of an episode that was in progress when training (re)started from a reset env (a loaded replay buffer,
  or ``learn`` with ``reset_num_timesteps=True``): the episode never ends in the buffer.

An episode longer than the buffer has lost its first transitions when it ends; the ones still stored get their
returns (which only need the later rewards). A transition that is overwritten loses its return with it.

The mix needs no change to SB3's update: the sampled rewards and per-sample discounts (the ``discounts`` that
SB3's n-step buffer uses too) are set so that SB3's target ``r' + (1 - done) * gamma' * max Q`` equals the mixed
target, ``r' = (1 - beta) r + beta R_MC`` and ``gamma' = (1 - beta) gamma`` where ``R_MC`` is known, and ``r``,
``gamma`` elsewhere. So ``replay_data.rewards`` of this buffer are mixed rewards, not the env's rewards.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import MaybeCallback, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from rlnorm.validation import check_float

#: the algorithm argument (``hyperparams: {default: {mixed_return: ...}}``) and its default
MIXED_RETURN_KEY = "mixed_return"


def check_mixed_return(value: Any, field: str = MIXED_RETURN_KEY) -> float:
    """``value`` as the mixing coefficient ``beta`` in ``[0, 1]``, or a :class:`ConfigError` naming ``field``.

    :param value: the candidate
    :param field: the dotted field named in the error (e.g. ``hyperparams.default.mixed_return``)
    """
    return check_float(value, field, minimum=0.0, maximum=1.0)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``R_t = sum_k gamma^k r_{t+k}`` of every step of one finished episode (float64).

    :param rewards: the episode's rewards in order
    :param gamma: discount factor
    """
    returns = np.empty(len(rewards), dtype=np.float64)
    future = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        future = float(rewards[t]) + gamma * future
        returns[t] = future
    return returns


class MixedReturnReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` that also stores each transition's Monte Carlo return once its episode has ended,
    and samples rewards and discounts that give the mixed target (module docstring).

    :param buffer_size: as ``ReplayBuffer`` (transitions over all envs)
    :param observation_space: as ``ReplayBuffer``
    :param action_space: as ``ReplayBuffer``
    :param device: as ``ReplayBuffer``
    :param n_envs: as ``ReplayBuffer``
    :param optimize_memory_usage: as ``ReplayBuffer``
    :param handle_timeout_termination: as ``ReplayBuffer``
    :param gamma: discount of the Monte Carlo returns (the algorithm's ``gamma``)
    :param mixed_return: ``beta``, the weight of the Monte Carlo return in the target (0: pure TD)
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        gamma: float = 0.99,
        mixed_return: float = 0.0,
    ):
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )
        self.gamma = check_float(gamma, "gamma", minimum=0.0, maximum=1.0)
        self.mixed_return = check_mixed_return(mixed_return)
        #: the Monte Carlo return of each stored transition, valid where :attr:`has_return`
        self.mc_returns = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.has_return = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        #: steps of each env's current episode so far (its transitions end at the last position written)
        self.episode_steps = np.zeros(self.n_envs, dtype=np.int64)

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one step of every env (as ``ReplayBuffer.add``); back-fill the returns of the episodes it ends."""
        pos = self.pos
        super().add(obs, next_obs, action, reward, done, infos)
        self.has_return[pos] = False  # overwritten transitions lose their return
        self.episode_steps += 1
        for env in np.flatnonzero(np.asarray(done).reshape(self.n_envs)):
            if not infos[env].get("TimeLimit.truncated", False):
                self.fill_returns(env, pos)
            self.episode_steps[env] = 0

    def fill_returns(self, env: int, last: int) -> None:
        """Write the Monte Carlo returns of env ``env``'s episode that ended at position ``last``.

        :param env: the env index
        :param last: the buffer position of the episode's last transition
        """
        stored = int(min(self.episode_steps[env], self.buffer_size))
        positions = (last - np.arange(stored)[::-1]) % self.buffer_size
        self.mc_returns[positions, env] = discounted_returns(self.rewards[positions, env], self.gamma)
        self.has_return[positions, env] = True

    def drop_unfinished(self) -> None:
        """Forget the episodes in progress: their env was reset, so their transitions keep the TD target."""
        self.episode_steps[:] = 0

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        # ReplayBuffer's sampling, plus the env index it draws, which the returns need: the same single draw
        # from numpy's global generator, so beta = 0 samples exactly what ReplayBuffer samples
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        if self.optimize_memory_usage:
            next_obs = self.observations[(batch_inds + 1) % self.buffer_size, env_indices, :]
        else:
            next_obs = self.next_observations[batch_inds, env_indices, :]
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        rewards = self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)
        beta = np.float32(self.mixed_return)
        known = self.has_return[batch_inds, env_indices].reshape(-1, 1)
        # normalized as the rewards are (VecNormalize scales rewards; its clipping makes this approximate)
        mc = self._normalize_reward(self.mc_returns[batch_inds, env_indices].reshape(-1, 1), env)
        mixed = np.where(known, (1 - beta) * rewards + beta * mc, rewards).astype(np.float32)
        discounts = np.where(known, (1 - beta) * np.float32(self.gamma), np.float32(self.gamma)).astype(np.float32)
        data = (
            self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
            self.actions[batch_inds, env_indices, :],
            self._normalize_obs(next_obs, env),
            dones.reshape(-1, 1),
            mixed,
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)), discounts=self.to_torch(discounts))

    def return_fraction(self) -> float:
        """Share of the stored transitions that have a Monte Carlo return (the rest use the TD target)."""
        stored = self.buffer_size if self.full else self.pos
        return float(self.has_return[:stored].mean()) if stored else 0.0


class MixedReturnDQN(DQN):
    """SB3's DQN whose target mixes the TD target with the Monte Carlo return (module docstring).

    Takes every argument of ``DQN`` plus ``mixed_return``; the replay buffer is a
    :class:`MixedReturnReplayBuffer` (``replay_buffer_kwargs`` still reach it). Logs ``train/mc_return_fraction``,
    the share of stored transitions with a Monte Carlo return.

    :param policy: as ``DQN``
    :param env: as ``DQN``
    :param mixed_return: ``beta`` in ``[0, 1]``: the weight of the Monte Carlo return (0: SB3's DQN exactly)
    :param kwargs: the other arguments of ``DQN`` (``n_steps`` must stay 1, ``replay_buffer_class`` unset or
        :class:`MixedReturnReplayBuffer`)
    """

    replay_buffer: MixedReturnReplayBuffer

    def __init__(self, policy: Any, env: Any, mixed_return: float = 0.0, **kwargs: Any):
        beta = check_mixed_return(mixed_return)
        buffer_class = kwargs.get("replay_buffer_class")
        if buffer_class is not None and not issubclass(buffer_class, MixedReturnReplayBuffer):
            raise ValueError(
                f"replay_buffer_class: MixedReturnDQN needs a MixedReturnReplayBuffer, got {buffer_class.__name__}"
            )
        if kwargs.get("n_steps", 1) != 1:
            raise ValueError(f"n_steps: the mixed return is defined for 1-step targets, got {kwargs['n_steps']}")
        kwargs["replay_buffer_class"] = MixedReturnReplayBuffer
        # gamma and beta are filled in by _setup_model (gamma is known only after DQN.__init__)
        kwargs["replay_buffer_kwargs"] = {
            k: v for k, v in (kwargs.get("replay_buffer_kwargs") or {}).items() if k not in ("gamma", MIXED_RETURN_KEY)
        }
        self.mixed_return = beta
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        if isinstance(self.observation_space, spaces.Dict):
            raise ValueError("observation_space: MixedReturnDQN stores Box observations only, got a Dict space")
        self.replay_buffer_kwargs = {
            **self.replay_buffer_kwargs,
            "gamma": self.gamma,
            MIXED_RETURN_KEY: self.mixed_return,
        }
        super()._setup_model()

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if (reset_num_timesteps or self._last_obs is None) and self.replay_buffer is not None:
            # SB3 resets the env in this call: the episodes in progress in the buffer will never end
            self.replay_buffer.drop_unfinished()
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    def load_replay_buffer(self, path: str | pathlib.Path | Any, truncate_last_traj: bool = True) -> None:
        """Load a pickled :class:`MixedReturnReplayBuffer` (as ``DQN.load_replay_buffer``).

        :raises TypeError: the file holds another kind of buffer (it has no Monte Carlo returns)
        """
        super().load_replay_buffer(path, truncate_last_traj)
        if not isinstance(self.replay_buffer, MixedReturnReplayBuffer):
            raise TypeError(
                f"{path}: a {type(self.replay_buffer).__name__}, not a MixedReturnReplayBuffer (no Monte Carlo "
                "returns); MixedReturnDQN cannot train on it"
            )
        self.replay_buffer.gamma = self.gamma

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """DQN's update with the mixed target: the buffer is told the current ``mixed_return`` (set it between
        ``learn`` calls to change it), then ``DQN.train`` runs on its mixed rewards and discounts."""
        self.mixed_return = check_mixed_return(self.mixed_return)
        self.replay_buffer.mixed_return = self.mixed_return
        super().train(gradient_steps, batch_size)
        self.logger.record("train/mc_return_fraction", self.replay_buffer.return_fraction())


__all__ = [
    "MIXED_RETURN_KEY",
    "MixedReturnDQN",
    "MixedReturnReplayBuffer",
    "check_mixed_return",
    "discounted_returns",
]
