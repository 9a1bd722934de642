"""What one run of a grid is, where it lives on disk, and how it ended.

One *run* is one (env, arm, seed) of a config; an arm is a norm of the config's ``norms`` (labelled by its name) or
an entry of its ``arms`` (a norm plus policy kwargs, under its own label). It writes to
``<runs_dir>/<experiment>/<env>/<algo>-<label>-s<seed>/``::

    config.yaml        the resolved config the run trains with, plus its env/norm/arm/seed/policy
    history.jsonl      one line per start, resume, interruption, failure and finish (:mod:`~.resume`)
    events.out.tfevents.*  TensorBoard events (SB3's rollout/, train/, time/ and ours: norm/, eval/, by_env/), in
                       the run directory so TensorBoard names the run like the grid (runs of rlnorm 0.1/0.2: tb/)
    checkpoints/       the two newest checkpoints (atomic), to resume an interrupted run (:mod:`~.checkpoints`)
    final_model.zip    the trained model
    final.json         final metrics; with ``num_timesteps`` >= the configured steps it marks the run finished
    failed.json        why a run stopped (e.g. NaN/inf, an exception and its traceback), if it did
    last_finite_model.zip  the last weights without NaN/inf, if the run stopped on them
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.config import ExperimentConfig
from agents.pipeline.checkpoints import checkpoint_steps
from agents.pipeline.tb_layout import env_slug

CONFIG_FILE = "config.yaml"
FINAL_FILE = "final.json"
FAILED_FILE = "failed.json"
#: :attr:`RunResult.status` values
STATUSES = ("finished", "skipped", "failed", "interrupted", "not started")


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid.

    :param config: the experiment
    :param env_id: the env
    :param norm: the norm of this arm (the real one the policy is built with)
    :param seed: the seed
    :param arm: the label of an arm of ``config.arms``; empty for an arm of ``config.norms`` (labelled by its norm)
    """

    config: ExperimentConfig
    env_id: str
    norm: str
    seed: int
    arm: str = ""

    def __post_init__(self) -> None:
        if self.arm and self.config.arm_norms.get(self.arm) != self.norm:
            raise ValueError(
                f"arm {self.arm!r} with norm {self.norm!r} is not an arm of the config: {self.config.arm_norms}"
            )

    @property
    def label(self) -> str:
        """The arm's label: :attr:`arm`, else the norm. It names the run folder and the reports' ``norm`` column."""
        return self.arm or self.norm

    @property
    def arm_policy_kwargs(self) -> dict[str, Any]:
        """The policy kwargs of this arm on top of the config-wide ones (empty for an arm of ``config.norms``)."""
        return self.config.arm_policy_kwargs(self.arm) if self.arm else {}

    @property
    def name(self) -> str:
        """``<algo>-<label>-s<seed>`` (the policy class is the same for every norm: :mod:`agents.policies.algos`)."""
        return f"{self.config.algo}-{self.label}-s{self.seed}"

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<experiment>/<env>/<algo>-<label>-s<seed>``."""
        return experiment_dir(self.config) / env_slug(self.env_id) / self.name


@dataclass
class RunResult:
    """Outcome of :func:`train_run`.

    :param run_dir: the run directory
    :param status: one of :data:`STATUSES`: ``finished``, ``skipped`` (finished earlier), ``failed``,
        ``interrupted`` (stopped by a signal, resumable) or ``not started`` (the grid was stopped before it)
    :param num_timesteps: steps trained in total (for ``interrupted``: the step it resumes from)
    :param metrics: final metrics (tag -> value)
    :param message: why it failed, or what an interruption kept
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
    """Every run of a config: envs x arms x seeds (the arms: ``norms``, then ``arms``), seeds outermost so early
    results cover all arms.

    :param config: the experiment
    """
    arms = [(norm, "") for norm in config.norms] + [(arm.norm, label) for label, arm in config.arms.items()]
    return [
        RunSpec(config, env_id, norm, seed, arm)
        for seed in config.seeds
        for env_id in config.envs
        for norm, arm in arms
    ]


def is_finished(run_dir: str | Path, total_timesteps: int) -> bool:
    """Whether a run directory holds a finished run of at least ``total_timesteps`` steps.

    :param run_dir: the run directory
    :param total_timesteps: the target step count
    """
    final = Path(run_dir) / FINAL_FILE
    return final.exists() and json.loads(final.read_text()).get("num_timesteps", 0) >= total_timesteps


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_wall_time(run_dir: str | Path) -> float:
    """Seconds a finished run took (training and its evaluations: ``wall_time_s`` of its ``final.json``), or NaN.

    :param run_dir: the run directory
    """
    try:
        return float(_read_json(Path(run_dir) / FINAL_FILE)["wall_time_s"])
    except (KeyError, TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class RunState:
    """How a run directory stands, as reports see it.

    :param status: ``finished`` (reached its configured steps), ``failed`` or ``unfinished`` (stopped or still
        running; resumable)
    :param steps: steps reached (the final model's, else the newest checkpoint's or the failure's)
    :param target: the run's configured ``train.total_timesteps`` (``None`` if unknown)
    :param message: why it failed
    """

    status: str
    steps: int
    target: int | None
    message: str = ""


def run_state(run_dir: str | Path) -> RunState:
    """Read a run directory's state from its ``final.json``, ``failed.json``, checkpoints and ``config.yaml``.

    :param run_dir: the run directory
    """
    run_dir = Path(run_dir)
    target = None
    if (run_dir / CONFIG_FILE).exists():
        doc = yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}
        target = (doc.get("train") or {}).get("total_timesteps")
    final = _read_json(run_dir / FINAL_FILE)
    done = int(final.get("num_timesteps", 0)) if final else None
    if done is not None and (target is None or done >= int(target)):
        return RunState("finished", done, target)
    steps = max(done or 0, checkpoint_steps(run_dir) or 0)
    failed = _read_json(run_dir / FAILED_FILE)
    if failed:
        message = str(failed.get("message", "")).splitlines()[0] if failed.get("message") else ""
        return RunState("failed", int(failed.get("num_timesteps") or steps), target, message)
    return RunState("unfinished", steps, target)


def run_plan(spec: RunSpec) -> tuple[str, int | None]:
    """What running ``spec`` will do: ``("skip", steps)`` for a finished run, ``("resume", step)`` from its
    newest checkpoint, or ``("start", None)``.

    :param spec: the run
    """
    if is_finished(spec.run_dir, spec.config.train.total_timesteps):
        return "skip", int(_read_json(spec.run_dir / FINAL_FILE).get("num_timesteps", 0))
    steps = checkpoint_steps(spec.run_dir)
    return ("resume", steps) if steps is not None else ("start", None)
