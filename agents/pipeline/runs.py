"""What one run of a grid is, where it lives on disk, and how it ended.

One *run* is one (env, norm, seed) of a config. It writes to
``<runs_dir>/<experiment>/<env>/<algo>-<norm>-s<seed>/``::

    config.yaml        the resolved config plus this run's env/norm/seed/policy
    tb/                TensorBoard events (SB3's rollout/, train/, time/ and ours: norm/, eval/, by_env/)
    checkpoints/       last checkpoint (atomic), used to resume an interrupted run
    final_model.zip    the trained model
    final.json         final metrics; its presence marks the run finished (re-running skips it)
    failed.json        why a run stopped (e.g. NaN/inf), if it did
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agents.config import ExperimentConfig
from agents.pipeline.tb_layout import env_slug

FINAL_FILE = "final.json"
FAILED_FILE = "failed.json"


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid.

    :param config: the experiment
    :param env_id: the env
    :param norm: the norm of this arm
    :param seed: the seed
    """

    config: ExperimentConfig
    env_id: str
    norm: str
    seed: int

    @property
    def name(self) -> str:
        """``<algo>-<norm>-s<seed>`` (the policy class is the same for every norm, see :mod:`agents.policies.algos`)."""
        return f"{self.config.algo}-{self.norm}-s{self.seed}"

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<experiment>/<env>/<algo>-<norm>-s<seed>``."""
        return experiment_dir(self.config) / env_slug(self.env_id) / self.name


@dataclass
class RunResult:
    """Outcome of :func:`train_run`.

    :param run_dir: the run directory
    :param status: ``finished``, ``skipped`` (finished earlier) or ``failed``
    :param num_timesteps: steps trained in total
    :param metrics: final metrics (tag -> value)
    :param message: why it failed
    """

    run_dir: str
    status: str
    num_timesteps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


def experiment_dir(config: ExperimentConfig) -> Path:
    """``<runs_dir>/<experiment>``."""
    return Path(config.runs_dir) / config.experiment


def grid(config: ExperimentConfig) -> list[RunSpec]:
    """Every run of a config: envs x norms x seeds, seeds innermost so early results cover all arms.

    :param config: the experiment
    """
    return [
        RunSpec(config, env_id, norm, seed) for seed in config.seeds for env_id in config.envs for norm in config.norms
    ]


def is_finished(run_dir: str | Path, total_timesteps: int) -> bool:
    """Whether a run directory holds a finished run of at least ``total_timesteps`` steps.

    :param run_dir: the run directory
    :param total_timesteps: the target step count
    """
    final = Path(run_dir) / FINAL_FILE
    return final.exists() and json.loads(final.read_text()).get("num_timesteps", 0) >= total_timesteps
