"""Atomic checkpoints of an SB3 model, resume state, and the NaN/inf guard that protects them.

Layout inside a run directory::

    checkpoints/last.zip       # SB3 ``model.save`` (written to a temp file, then ``os.replace``)
    checkpoints/last.json      # {"num_timesteps": ..., "time": ...}, written after the model, atomically
    checkpoints/replay_buffer.pkl   # DQN only, if ``train.save_replay_buffer``
    checkpoints/vecnormalize.pkl    # if the env is a VecNormalize
    checkpoints/env_state.pt        # if a VecEnv wrapper keeps learned state (the pseudo-count density model)
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize, unwrap_vec_normalize

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "last.zip"
STATE_FILE = "last.json"
REPLAY_FILE = "replay_buffer.pkl"
VECNORM_FILE = "vecnormalize.pkl"
ENV_STATE_FILE = "env_state.pt"


class NonFiniteError(RuntimeError):
    """Training produced NaN or inf in a loss or a parameter; the last good checkpoint is kept."""


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temp file and ``os.replace`` (never a half-written file).

    :param path: destination
    :param data: JSON-serializable mapping
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _replace_via_temp(path: Path, write: Any) -> None:
    # SB3 appends ".zip" to paths without a suffix, so the temp name keeps the real suffix
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    write(tmp)
    os.replace(tmp, path)


def stateful_wrapper(env: VecEnv | None) -> VecEnvWrapper | None:
    """The first VecEnv wrapper in ``env``'s chain with ``state_dict``/``load_state_dict`` (learned env state).

    :param env: the training VecEnv
    """
    while isinstance(env, VecEnvWrapper):
        if callable(getattr(type(env), "state_dict", None)) and callable(getattr(type(env), "load_state_dict", None)):
            return env
        env = env.venv
    return None


def save_checkpoint(model: BaseAlgorithm, run_dir: str | Path, *, save_replay_buffer: bool = False) -> Path:
    """Save model (+ VecNormalize stats, + replay buffer if asked) atomically, then the step count.

    :param model: the SB3 model
    :param run_dir: the run directory
    :param save_replay_buffer: also save an off-policy replay buffer
    :return: the checkpoint directory
    """
    ckpt = Path(run_dir) / CHECKPOINT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    _replace_via_temp(ckpt / MODEL_FILE, model.save)
    vec_normalize = unwrap_vec_normalize(model.get_env()) if model.get_env() is not None else None
    if vec_normalize is not None:
        _replace_via_temp(ckpt / VECNORM_FILE, vec_normalize.save)
    if save_replay_buffer and getattr(model, "replay_buffer", None) is not None:
        _replace_via_temp(ckpt / REPLAY_FILE, model.save_replay_buffer)
    wrapper = stateful_wrapper(model.get_env())
    if wrapper is not None:
        _replace_via_temp(ckpt / ENV_STATE_FILE, lambda tmp: torch.save(wrapper.state_dict(), tmp))
    # the state file is written last: if it exists, everything it describes is complete
    write_json_atomic(ckpt / STATE_FILE, {"num_timesteps": int(model.num_timesteps), "time": time.time()})
    return ckpt


def checkpoint_steps(run_dir: str | Path) -> int | None:
    """Step count of the last complete checkpoint of a run, or ``None`` if it has none.

    :param run_dir: the run directory
    """
    state = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    if not state.exists() or not (Path(run_dir) / CHECKPOINT_DIR / MODEL_FILE).exists():
        return None
    return int(json.loads(state.read_text())["num_timesteps"])


def load_checkpoint(
    algo_cls: type[BaseAlgorithm], run_dir: str | Path, env: Any, *, device: str = "auto", **kwargs: Any
) -> BaseAlgorithm:
    """Load the last checkpoint of a run onto ``env`` (restoring VecNormalize stats and replay buffer).

    :param algo_cls: the SB3 algorithm class
    :param run_dir: the run directory
    :param env: a fresh training VecEnv (already wrapped like the saved one)
    :param device: torch device
    :param kwargs: forwarded to ``algo_cls.load`` (e.g. ``custom_objects``)
    :return: the model; its ``num_timesteps`` continues the saved count
    """
    ckpt = Path(run_dir) / CHECKPOINT_DIR
    vec_normalize = unwrap_vec_normalize(env)
    if vec_normalize is not None and (ckpt / VECNORM_FILE).exists():
        saved = VecNormalize.load(str(ckpt / VECNORM_FILE), vec_normalize.venv)
        vec_normalize.obs_rms, vec_normalize.ret_rms = saved.obs_rms, saved.ret_rms
    model = algo_cls.load(str(ckpt / MODEL_FILE), env=env, device=device, **kwargs)
    if (ckpt / REPLAY_FILE).exists() and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(str(ckpt / REPLAY_FILE))
    wrapper = stateful_wrapper(env)
    if wrapper is not None and (ckpt / ENV_STATE_FILE).exists():
        wrapper.load_state_dict(torch.load(ckpt / ENV_STATE_FILE, weights_only=False))
    return model


def non_finite_report(model: BaseAlgorithm) -> str | None:
    """Describe the first NaN/inf among the model's parameters and its last logged ``train/`` values.

    :param model: the SB3 model
    :return: a one-line description, or ``None`` when everything is finite
    """
    for name, value in model.logger.name_to_value.items():
        if name.startswith("train/") and isinstance(value, (int, float)) and not math.isfinite(value):
            return f"logged {name} = {value}"
    for name, param in model.policy.named_parameters():
        if not torch.isfinite(param).all():
            return f"parameter policy.{name} contains {'NaN' if torch.isnan(param).any() else 'inf'}"
    for name, buf in model.policy.named_buffers():
        if buf.is_floating_point() and not torch.isfinite(buf).all():
            return f"buffer policy.{name} contains NaN or inf"
    return None


class NonFiniteGuardCallback(BaseCallback):
    """Stop training as soon as an update produced NaN/inf in a loss or a parameter.

    Checked at the start of each rollout (i.e. right after the previous update), before each update and at the
    end of training; it raises :class:`NonFiniteError`, so nothing after it (in particular no checkpoint) sees
    the bad model. NaN that appears in the middle of an update usually makes torch raise first (invalid
    distribution parameters); :func:`agents.pipeline.train.train_run` turns such errors into the same message.
    """

    def _check(self) -> None:
        problem = non_finite_report(self.model)
        if problem is not None:
            raise NonFiniteError(
                f"non-finite values after {self.num_timesteps} steps: {problem}; "
                "stopped, the last good checkpoint is kept"
            )

    def _on_rollout_start(self) -> None:
        self._check()

    def _on_rollout_end(self) -> None:
        self._check()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._check()


class CheckpointCallback(BaseCallback):
    """Checkpoint every ``save_freq`` environment steps, right after an update (atomic, see module doc).

    :param run_dir: the run directory
    :param save_freq: steps between checkpoints
    :param save_replay_buffer: also save an off-policy replay buffer
    """

    def __init__(self, run_dir: str | Path, save_freq: int, *, save_replay_buffer: bool = False) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.save_freq = save_freq
        self.save_replay_buffer = save_replay_buffer
        self._last_bucket = 0

    def _on_training_start(self) -> None:
        self._last_bucket = self.num_timesteps // self.save_freq

    def _on_rollout_start(self) -> None:
        # rollout start = after the previous update, so the saved weights match the step count
        bucket = self.num_timesteps // self.save_freq
        if bucket > self._last_bucket:
            self._last_bucket = bucket
            save_checkpoint(self.model, self.run_dir, save_replay_buffer=self.save_replay_buffer)

    def _on_step(self) -> bool:
        return True
