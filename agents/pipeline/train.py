"""One training run: build the env and the model, resume from the newest checkpoint that loads, train, evaluate,
save.

:func:`train_run` is what every sweep backend calls for each cell of the grid (:mod:`agents.pipeline.sweep`);
the folder it writes is described in :mod:`agents.pipeline.runs`, resuming in :mod:`agents.pipeline.resume`,
stopping on a signal in :mod:`agents.pipeline.interrupt`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from agents.config import ACTIVATIONS, NOISE_KIND_OPTIONS, parse_schedule, save_config
from agents.pipeline.callbacks import HParamsCallback, NoiseEvalCallback, NormDiagnosticsCallback, ProgressCallback
from agents.pipeline.checkpoints import (
    CHECKPOINT_DIR,
    CheckpointCallback,
    Loaded,
    checkpoint_steps,
    load_latest,
    restore_log_values,
    save_checkpoint,
    write_json_atomic,
)
from agents.pipeline.guard import LAST_FINITE_FILE, NonFiniteError, NonFiniteGuardCallback, non_finite_report
from agents.pipeline.interrupt import RunInterrupted, stop_requested
from agents.pipeline.progress import RunProgressCallback, executor_info
from agents.pipeline.resume import append_history, check_resumable, truncate_events
from agents.pipeline.runs import CONFIG_FILE, FAILED_FILE, FINAL_FILE, RunResult, RunSpec, is_finished
from agents.pipeline.tb_layout import ROLLOUT_RETURN, env_slug, event_dir, remove_events
from agents.policies.algos import algo_class, network_for, policy_for
from agents.policies.head_stats import HeadStatsCallback

EVAL_SEED_OFFSET = 10_000
#: the final checkpoint's state keeps the final metrics, so a run killed before writing final.json finishes
#: without evaluating (and logging) a second time
FINAL_METRICS = "final_metrics"


def algo_kwargs(spec: RunSpec, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = spec.config.env_hyperparams(spec.env_id)
    extra_policy_kwargs = kwargs.pop("policy_kwargs", {}) or {}
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = LinearSchedule(parse_schedule(kwargs[key]), 0.0, 1.0)
    # the loader refuses a key set both per arm and config-wide, so only the norm (from policy_for) overrides
    merged = {**spec.config.policy_kwargs, **extra_policy_kwargs, **spec.arm_policy_kwargs, **policy_kwargs}
    if isinstance(merged.get("activation_fn"), str):  # the loader checked the name
        merged["activation_fn"] = ACTIVATIONS[merged["activation_fn"]]
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
    base = {k: v for k, v in config.env_options.items() if k not in NOISE_KIND_OPTIONS.values()}
    base["training"] = False

    def factory(**noise_options: Any) -> VecEnv:
        options = {**base, **noise_options}
        return make_env(spec.env_id, config.eval.n_envs, spec.seed + EVAL_SEED_OFFSET, **options)

    return factory


def _relative(path: Path, run_dir: Path) -> str:
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)


def _resume(spec: RunSpec, algo: Any, env: VecEnv, label: str) -> Loaded:
    """Load the newest checkpoint that loads; say in one line which newer ones did not."""
    loaded = load_latest(algo, spec.run_dir, env, device=spec.config.device)
    if loaded.skipped:
        bad = "; ".join(f"{_relative(c.model_file, spec.run_dir)} ({reason})" for c, reason in loaded.skipped)
        print(
            f"{label}: resuming from the checkpoint at step {loaded.checkpoint.steps}: the newer one(s) do not "
            f"load: {bad}",
            flush=True,
        )
    return loaded


def _kept_after_failure(guard: NonFiniteGuardCallback, run_dir: Path) -> str:
    """Save the last finite weights and say, with steps, what the failed run keeps."""
    finite_step = guard.save_last_finite(run_dir / LAST_FINITE_FILE)
    finite = f"{LAST_FINITE_FILE} (the last finite weights, step {finite_step})" if finite_step is not None else ""
    saved = checkpoint_steps(run_dir)
    checkpoint = f"{CHECKPOINT_DIR}/ up to step {saved}" if saved is not None else "no checkpoint (none saved yet)"
    return f"kept: {finite}; {checkpoint}" if finite else f"kept: {checkpoint}"


def train_run(
    spec: RunSpec,
    *,
    progress_bar: bool | None = None,
    progress_lines: float | None = None,
    extra_callbacks: Sequence[BaseCallback] = (),
    torch_threads: int | None = None,
) -> RunResult:
    """Train one run, resuming from its newest checkpoint that loads; skip it if it already finished.

    A run resumes (or is skipped) only with the config it ran with, except
    :data:`agents.pipeline.resume.RESUMABLE_KEYS` (e.g. a longer ``train.total_timesteps``); its
    ``config.yaml`` is rewritten only once the checkpoint has loaded, so it always describes the model.

    :param spec: the run
    :param progress_bar: override ``train.progress_bar``
    :param progress_lines: instead of a bar, print a progress line at this interval in seconds (parallel
        workers, whose bars would garble each other)
    :param extra_callbacks: more SB3 callbacks (after the built-in ones)
    :param torch_threads: ``torch.set_num_threads`` for this process (default ``train.torch_threads``; 0 leaves
        torch's default)
    :return: the outcome; ``interrupted`` when a stop was requested (:mod:`agents.pipeline.interrupt`)
    :raises ConfigError: the config differs from the run's recorded one in a key that may not change
    :raises CheckpointError: the run has checkpoints and none loads
    """
    config = spec.config
    run_dir = spec.run_dir
    total = config.train.total_timesteps
    label = f"{env_slug(spec.env_id)}/{spec.name}"
    if is_finished(run_dir, total):
        check_resumable(spec)
        final = json.loads((run_dir / FINAL_FILE).read_text())
        return RunResult(str(run_dir), "skipped", final["num_timesteps"], final.get("metrics", {}))
    resuming = checkpoint_steps(run_dir) is not None
    changes = check_resumable(spec) if resuming else {}
    if stop_requested() is not None:
        return RunResult(str(run_dir), "not started", checkpoint_steps(run_dir) or 0)
    threads = config.train.torch_threads if torch_threads is None else torch_threads
    if threads:
        torch.set_num_threads(threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()

    env = make_train_env(spec)
    try:
        network = network_for(env.observation_space, config.network)
        policy_cls, policy_kwargs = policy_for(config.algo, network, spec.norm)
        algo = algo_class(config.algo, config.env_hyperparams(spec.env_id))
        loaded = _resume(spec, algo, env, label) if resuming else None
    except BaseException:
        env.close()
        raise
    if loaded is not None:
        model, resume_from = loaded.model, loaded.checkpoint.steps
        # a killed run may have logged past its checkpoint: those steps are trained again
        truncate_events(event_dir(run_dir), resume_from)
        append_history(
            run_dir,
            "resume",
            step=resume_from,
            checkpoint=_relative(loaded.checkpoint.path, run_dir),
            changed={k: list(v) for k, v in changes.items()},
            unloadable=[_relative(c.model_file, run_dir) for c, _ in loaded.skipped],
        )
    else:
        resume_from = None
        model = algo(
            policy_cls, env, seed=spec.seed, device=config.device, verbose=0, **algo_kwargs(spec, policy_kwargs)
        )
        # a run restarting from scratch (e.g. it failed before its first checkpoint) must not mix its curves
        # or results with those of the earlier attempt
        remove_events(run_dir)
        for name in (FINAL_FILE, "final_model.zip", LAST_FINITE_FILE):
            (run_dir / name).unlink(missing_ok=True)
        append_history(run_dir, "start", total_timesteps=total)
    (run_dir / FAILED_FILE).unlink(missing_ok=True)
    # through a temp file: a run killed while writing must not leave half a config (it would refuse to resume)
    tmp_config = run_dir / f".{CONFIG_FILE}.tmp"
    save_config(
        config,
        tmp_config,
        env=spec.env_id,
        norm=spec.norm,
        arm=spec.label,
        seed=spec.seed,
        network=network,
        policy=f"{policy_cls.__module__}.{policy_cls.__qualname__}",
    )
    tmp_config.replace(run_dir / CONFIG_FILE)
    model.set_logger(configure(str(event_dir(run_dir)), ["tensorboard"]))
    if loaded is not None:
        restore_log_values(model, loaded.checkpoint.state.get("pending_log"))

    evaluator = NoiseEvalCallback(
        spec.env_id,
        make_eval_env_factory(spec),
        config.eval.noise,
        NOISE_KIND_OPTIONS,
        n_episodes=config.eval.n_episodes,
        freq=config.eval.freq,
        deterministic=config.eval.deterministic,
        bn_modes=config.eval.bn_modes,
    )
    diagnostics = NormDiagnosticsCallback(config.diagnostics.freq)
    guard = NonFiniteGuardCallback()
    hparams = {"norm": spec.norm, "algo": config.algo, "env": spec.env_id, "seed": spec.seed, "network": network}
    if spec.arm:
        hparams["arm"] = spec.arm
    callbacks: list[BaseCallback] = [
        guard,
        HParamsCallback(spec.env_id, hparams, record_hparams=resume_from is None),
        diagnostics,
        evaluator,
        CheckpointCallback(run_dir, config.train.checkpoint_freq, save_replay_buffer=config.train.save_replay_buffer),
    ]
    if config.diagnostics.freq:
        # per-action head weight norms beside the action frequencies (discrete actions; nothing otherwise)
        per_call = max(1, config.diagnostics.freq // config.env_n_envs(spec.env_id))
        callbacks.append(HeadStatsCallback(log_freq=per_call))
    if config.exploration is not None:
        from agents.exploration import PseudoCountLogger

        callbacks.append(PseudoCountLogger())
    show_bar = config.train.progress_bar if progress_bar is None else progress_bar
    if show_bar:
        callbacks.append(ProgressCallback(total, description=label, line_every=progress_lines))
    callbacks.append(RunProgressCallback(run_dir, total))  # read by the sweep's grid line
    callbacks.extend(extra_callbacks)

    # killed after its final checkpoint but before final.json: the final evaluation is logged already
    done = loaded.checkpoint.state.get(FINAL_METRICS) if loaded is not None and model.num_timesteps >= total else None
    try:
        if done is not None:
            metrics = dict(done)
        else:
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
                episodes = model.ep_info_buffer
                metrics[ROLLOUT_RETURN] = float(sum(e["r"] for e in episodes) / len(episodes))
            model.logger.dump(model.num_timesteps)
    except RunInterrupted as stop:
        append_history(run_dir, "interrupted", step=stop.steps, saved=stop.saved, reason=stop_requested())
        if stop.saved:
            message = f"checkpoint saved at step {stop.steps}"
        elif resume_from is None and not stop.steps:
            message = "stopped before its first update; starts over when re-run"
        else:
            message = f"nothing trained since the checkpoint at step {stop.steps}"
        return RunResult(str(run_dir), "interrupted", stop.steps, message=message)
    except Exception as err:
        problem = non_finite_report(model)
        if not isinstance(err, NonFiniteError) and problem is None:
            raise
        if not isinstance(err, NonFiniteError):  # torch failed on NaN before the guard could look
            err = NonFiniteError(
                f"non-finite values after {model.num_timesteps} steps: {problem} ({type(err).__name__} during "
                "the update)"
            )
        steps = int(model.num_timesteps)
        message = f"{err}; stopped, {_kept_after_failure(guard, run_dir)}"
        write_json_atomic(run_dir / FAILED_FILE, {"message": message, "num_timesteps": steps})
        append_history(run_dir, "failed", step=steps, message=message)
        return RunResult(str(run_dir), "failed", steps, message=message)
    finally:
        evaluator.close()
        env.close()
        model.logger.close()

    save_checkpoint(model, run_dir, save_replay_buffer=config.train.save_replay_buffer, extra={FINAL_METRICS: metrics})
    tmp = run_dir / ".final_model.tmp.zip"
    model.save(tmp)
    tmp.replace(run_dir / "final_model.zip")
    final = {
        "num_timesteps": int(model.num_timesteps),
        "metrics": metrics,
        "wall_time_s": time.time() - started,
        "resumed_from": resume_from,
        "executed_on": executor_info(),
    }
    write_json_atomic(run_dir / FINAL_FILE, final)
    append_history(run_dir, "finished", step=int(model.num_timesteps))
    return RunResult(str(run_dir), "finished", int(model.num_timesteps), metrics)
