"""Atomic checkpoints of an SB3 model, and resuming from the newest one that loads.

Layout inside a run directory (the newest :data:`KEEP_CHECKPOINTS` are kept)::

    checkpoints/step-000000040960/model.zip         SB3 ``model.save``
    checkpoints/step-000000040960/state.json        {"num_timesteps", "time", "pending_log", ...}; written last
    checkpoints/step-000000040960/vecnormalize.pkl  if the env is a VecNormalize
    checkpoints/step-000000040960/replay_buffer.pkl DQN only, if ``train.save_replay_buffer``
    checkpoints/step-000000040960/env_state.pt      if a VecEnv wrapper keeps learned state (pseudo-count model)

Each checkpoint is written into a temporary directory that is renamed into place when complete, so a
``step-*`` directory is never half written. Runs written by rlnorm 0.1.0 have one checkpoint,
``checkpoints/last.zip`` + ``last.json`` (+ the optional files beside them); it is read like the others.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize, unwrap_vec_normalize

from agents.pipeline.interrupt import RunInterrupted, stop_requested

CHECKPOINT_DIR = "checkpoints"
#: complete checkpoints kept per run: the newest may be damaged (disk, copy), the one before is the fallback
KEEP_CHECKPOINTS = 2
MODEL_FILE = "model.zip"
STATE_FILE = "state.json"
REPLAY_FILE = "replay_buffer.pkl"
VECNORM_FILE = "vecnormalize.pkl"
ENV_STATE_FILE = "env_state.pt"
#: the single checkpoint of runs written by rlnorm 0.1.0
LEGACY_MODEL_FILE = "last.zip"
LEGACY_STATE_FILE = "last.json"


class CheckpointError(RuntimeError):
    """No checkpoint of a run loads; the message is one line naming the file and how to start over."""


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint of a run.

    :param path: its directory (for the 0.1.0 layout: ``checkpoints/``)
    :param steps: the step count it was saved at
    :param legacy: written by rlnorm 0.1.0 (``last.zip`` / ``last.json``)
    """

    path: Path
    steps: int
    legacy: bool = False

    @property
    def model_file(self) -> Path:
        """The SB3 zip."""
        return self.path / (LEGACY_MODEL_FILE if self.legacy else MODEL_FILE)

    @property
    def state(self) -> dict[str, Any]:
        """The saved state (step count, pending log values)."""
        return json.loads((self.path / (LEGACY_STATE_FILE if self.legacy else STATE_FILE)).read_text())


@dataclass
class Loaded:
    """Result of :func:`load_latest`.

    :param model: the model, its ``num_timesteps`` continuing the checkpoint's
    :param checkpoint: the checkpoint it came from
    :param skipped: newer checkpoints that did not load, with the reason
    """

    model: BaseAlgorithm
    checkpoint: Checkpoint
    skipped: list[tuple[Checkpoint, str]] = field(default_factory=list)


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temp file and ``os.replace`` (never a half-written file).

    :param path: destination
    :param data: JSON-serializable mapping
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
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


def list_checkpoints(run_dir: str | Path) -> list[Checkpoint]:
    """The complete checkpoints of a run, newest first (0.1.0's ``last.zip`` included).

    :param run_dir: the run directory
    """
    ckpt = Path(run_dir) / CHECKPOINT_DIR
    found = []
    for path in ckpt.glob("step-*"):
        if path.is_dir() and (path / STATE_FILE).exists() and path.name[5:].isdigit():
            found.append(Checkpoint(path, int(path.name[5:])))
    if (ckpt / LEGACY_MODEL_FILE).exists() and (ckpt / LEGACY_STATE_FILE).exists():
        try:
            steps = int(json.loads((ckpt / LEGACY_STATE_FILE).read_text())["num_timesteps"])
        except (ValueError, KeyError, TypeError):
            steps = -1  # unreadable state: still tried, last
        found.append(Checkpoint(ckpt, steps, legacy=True))
    return sorted(found, key=lambda c: c.steps, reverse=True)


def checkpoint_steps(run_dir: str | Path) -> int | None:
    """Step count of the newest complete checkpoint of a run, or ``None`` if it has none.

    :param run_dir: the run directory
    """
    found = list_checkpoints(run_dir)
    return found[0].steps if found else None


def pending_log_values(model: BaseAlgorithm) -> dict[str, Any]:
    """Numbers recorded in the logger but not dumped yet (SB3 dumps an update's ``train/`` values one rollout
    later); a checkpoint keeps them so the resumed run writes them at the step the uninterrupted one would.

    :param model: the SB3 model
    """
    logger = model.logger
    values = {}
    for key, value in logger.name_to_value.items():
        scalar = isinstance(value, (int, float, np.number)) or (
            isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0
        )
        if scalar and not isinstance(value, bool):
            values[key] = float(value)
    return {
        "values": values,
        "counts": {k: int(logger.name_to_count.get(k, 0)) for k in values},
        "excluded": {k: list(logger.name_to_excluded.get(k, ())) for k in values},
    }


def restore_log_values(model: BaseAlgorithm, pending: dict[str, Any] | None) -> None:
    """Put :func:`pending_log_values` of a checkpoint back into the model's (new) logger.

    :param model: the SB3 model with its logger set
    :param pending: the ``pending_log`` entry of a checkpoint's state, or ``None``
    """
    if not pending:
        return
    logger = model.logger
    for key, value in pending.get("values", {}).items():
        logger.name_to_value[key] = value
        logger.name_to_count[key] = pending.get("counts", {}).get(key, 0)
        logger.name_to_excluded[key] = tuple(pending.get("excluded", {}).get(key, ()))


def flush_logger(model: BaseAlgorithm) -> None:
    """Write buffered TensorBoard events to disk, so every event up to a checkpoint's step survives a kill.

    :param model: the SB3 model
    """
    for output in getattr(model.logger, "output_formats", ()):
        writer = getattr(output, "writer", None)
        if writer is not None and callable(getattr(writer, "flush", None)):
            writer.flush()


def save_checkpoint(
    model: BaseAlgorithm,
    run_dir: str | Path,
    *,
    save_replay_buffer: bool = False,
    keep: int = KEEP_CHECKPOINTS,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save model (+ VecNormalize stats, env state, replay buffer if asked) as one new checkpoint directory,
    renamed into place when complete; then delete all but the newest ``keep`` checkpoints.

    :param model: the SB3 model
    :param run_dir: the run directory
    :param save_replay_buffer: also save an off-policy replay buffer
    :param keep: complete checkpoints kept (at least 1)
    :param extra: more JSON entries for its state (the final checkpoint keeps the final metrics)
    :return: the new checkpoint's directory
    """
    ckpt = Path(run_dir) / CHECKPOINT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    for stale in ckpt.glob(".tmp-*"):  # left by a process killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    steps = int(model.num_timesteps)
    final = ckpt / f"step-{steps:012d}"
    tmp = ckpt / f".tmp-{os.getpid()}-{final.name}"
    tmp.mkdir()
    flush_logger(model)
    model.save(tmp / MODEL_FILE)
    vec_normalize = unwrap_vec_normalize(model.get_env()) if model.get_env() is not None else None
    if vec_normalize is not None:
        vec_normalize.save(str(tmp / VECNORM_FILE))
    if save_replay_buffer and getattr(model, "replay_buffer", None) is not None:
        model.save_replay_buffer(tmp / REPLAY_FILE)
    wrapper = stateful_wrapper(model.get_env())
    if wrapper is not None:
        torch.save(wrapper.state_dict(), tmp / ENV_STATE_FILE)
    state = {**(extra or {}), "num_timesteps": steps, "time": time.time(), "pending_log": pending_log_values(model)}
    write_json_atomic(tmp / STATE_FILE, state)
    if final.exists():  # saved again at the same step (the end of a run): the new one replaces it
        old = ckpt / f".tmp-{os.getpid()}-old-{final.name}"
        final.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(final)
    for stale in list_checkpoints(run_dir)[max(keep, 1) :]:
        if stale.legacy:
            for name in (LEGACY_MODEL_FILE, LEGACY_STATE_FILE, VECNORM_FILE, REPLAY_FILE, ENV_STATE_FILE):
                (stale.path / name).unlink(missing_ok=True)
        else:
            shutil.rmtree(stale.path, ignore_errors=True)
    return final


def _load_one(
    algo_cls: type[BaseAlgorithm], checkpoint: Checkpoint, env: Any, device: str, **kwargs: Any
) -> BaseAlgorithm:
    path = checkpoint.path
    vec_normalize = unwrap_vec_normalize(env)
    if vec_normalize is not None and (path / VECNORM_FILE).exists():
        saved = VecNormalize.load(str(path / VECNORM_FILE), vec_normalize.venv)
        vec_normalize.obs_rms, vec_normalize.ret_rms = saved.obs_rms, saved.ret_rms
    model = algo_cls.load(str(checkpoint.model_file), env=env, device=device, **kwargs)
    if (path / REPLAY_FILE).exists() and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(str(path / REPLAY_FILE))
    wrapper = stateful_wrapper(env)
    if wrapper is not None and (path / ENV_STATE_FILE).exists():
        wrapper.load_state_dict(torch.load(path / ENV_STATE_FILE, weights_only=False))
    return model


#: what reading a damaged file raises (truncated or overwritten zip, bad CRC, garbage pickle); anything else (a
#: NameError, an ImportError of a moved class, a state-dict mismatch) is a problem of the code, not of the file,
#: and must not make a run fall back to an older checkpoint or be told to start over
DAMAGE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    EOFError,
    OSError,
    KeyError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)


def is_damage(err: BaseException) -> bool:
    """Whether an exception raised while loading a checkpoint means its files are damaged.

    :param err: the exception
    """
    torch_reader = isinstance(err, RuntimeError) and "PytorchStreamReader" in str(err)
    return isinstance(err, DAMAGE_ERRORS) or torch_reader


def _reason(err: BaseException, path: Path) -> str:
    # the line already names the file: its full path once is enough
    lines = str(err).strip().replace(str(path), path.name).splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def load_latest(
    algo_cls: type[BaseAlgorithm], run_dir: str | Path, env: Any, *, device: str = "auto", **kwargs: Any
) -> Loaded:
    """Load the newest checkpoint of a run that loads, onto ``env`` (restoring VecNormalize stats, env state and
    replay buffer); newer ones that fail are reported in :attr:`Loaded.skipped`.

    :param algo_cls: the SB3 algorithm class
    :param run_dir: the run directory
    :param env: a fresh training VecEnv (already wrapped like the saved one)
    :param device: torch device
    :param kwargs: forwarded to ``algo_cls.load`` (e.g. ``custom_objects``)
    :raises CheckpointError: when the run has checkpoints and each is damaged (:func:`is_damage`); any other error
        while loading propagates (it is not the file's fault)
    """
    skipped: list[tuple[Checkpoint, str]] = []
    for checkpoint in list_checkpoints(run_dir):
        try:
            model = _load_one(algo_cls, checkpoint, env, device, **kwargs)
        except Exception as err:
            if not is_damage(err):
                raise
            skipped.append((checkpoint, _reason(err, checkpoint.model_file)))
            continue
        if checkpoint.steps < 0:  # a 0.1.0 checkpoint whose state file was damaged: the model knows its steps
            checkpoint = Checkpoint(checkpoint.path, int(model.num_timesteps), checkpoint.legacy)
        return Loaded(model, checkpoint, skipped)
    if not skipped:
        raise CheckpointError(f"{Path(run_dir) / CHECKPOINT_DIR}: no checkpoint to resume from")
    newest, reason = skipped[0]
    others = f" (nor {len(skipped) - 1} older one{'s' * (len(skipped) > 2)})" if len(skipped) > 1 else ""
    raise CheckpointError(
        f"{newest.model_file} does not load ({reason}){others}; to start the run over, delete {Path(run_dir)}"
    )


def load_checkpoint(
    algo_cls: type[BaseAlgorithm], run_dir: str | Path, env: Any, *, device: str = "auto", **kwargs: Any
) -> BaseAlgorithm:
    """The model of :func:`load_latest` (the newest checkpoint of a run that loads).

    :param algo_cls: the SB3 algorithm class
    :param run_dir: the run directory
    :param env: a fresh training VecEnv (already wrapped like the saved one)
    :param device: torch device
    :param kwargs: forwarded to ``algo_cls.load``
    """
    return load_latest(algo_cls, run_dir, env, device=device, **kwargs).model


class CheckpointCallback(BaseCallback):
    """Checkpoint every ``save_freq`` environment steps, right after an update (atomic, see module doc); when a
    stop was requested (:mod:`agents.pipeline.interrupt`), checkpoint at the next update and raise
    :class:`~agents.pipeline.interrupt.RunInterrupted`.

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
        self._last_saved = 0

    def _on_training_start(self) -> None:
        self._last_bucket = self.num_timesteps // self.save_freq
        self._last_saved = self.num_timesteps

    def _on_rollout_start(self) -> None:
        # rollout start = after the previous update, so the saved weights match the step count
        bucket = self.num_timesteps // self.save_freq
        stop = stop_requested() is not None
        if (bucket > self._last_bucket or stop) and self.num_timesteps != self._last_saved:
            self._last_bucket = bucket
            save_checkpoint(self.model, self.run_dir, save_replay_buffer=self.save_replay_buffer)
            self._last_saved = self.num_timesteps
            if stop:
                raise RunInterrupted(self.num_timesteps, saved=True)
        if stop:  # nothing trained since the last checkpoint (or since a fresh start)
            raise RunInterrupted(self._last_saved, saved=False)

    def _on_step(self) -> bool:
        return True
