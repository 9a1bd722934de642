"""One training run: build the env and the model, resume from the last checkpoint, train, evaluate, save.

:func:`train_run` is what every sweep backend calls for each cell of the grid (:mod:`agents.pipeline.sweep`);
the folder it writes is described in :mod:`agents.pipeline.runs`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from agents.config import NOISE_OPTIONS, ConfigError, parse_schedule, save_config
from agents.pipeline.callbacks import HParamsCallback, NoiseEvalCallback, NormDiagnosticsCallback, ProgressCallback
from agents.pipeline.checkpoints import (
    CheckpointCallback,
    NonFiniteError,
    NonFiniteGuardCallback,
    checkpoint_steps,
    load_checkpoint,
    non_finite_report,
    save_checkpoint,
    write_json_atomic,
)
from agents.pipeline.runs import FAILED_FILE, FINAL_FILE, RunResult, RunSpec, is_finished
from agents.pipeline.tb_layout import ROLLOUT_RETURN, env_slug
from agents.policies.algos import algo_class, network_for, policy_for

EVAL_SEED_OFFSET = 10_000
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def algo_kwargs(spec: RunSpec, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
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
            policy_cls, env, seed=spec.seed, device=config.device, verbose=0, **algo_kwargs(spec, policy_kwargs)
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
