"""Training entry point: ``python -m agents.train CONFIG [key=value ...] [--workers N] [--backend local|ray]``.

One *run* is one (env, norm, seed) of a config. It writes to
``<runs_dir>/<experiment>/<env>/<algo>-<norm>-s<seed>/``::

    config.yaml        the resolved config plus this run's env/norm/seed/policy
    tb/                TensorBoard events (SB3's rollout/, train/, time/ and ours: norm/, eval/, by_env/)
    checkpoints/       last checkpoint (atomic), used to resume an interrupted run
    final_model.zip    the trained model
    final.json         final metrics; its presence marks the run finished (re-running skips it)
    failed.json        why a run stopped (e.g. NaN/inf), if it did

The whole grid runs through :mod:`agents.sweep` and ends with the report of :mod:`agents.compare`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from agents.algos import algo_class, network_for, policy_for
from agents.callbacks import HParamsCallback, NoiseEvalCallback, NormDiagnosticsCallback, ProgressCallback
from agents.checkpoints import (
    CheckpointCallback,
    NonFiniteError,
    NonFiniteGuardCallback,
    checkpoint_steps,
    load_checkpoint,
    non_finite_report,
    save_checkpoint,
    write_json_atomic,
)
from agents.config import NOISE_OPTIONS, ConfigError, ExperimentConfig, load_config, parse_schedule, save_config
from agents.tb_layout import ROLLOUT_RETURN, env_slug

FINAL_FILE = "final.json"
FAILED_FILE = "failed.json"
EVAL_SEED_OFFSET = 10_000
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


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
        """``<algo>-<norm>-s<seed>`` (the policy class is the same for every norm, see :mod:`agents.algos`)."""
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


def _algo_kwargs(spec: RunSpec, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = spec.config.env_hyperparams(spec.env_id)
    extra_policy_kwargs = kwargs.pop("policy_kwargs", {}) or {}
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = LinearSchedule(parse_schedule(kwargs[key]), 0.0, 1.0)
    merged = {**spec.config.policy_kwargs, **extra_policy_kwargs, **policy_kwargs}
    if isinstance(merged.get("activation_fn"), str):
        name = merged["activation_fn"]
        if name not in _ACTIVATIONS:
            raise ConfigError(
                "policy_kwargs", "activation_fn", f"must be one of {', '.join(_ACTIVATIONS)}; got {name!r}"
            )
        merged["activation_fn"] = _ACTIVATIONS[name]
    kwargs["policy_kwargs"] = merged
    return kwargs


def make_train_env(spec: RunSpec) -> VecEnv:
    """The training VecEnv of a run (with the exploration wrapper if the config has one).

    The density model of the exploration bonus is seeded with the run seed unless ``exploration.seed`` is set,
    so seeds of a study differ in the model's initialization as well as in the policy's.

    :param spec: the run
    """
    from envs import make_env

    config = spec.config
    env = make_env(spec.env_id, config.env_n_envs(spec.env_id), spec.seed, **dict(config.env_options))
    if config.exploration is not None:
        from agents.exploration import wrap_exploration

        env = wrap_exploration(env, {"seed": spec.seed, **config.exploration})
    return env


def make_eval_env_factory(spec: RunSpec) -> Any:
    """``factory(**noise_options) -> VecEnv`` for evaluation: unclipped rewards, full episodes, other seeds.

    :param spec: the run
    """
    from envs import make_env

    config = spec.config
    base = {k: v for k, v in config.env_options.items() if k not in NOISE_OPTIONS.values()}
    base["training"] = False

    def factory(**noise_options: Any) -> VecEnv:
        options = {**base, **noise_options}
        return make_env(spec.env_id, config.eval.n_envs, spec.seed + EVAL_SEED_OFFSET, **options)

    return factory


def is_finished(run_dir: str | Path, total_timesteps: int) -> bool:
    """Whether a run directory holds a finished run of at least ``total_timesteps`` steps.

    :param run_dir: the run directory
    :param total_timesteps: the target step count
    """
    final = Path(run_dir) / FINAL_FILE
    return final.exists() and json.loads(final.read_text()).get("num_timesteps", 0) >= total_timesteps


def train_run(
    spec: RunSpec,
    *,
    progress_bar: bool | None = None,
    progress_lines: float | None = None,
    extra_callbacks: Sequence[BaseCallback] = (),
    torch_threads: int | None = None,
) -> RunResult:
    """Train one run, resuming from its last checkpoint; skip it if it already finished.

    :param spec: the run
    :param progress_bar: override ``train.progress_bar``
    :param progress_lines: instead of a bar, print a progress line at this interval in seconds (parallel
        workers, whose bars would garble each other)
    :param extra_callbacks: more SB3 callbacks (after the built-in ones)
    :param torch_threads: ``torch.set_num_threads`` for this process (default ``train.torch_threads``; 0 leaves
        torch's default)
    :return: the outcome
    """
    config = spec.config
    run_dir = spec.run_dir
    total = config.train.total_timesteps
    if is_finished(run_dir, total):
        final = json.loads((run_dir / FINAL_FILE).read_text())
        return RunResult(str(run_dir), "skipped", final["num_timesteps"], final.get("metrics", {}))
    threads = config.train.torch_threads if torch_threads is None else torch_threads
    if threads:
        torch.set_num_threads(threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED_FILE).unlink(missing_ok=True)
    started = time.time()

    env = make_train_env(spec)
    network = network_for(env.observation_space, config.network)
    policy_cls, policy_kwargs = policy_for(config.algo, network, spec.norm)
    save_config(
        config,
        run_dir / "config.yaml",
        env=spec.env_id,
        norm=spec.norm,
        seed=spec.seed,
        network=network,
        policy=f"{policy_cls.__module__}.{policy_cls.__qualname__}",
    )
    algo = algo_class(config.algo)
    resume_from = checkpoint_steps(run_dir)
    if resume_from is not None:
        model = load_checkpoint(algo, run_dir, env, device=config.device)
    else:
        model = algo(
            policy_cls, env, seed=spec.seed, device=config.device, verbose=0, **_algo_kwargs(spec, policy_kwargs)
        )
    if resume_from is None:
        # a run restarting from scratch (e.g. it failed before its first checkpoint) must not mix its curves
        # with the event files of the earlier attempt
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))

    evaluator = NoiseEvalCallback(
        spec.env_id,
        make_eval_env_factory(spec),
        config.eval.noise,
        NOISE_OPTIONS,
        n_episodes=config.eval.n_episodes,
        freq=config.eval.freq,
        deterministic=config.eval.deterministic,
        bn_modes=config.eval.bn_modes,
    )
    diagnostics = NormDiagnosticsCallback(config.diagnostics.freq)
    hparams = {"norm": spec.norm, "algo": config.algo, "env": spec.env_id, "seed": spec.seed, "network": network}
    callbacks: list[BaseCallback] = [
        NonFiniteGuardCallback(),
        HParamsCallback(spec.env_id, hparams, record_hparams=resume_from is None),
        diagnostics,
        evaluator,
        CheckpointCallback(run_dir, config.train.checkpoint_freq, save_replay_buffer=config.train.save_replay_buffer),
    ]
    if config.exploration is not None:
        from agents.exploration import PseudoCountLogger

        callbacks.append(PseudoCountLogger())
    show_bar = config.train.progress_bar if progress_bar is None else progress_bar
    if show_bar:
        label = f"{env_slug(spec.env_id)}/{spec.name}"
        callbacks.append(ProgressCallback(total, description=label, line_every=progress_lines))
    callbacks.extend(extra_callbacks)

    try:
        remaining = max(total - model.num_timesteps, 0)
        if remaining:
            # reset_num_timesteps=False continues the step counter (and the TB curves) of a resumed run
            model.learn(
                remaining,
                callback=CallbackList(callbacks),
                log_interval=config.train.log_interval,
                reset_num_timesteps=resume_from is None,
            )
        metrics = evaluator.evaluate_now() if model.num_timesteps else {}
        if config.diagnostics.freq:
            diagnostics.log_now()
        if model.ep_info_buffer:
            metrics[ROLLOUT_RETURN] = float(sum(e["r"] for e in model.ep_info_buffer) / len(model.ep_info_buffer))
        model.logger.dump(model.num_timesteps)
    except Exception as err:
        problem = non_finite_report(model)
        if not isinstance(err, NonFiniteError) and problem is None:
            raise
        if not isinstance(err, NonFiniteError):  # torch failed on NaN before the guard could look
            err = NonFiniteError(
                f"non-finite values after {model.num_timesteps} steps: {problem} ({type(err).__name__} during "
                "the update); stopped, the last good checkpoint is kept"
            )
        write_json_atomic(run_dir / FAILED_FILE, {"message": str(err), "num_timesteps": int(model.num_timesteps)})
        return RunResult(str(run_dir), "failed", int(model.num_timesteps), message=str(err))
    finally:
        evaluator.close()
        env.close()
        model.logger.close()

    save_checkpoint(model, run_dir, save_replay_buffer=config.train.save_replay_buffer)
    tmp = run_dir / ".final_model.tmp.zip"
    model.save(tmp)
    tmp.replace(run_dir / "final_model.zip")
    final = {
        "num_timesteps": int(model.num_timesteps),
        "metrics": metrics,
        "wall_time_s": time.time() - started,
        "resumed_from": resume_from,
    }
    write_json_atomic(run_dir / FINAL_FILE, final)
    return RunResult(str(run_dir), "finished", int(model.num_timesteps), metrics)


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line shared by ``agents.train`` and ``agents.sweep``.

    :param prog: program name
    :param description: help text
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("config", help="YAML experiment config, e.g. configs/default.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.total_timesteps=20000 seeds=[0]")
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: sweep.workers; 0 = cores)")
    parser.add_argument("--backend", choices=("local", "ray"), default=None, help="default: sweep.backend")
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison report at the end")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m agents.train") -> int:
    """Validate the config, run its grid (resuming/skipping as needed), then write the report.

    :param argv: command-line arguments (default ``sys.argv[1:]``)
    :param prog: program name for the help text
    :return: exit status (0 ok, 1 some run failed, 2 bad config)
    """
    from agents.sweep import preflight, run_grid

    args = build_parser(prog, __doc__.splitlines()[0]).parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        preflight(config, args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = run_grid(config, backend=args.backend, workers=args.workers)
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"FAILED {r.run_dir}: {r.message}", file=sys.stderr)
    if not args.no_compare:
        from agents.compare import compare

        report = compare(experiment_dir(config), Path(config.reports_dir) / config.experiment)
        print(f"report: {report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
