"""SB3 callbacks that make the norm comparison visible in TensorBoard.

* :class:`ProgressCallback` - a tqdm bar (or periodic lines) with fps and the recent episode return.
* :class:`NormDiagnosticsCallback` - ``norm/<layer>/<statistic>`` from ``rlnorm.diagnostics.layer_statistics``
  and ``norm/batch_dependence``.
* :class:`NoiseEvalCallback` - ``eval/return_clean``, ``eval/return_noise_<kind>_<level>`` and, for policies
  with batch statistics, ``eval/return_train_mode`` / ``eval/return_eval_mode`` / ``eval/bn_mode_kl``.
* :class:`HParamsCallback` - the HParams-plugin entry of the run; also copies headline numbers to the
  ``by_env/<env>/...`` tags that the custom-scalars layout (:mod:`agents.pipeline.tb_layout`) charts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from agents.config import NoiseSpec
from agents.pipeline.evaluation import action_kl, copyable, evaluate, has_batch_statistics, train_mode_copy
from agents.pipeline.tb_layout import (
    BN_MODE_KL,
    RETURN_CLEAN,
    RETURN_EVAL_MODE,
    RETURN_TRAIN_MODE,
    ROLLOUT_RETURN,
    by_env_tag,
    noise_tag,
)
from rlnorm.diagnostics import batch_dependence, layer_statistics


class _PeriodicCallback(BaseCallback):
    """Calls :meth:`_fire` at the first rollout start (i.e. right after an update) once the step counter has
    crossed a new multiple of ``freq``; robust to ``n_envs > 1``. ``freq=0`` never fires on its own.

    :param freq: steps between two calls
    """

    def __init__(self, freq: int) -> None:
        super().__init__()
        self.freq = freq
        self._bucket = 0

    def _on_training_start(self) -> None:
        self._bucket = self.num_timesteps // self.freq if self.freq else 0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.freq and self.num_timesteps // self.freq > self._bucket:
            self._bucket = self.num_timesteps // self.freq
            self._fire()

    def _fire(self) -> None:
        raise NotImplementedError


class ProgressCallback(BaseCallback):
    """Progress with fps and the mean of the recent returns: a tqdm bar, or (for runs in parallel worker
    processes, whose bars would garble each other) one printed line every ``line_every`` seconds.

    :param total_timesteps: the run's target step count (a resumed run starts where it stopped)
    :param description: label of the bar or lines
    :param line_every: print plain lines at this interval (seconds) instead of drawing a bar
    """

    def __init__(self, total_timesteps: int, description: str = "", line_every: float | None = None) -> None:
        super().__init__()
        self.total_timesteps = total_timesteps
        self.description = description
        self.line_every = line_every
        self._bar: Any = None
        self._t0 = 0.0
        self._steps0 = 0
        self._last_refresh = 0.0

    def _on_training_start(self) -> None:
        self._t0, self._steps0 = time.perf_counter(), self.num_timesteps
        self._last_refresh = self._t0
        if self.line_every is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total_timesteps, initial=self.num_timesteps, desc=self.description, unit="step")

    def _on_step(self) -> bool:
        now = time.perf_counter()
        if now - self._last_refresh >= (self.line_every or 1.0):
            self._refresh(now)
        return True

    def _status(self, now: float) -> dict[str, str]:
        fps = (self.num_timesteps - self._steps0) / max(now - self._t0, 1e-9)
        status = {"fps": f"{fps:.0f}"}
        episodes = self.model.ep_info_buffer
        if episodes:
            status["return"] = f"{np.mean([e['r'] for e in episodes]):.2f}"
        return status

    def _refresh(self, now: float) -> None:
        self._last_refresh = now
        status = self._status(now)
        if self._bar is None:
            fields = " ".join(f"{k}={v}" for k, v in status.items())
            print(f"{self.description}: {self.num_timesteps}/{self.total_timesteps} steps {fields}", flush=True)
            return
        self._bar.n = min(self.num_timesteps, self.total_timesteps)
        self._bar.set_postfix(status, refresh=False)
        self._bar.refresh()

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._refresh(time.perf_counter())
            self._bar.close()


class PolicyProbe(nn.Module):
    """The deterministic outputs of a policy (action logits/means and values, or Q-values).

    ``policy.forward`` samples actions, which would make every output look batch-dependent.
    """

    def __init__(self, policy: BasePolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if isinstance(self.policy, ActorCriticPolicy):
            dist = self.policy.get_distribution(obs).distribution
            head = dist.logits if hasattr(dist, "logits") else dist.mean
            return torch.cat([head.flatten(1), self.policy.predict_values(obs).flatten(1)], dim=1)
        return self.policy.q_net(obs)  # DQN


def _probe_for(policy: BasePolicy) -> nn.Module | None:
    recurrent = hasattr(policy, "lstm_actor")
    if recurrent or not (isinstance(policy, ActorCriticPolicy) or hasattr(policy, "q_net")):
        return None
    return PolicyProbe(policy)


def discrete_value_range(space: spaces.Space) -> tuple[np.ndarray | int, np.ndarray | int] | None:
    """The valid values ``(low, high)`` of a discrete observation space (class indices, bits), else ``None``.

    The batch-dependence probe replaces observations with perturbed ones; a class index out of range is no
    observation (SB3 one-hot encodes it and fails).
    """
    if isinstance(space, spaces.Discrete):
        return int(space.start), int(space.start + space.n - 1)
    if isinstance(space, spaces.MultiDiscrete):
        return np.asarray(space.start), np.asarray(space.start + space.nvec - 1)
    if isinstance(space, spaces.MultiBinary):
        return 0, 1
    return None


class NormDiagnosticsCallback(_PeriodicCallback):
    """Log ``norm/...`` statistics of every normalized layer every ``freq`` steps, after an update.

    Statistics with a batch (BN running vs batch moments, batch dependence) use the current observations of
    the training envs; everything runs on copies, so training is unaffected.

    :param freq: steps between two logs
    """

    def _fire(self) -> None:
        self.log_now()

    def log_now(self) -> None:
        """Compute and record the statistics at the current step."""
        policy = self.model.policy
        probe = _probe_for(policy)
        obs = self.model._last_obs
        x = None
        if probe is not None and isinstance(obs, np.ndarray) and len(obs) >= 2:
            x = obs_as_tensor(obs, policy.device)
        with copyable(policy):
            if probe is None or x is None:
                stats = layer_statistics(policy)
            else:
                stats = {k.removeprefix("policy."): v for k, v in layer_statistics(probe, x).items()}
                # batch dependence of the outputs as training computes them (train mode)
                value_range = discrete_value_range(policy.observation_space)
                stats["batch_dependence"] = batch_dependence(probe.train(), x, value_range=value_range)
                policy.set_training_mode(False)
        for key, value in stats.items():
            self.logger.record(f"norm/{key}", value)


class NoiseEvalCallback(_PeriodicCallback):
    """Evaluate in clean and noisy conditions every ``freq`` steps (0: only at the end) and log the returns.

    :param env_id: the env evaluated (used for the ``by_env`` tags)
    :param make_eval_env: ``make_eval_env(**noise_options) -> VecEnv`` builds an evaluation env
    :param noise: noise conditions
    :param option_names: noise kind -> env option applying it (``envs.noise.NOISE_KIND_OPTIONS``)
    :param n_episodes: episodes per condition
    :param freq: steps between evaluations
    :param deterministic: greedy actions
    :param bn_modes: also evaluate batch-statistics policies in train mode and log the action KL
    """

    def __init__(
        self,
        env_id: str,
        make_eval_env: Callable[..., VecEnv],
        noise: tuple[NoiseSpec, ...],
        option_names: Mapping[str, str],
        *,
        n_episodes: int = 10,
        freq: int = 0,
        deterministic: bool = False,
        bn_modes: bool = True,
    ) -> None:
        super().__init__(freq)
        self.env_id = env_id
        self.make_eval_env = make_eval_env
        self.noise = noise
        self.option_names = option_names
        self.n_episodes = n_episodes
        self.deterministic = deterministic
        self.bn_modes = bn_modes
        self._envs: dict[tuple[str, float], VecEnv] = {}
        self.last_results: dict[str, float] = {}

    def _env(self, kind: str = "clean", level: float = 0.0) -> VecEnv:
        key = (kind, level)
        if key not in self._envs:
            options = {} if kind == "clean" else {self.option_names[kind]: level}
            self._envs[key] = self.make_eval_env(**options)
        return self._envs[key]

    def _fire(self) -> None:
        self.evaluate_now()

    def evaluate_now(self) -> dict[str, float]:
        """Evaluate every condition now, record the results, and return them ``{tag: mean return}``."""
        policy = self.model.policy
        results: dict[str, float] = {}
        clean = evaluate(policy, self._env(), self.n_episodes, deterministic=self.deterministic, keep_obs=256)
        results[RETURN_CLEAN] = clean.mean
        for spec in self.noise:
            for level in spec.levels:
                res = evaluate(policy, self._env(spec.kind, level), self.n_episodes, deterministic=self.deterministic)
                results[noise_tag(spec.kind, level)] = res.mean
        if self.bn_modes and has_batch_statistics(policy):
            train_policy = train_mode_copy(policy)
            res = evaluate(train_policy, self._env(), self.n_episodes, deterministic=self.deterministic)
            results[RETURN_TRAIN_MODE] = res.mean
            results[RETURN_EVAL_MODE] = clean.mean
            kl = action_kl(train_policy, policy, np.asarray(clean.observations))
            if kl is not None:
                results[BN_MODE_KL] = kl
        policy.set_training_mode(False)
        for tag, value in results.items():
            self.logger.record(tag, value)
            if tag != BN_MODE_KL:
                self.logger.record(by_env_tag(self.env_id, tag), value)
        self.logger.dump(self.num_timesteps)
        self.last_results = results
        return results

    def close(self) -> None:
        """Close the evaluation envs."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()


class HParamsCallback(BaseCallback):
    """Record the run's hyperparameters for the HParams plugin, and copy the training return to its
    ``by_env/<env>/ep_rew_mean`` tag at each rollout end.

    :param env_id: the env of the run
    :param hparams: e.g. ``{"norm": "wn", "algo": "PPO", "env": ..., "seed": 0}``
    :param metrics: tags shown as metrics in the HParams table (their values come from the logged scalars)
    :param record_hparams: False on a resumed run (the entry was written when it started)
    """

    def __init__(
        self,
        env_id: str,
        hparams: Mapping[str, bool | str | float | None],
        metrics: tuple[str, ...] = (RETURN_CLEAN, ROLLOUT_RETURN),
        *,
        record_hparams: bool = True,
    ) -> None:
        super().__init__()
        self.env_id = env_id
        self.hparams = dict(hparams)
        self.metrics = metrics
        self.record_hparams = record_hparams

    def _on_training_start(self) -> None:
        if self.record_hparams:
            # placeholder metric values: the plugin shows the latest logged scalar of each tag
            hp = HParam(self.hparams, dict.fromkeys(self.metrics, 0.0))
            self.logger.record("hparams", hp, exclude=("stdout", "log", "json", "csv"))
            self.logger.dump(self.num_timesteps)

    def _on_rollout_end(self) -> None:
        episodes = self.model.ep_info_buffer
        if episodes:
            self.logger.record(by_env_tag(self.env_id, ROLLOUT_RETURN), float(np.mean([e["r"] for e in episodes])))

    def _on_step(self) -> bool:
        return True
