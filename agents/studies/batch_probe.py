"""The measurement of study 1 (:mod:`agents.studies.batch_dependence`): trained policies on real observations.

For a finished feed-forward run, :func:`collect_observations` lets its policy play its env; :func:`measure_run`
then feeds disjoint batches of those observations through the policy in train and eval mode and gives both metrics
per batch size (``batch_dependence``: synthetic replacements of the other samples; ``action_tv``: real ones).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.utils import obs_as_tensor

from agents.pipeline.callbacks import PolicyProbe
from envs import NOISE_OPTIONS, make_env
from rlnorm.diagnostics import batch_dependence

BATCH_SIZES = (1, 4, 16, 64, 256)
MODES = ("train", "eval")
METRICS = ("batch_dependence", "action_tv")


@dataclass(frozen=True)
class TrainedRun:
    """A finished run whose final model the study loads.

    :param run_dir: ``runs/<experiment>/<env>/<run>``
    :param algo: the SB3 algorithm name (``PPO``, ``A2C``, ``DQN``)
    :param env_id: the env it was trained on
    :param norm: its norm (the one its policy is built with)
    :param seed: its seed
    :param env_options: the ``envs.make_env`` options of its config (noise options are dropped)
    :param arm: its arm label (``run.arm`` of its ``config.yaml``; the norm for runs written before arms existed)
    """

    run_dir: Path
    algo: str
    env_id: str
    norm: str
    seed: int
    env_options: dict
    arm: str = ""

    def __post_init__(self) -> None:
        if not self.arm:
            object.__setattr__(self, "arm", self.norm)

    @property
    def name(self) -> str:
        """The run directory's name, e.g. ``PPO-bn-s0``."""
        return self.run_dir.name


def find_trained_runs(experiment_dir: str | Path) -> list[TrainedRun]:
    """Finished feed-forward runs (``config.yaml`` and ``final_model.zip``) under an experiment, sorted.

    Recurrent runs are skipped: their outputs depend on the LSTM state, not only on the batch.

    :param experiment_dir: ``runs/<experiment>``
    """
    runs = []
    for config_path in sorted(Path(experiment_dir).rglob("config.yaml")):
        run_dir = config_path.parent
        if not (run_dir / "final_model.zip").exists():
            continue
        info = yaml.safe_load(config_path.read_text())
        if info.get("algo") == "RecurrentPPO":
            continue
        run = info["run"]
        options = {k: v for k, v in (info.get("env_options") or {}).items() if k not in NOISE_OPTIONS}
        runs.append(
            TrainedRun(
                run_dir, info["algo"], run["env"], run["norm"], int(run["seed"]), options, run.get("arm", run["norm"])
            )
        )
    return runs


def load_policy(run: TrainedRun) -> BasePolicy:
    """The trained policy of a run, on the CPU, in eval mode.

    :param run: the run
    """
    import agents  # noqa: F401  (registers the norm policy aliases that the saved model names)
    from agents.policies.algos import algo_class

    model = algo_class(run.algo).load(run.run_dir / "final_model.zip", device="cpu")
    model.policy.set_training_mode(False)
    return model.policy


def collect_observations(policy: BasePolicy, run: TrainedRun, n_obs: int, seed: int, n_envs: int = 8) -> np.ndarray:
    """Observations visited by the policy acting (sampled actions, eval mode) in its own env.

    :param policy: the trained policy
    :param run: the run (env id and options)
    :param n_obs: number of observations returned
    :param seed: env seed (kept apart from the training and evaluation seeds)
    :param n_envs: parallel envs
    :return: ``(n_obs, *obs_shape)`` in the env's dtype, shuffled
    """
    env = make_env(run.env_id, n_envs, seed, **{**run.env_options, "training": False})
    try:
        obs = env.reset()
        frames = []
        for _ in range(math.ceil(n_obs / n_envs)):
            frames.append(np.array(obs))
            actions, _ = policy.predict(obs, deterministic=False)
            obs, _, _, _ = env.step(actions)
    finally:
        env.close()
    stacked = np.concatenate(frames)
    rng = np.random.default_rng(seed)
    return stacked[rng.permutation(len(stacked))[:n_obs]]


@torch.no_grad()
def action_tv(
    policy: BasePolicy, x: torch.Tensor, pool: torch.Tensor, *, n_trials: int = 4, seed: int = 0
) -> float | None:
    """Largest total-variation distance between sample 0's action distributions when the other samples of
    its batch are replaced by other real observations drawn from ``pool``.

    Runs on a copy (running statistics untouched) in the policy's current train/eval mode; ``None`` for
    policies without a discrete action distribution.

    :param policy: an actor-critic policy
    :param x: the batch (at least 2 observations)
    :param pool: observations the replacements are drawn from
    :param n_trials: number of replacement batches
    :param seed: seed of the draws
    """
    if not isinstance(policy, ActorCriticPolicy):
        return None
    probe = copy.deepcopy(policy)
    state = copy.deepcopy(probe.state_dict())
    dist = probe.get_distribution(x).distribution
    if not hasattr(dist, "probs"):
        return None
    reference = dist.probs[0]
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(n_trials):
        probe.load_state_dict(state)
        x2 = x.clone()
        x2[1:] = pool[torch.randint(len(pool), (len(x) - 1,), generator=gen)]
        probs = probe.get_distribution(x2).distribution.probs[0]
        worst = max(worst, 0.5 * (probs - reference).abs().sum().item())
    return worst


def measure_run(
    policy: BasePolicy,
    observations: np.ndarray,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    n_batches: int = 8,
    seed: int = 0,
) -> pd.DataFrame:
    """Both metrics of one policy at each batch size and mode, averaged over ``n_batches`` batches.

    :param policy: the trained policy
    :param observations: real observations (at least ``max(batch_sizes)``)
    :param batch_sizes: batch sizes; 1 gives NaN (no other samples to change)
    :param n_batches: batches per size (disjoint while the observations last, then overlapping)
    :param seed: seed of the batch draws and replacements
    :return: columns ``mode, batch_size, metric, value, n_batches``
    """
    if len(observations) < max(batch_sizes):
        raise ValueError(
            f"observations: need at least max(batch_sizes) = {max(batch_sizes)} samples, got {len(observations)}"
        )
    pool = obs_as_tensor(observations, policy.device)
    probe = PolicyProbe(policy)
    rng = np.random.default_rng(seed)
    rows = []
    for mode in MODES:
        for size in batch_sizes:
            values: dict[str, list[float]] = {m: [] for m in METRICS}
            if size >= 2:
                order = rng.permutation(len(observations))
                for b in range(n_batches):
                    start = (b * size) % (len(order) - size + 1)
                    x = pool[order[start : start + size]]
                    probe.train(mode == "train")
                    values["batch_dependence"].append(batch_dependence(probe, x, seed=seed + b))
                    tv = action_tv(policy, x, pool, seed=seed + b)
                    if tv is not None:
                        values["action_tv"].append(tv)
            policy.set_training_mode(False)
            for metric, vals in values.items():
                value = float(np.mean(vals)) if vals else float("nan")
                rows.append(
                    {"mode": mode, "batch_size": size, "metric": metric, "value": value, "n_batches": len(vals)}
                )
    return pd.DataFrame(rows)


def log_to_tensorboard(results: pd.DataFrame, logdir: Path) -> None:
    """Write ``<metric>/<mode>`` scalars with the batch size as the step.

    :param results: output of :func:`measure_run` for one run
    :param logdir: the event-file directory
    """
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    try:
        for row in results.itertuples():
            if not math.isnan(row.value):
                writer.add_scalar(f"{row.metric}/{row.mode}", row.value, global_step=int(row.batch_size))
    finally:
        writer.close()
