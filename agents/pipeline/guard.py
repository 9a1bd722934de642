"""The NaN/inf guard: stop a run at the first non-finite loss or weight, and keep its last finite weights."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

#: a run that stopped on NaN/inf keeps its last finite weights here (beside ``checkpoints/``)
LAST_FINITE_FILE = "last_finite_model.zip"
#: off-policy algorithms check every few steps; copying the weights that often would cost more than training
OFF_POLICY_SNAPSHOT_STEPS = 1000


class NonFiniteError(RuntimeError):
    """Training produced NaN or inf in a loss or a parameter."""


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
    """Stop training as soon as an update produced NaN/inf in a loss or a parameter, and remember the last
    finite weights.

    Checked at the start of each rollout (i.e. right after the previous update), at its end and at the end of
    training; it raises :class:`NonFiniteError`, so nothing after it (in particular no checkpoint) sees the bad
    model. At each check that passes it copies the weights and optimizer state (on-policy: every update;
    off-policy: at most every :data:`OFF_POLICY_SNAPSHOT_STEPS` steps), which :meth:`save_last_finite` writes.
    NaN that appears in the middle of an update usually makes torch raise first (invalid distribution
    parameters); :func:`agents.pipeline.train.train_run` turns such errors into the same message.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_finite_step: int | None = None
        self._snapshot: tuple[dict[str, torch.Tensor], dict[str, Any] | None] | None = None
        self._every = 0

    def _on_training_start(self) -> None:
        self._every = 0 if isinstance(self.model, OnPolicyAlgorithm) else OFF_POLICY_SNAPSHOT_STEPS

    def _check(self) -> None:
        problem = non_finite_report(self.model)
        if problem is not None:
            raise NonFiniteError(f"non-finite values after {self.num_timesteps} steps: {problem}")
        due = self.last_finite_step is None or self.num_timesteps - self.last_finite_step >= self._every
        if due and self.num_timesteps != self.last_finite_step:
            policy = self.model.policy
            optimizer = getattr(policy, "optimizer", None)
            # state dicts may hold extra state (plain objects) beside tensors
            weights = {
                k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                for k, v in policy.state_dict().items()
            }
            self._snapshot = (weights, copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None)
            self.last_finite_step = self.num_timesteps

    def save_last_finite(self, path: str | Path) -> int | None:
        """Put the last finite weights back into the model and save it (its step count set to theirs).

        :param path: destination zip
        :return: the step of the saved weights, or ``None`` if no check had passed
        """
        if self._snapshot is None or self.last_finite_step is None:
            return None
        weights, optimizer_state = self._snapshot
        policy = self.model.policy
        policy.load_state_dict(weights)
        if optimizer_state is not None:
            policy.optimizer.load_state_dict(optimizer_state)
        self.model.num_timesteps = self.last_finite_step
        path = Path(path)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        self.model.save(tmp)
        os.replace(tmp, path)
        return self.last_finite_step

    def _on_rollout_start(self) -> None:
        self._check()

    def _on_rollout_end(self) -> None:
        problem = non_finite_report(self.model)
        if problem is not None:
            raise NonFiniteError(f"non-finite values after {self.num_timesteps} steps: {problem}")

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._on_rollout_end()
