"""Run the grid of a config (envs x norms x seeds) on a backend: ``python -m agents sweep CONFIG [key=value ...]``.

Backends:

* ``local`` (default) - a process pool with ``workers`` processes (0 = one per core), each run in its own
  process with one torch thread; ``workers=1`` runs in this process with a progress bar.
* ``ray`` - the same runs as Ray tasks (``pip install -e .[ray]``), on a local Ray instance, or on the
  cluster named by ``RAY_ADDRESS``. On a cluster, ``runs_dir`` must be on a filesystem shared by all nodes.

Finished runs are skipped and interrupted ones resume, whatever the backend; the first lines say which. Ctrl-C
(SIGINT) or SIGTERM makes every running run save a checkpoint at its next update and stop
(:mod:`agents.pipeline.interrupt`); then every run of the grid gets one line saying where it stands.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context

from stable_baselines3.common.callbacks import BaseCallback

from agents.config import SWEEP_BACKENDS, ConfigError, ExperimentConfig
from agents.pipeline.checkpoints import CheckpointError, write_json_atomic
from agents.pipeline.interrupt import blocking_signals, handling_signals, init_worker, stop_requested
from agents.pipeline.progress import GridProgress
from agents.pipeline.ray_backend import run_ray
from agents.pipeline.resume import append_history, check_resumable
from agents.pipeline.runs import FAILED_FILE, RunResult, RunSpec, experiment_dir, grid, run_plan
from agents.pipeline.tb_layout import RETURN_CLEAN, write_layout
from agents.pipeline.train import train_run
from envs.cores import cores_per_worker, run_owning_cores
from rlnorm.validation import check_choice


def preflight(config: ExperimentConfig, source: str = "<config>") -> None:
    """Check what the schema alone cannot, before any run starts: every env id and env option builds.

    :param config: the validated config
    :param source: file name for error messages
    :raises ConfigError: naming ``envs[i]`` and the env factory's reason
    """
    from envs import make_env

    for i, env_id in enumerate(config.envs):
        try:
            env = make_env(env_id, 1, 0, **dict(config.env_options))
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(source, f"envs[{i}]", str(err).strip().splitlines()[0]) from None
        env.close()


#: how often the parent of a process pool looks for a stop request while runs are going
POLL_SECONDS = 0.5


def check_grid_resumable(config: ExperimentConfig) -> None:
    """Refuse, before anything runs, a grid in which a run would resume (or be skipped) with a config that
    differs from the one it ran with (:func:`agents.pipeline.resume.check_resumable`).

    :param config: the experiment
    :raises ConfigError: one line for the first such run (and how many more there are)
    """
    problems = []
    for spec in grid(config):
        try:
            check_resumable(spec)
        except ConfigError as err:
            problems.append(err)
    if problems:
        first = problems[0]
        more = f" ({len(problems) - 1} more run(s) of this grid likewise)" if len(problems) > 1 else ""
        raise ConfigError(first.source, first.field, first.problem + more)


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


#: extra SB3 callbacks of a run, made in its worker (a module-level function, so that it pickles)
CallbackFactory = Callable[[RunSpec], Sequence[BaseCallback]]


def _worker(spec: RunSpec, parallel: bool, callbacks: CallbackFactory | None = None) -> RunResult:
    try:
        # runs in parallel draw no bar or lines of their own: the grid's line (agents.pipeline.progress) shows them
        extra = callbacks(spec) if callbacks is not None else ()
        return train_run(spec, progress_bar=False if parallel else None, extra_callbacks=extra)
    except (CheckpointError, ConfigError) as err:  # expected problems: their one line says it all
        message, record = str(err), {"message": str(err)}
    except Exception as err:  # one broken run must not take the grid down; the traceback goes to failed.json
        where = spec.run_dir / FAILED_FILE
        message = f"{_one_line(err)} (traceback in {where})"
        record = {"message": message, "traceback": traceback.format_exc()}
    if spec.run_dir.is_dir():
        write_json_atomic(spec.run_dir / FAILED_FILE, record)
        append_history(spec.run_dir, "failed", message=message)
    return RunResult(str(spec.run_dir), "failed", message=message)


def _announce(result: RunResult, done: int, total: int, started: float) -> None:
    clean = result.metrics.get(RETURN_CLEAN)
    score = f" return_clean={clean:.2f}" if clean is not None else ""
    extra = f": {result.message}" if result.message else ""
    print(
        f"[{done}/{total}] {result.status} {result.run_dir} steps={result.num_timesteps}{score}"
        f" ({time.time() - started:.0f}s){extra}",
        flush=True,
    )


def announce_plan(specs: Sequence[RunSpec]) -> None:
    """Print which runs will be skipped as finished and which resume from which step (one line each).

    :param specs: the runs of a grid
    """
    for spec in specs:
        action, steps = run_plan(spec)
        total = spec.config.train.total_timesteps
        if action == "skip":
            print(f"skip {spec.run_dir}: finished ({steps} steps)", flush=True)
        elif action == "resume":
            print(f"resume {spec.run_dir} from step {steps} (of {total})", flush=True)


def resolve_workers(config: ExperimentConfig, workers: int | None, n_runs: int) -> int:
    """Number of parallel runs: the argument, else ``sweep.workers``; 0 means one per core.

    :param config: the experiment
    :param workers: command-line value or ``None``
    :param n_runs: size of the grid (never more workers than runs)
    """
    chosen = config.sweep.workers if workers is None else workers
    if chosen < 0:
        raise ConfigError("<command line>", "--workers", f"must be >= 0, got {chosen}")
    if chosen == 0:
        chosen = os.cpu_count() or 1
    return max(1, min(chosen, n_runs))


def run_grid(config: ExperimentConfig, backend: str | None = None, workers: int | None = None) -> list[RunResult]:
    """Run (or resume, or skip) every run of the grid and return their outcomes in grid order.

    On SIGINT/SIGTERM the running runs save a checkpoint and return ``interrupted``, the others ``not started``.

    :param config: the experiment
    :param backend: ``local`` or ``ray``; ``None`` takes ``sweep.backend``
    :param workers: parallel runs; ``None`` takes ``sweep.workers``
    :raises ConfigError: bad backend or workers, Ray missing, or a run that would resume with another config
    """
    specs = grid(config)
    backend = backend or config.sweep.backend
    check_choice(backend, "--backend", SWEEP_BACKENDS, source="<command line>")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("<command line>", "--backend", "ray is not installed; pip install -e '.[ray]'") from None
    n_workers = resolve_workers(config, workers, len(specs))
    check_grid_resumable(config)
    if backend == "ray":
        write_layout(experiment_dir(config), config.envs, config.eval.noise)
        print(f"{config.experiment}: {len(specs)} runs, backend={backend}, workers={n_workers}", flush=True)
        announce_plan(specs)
        return _run_ray(specs, time.time(), n_workers)
    write_layout(experiment_dir(config), config.envs, config.eval.noise)
    return run_specs(specs, n_workers, title=config.experiment)


def run_specs(
    specs: Sequence[RunSpec], n_workers: int, *, title: str, callbacks: CallbackFactory | None = None
) -> list[RunResult]:
    """Run (or resume, or skip) ``specs`` in local processes, ``n_workers`` at a time, in this order; return their
    outcomes in the same order. What :func:`run_grid` does for one config's grid, for any list of runs (a study
    made of several configs): one line per run, the grid's progress line, a failed run recorded and the others
    going on, SIGINT/SIGTERM saving a checkpoint of every running run.

    :param specs: the runs
    :param n_workers: parallel runs (1: in this process)
    :param title: what the first line calls the runs
    :param callbacks: makes each run's extra SB3 callbacks (module-level, so that it pickles)
    """
    # spawn: a fresh interpreter per worker, not a fork of a process that already holds torch threads
    context = get_context("spawn")
    event = context.Event() if n_workers > 1 else None
    pools: list[ProcessPoolExecutor] = []
    # from here on a signal is a stop request, also while the workers start
    with handling_signals(on_force=lambda: _kill_workers(pools), shared=event):
        started = time.time()
        print(f"{title}: {len(specs)} runs, backend=local, workers={n_workers}", flush=True)
        announce_plan(specs)
        if n_workers == 1:
            results = []
            for i, spec in enumerate(specs):
                # the one run at a time owns every core while it runs (if no other process claimed one)
                results.append(run_owning_cores(cores_per_worker(1), _worker, spec, False, callbacks))
                _announce(results[-1], i + 1, len(specs), started)
            return results
        pool = ProcessPoolExecutor(
            max_workers=n_workers, mp_context=context, initializer=init_worker, initargs=(event,)
        )
        pools.append(pool)
        try:
            # each run owns an equal share of the cores, so its env may pin threads there (envs.cores)
            return _run_pool(pool, specs, started, cores_per_worker(n_workers), callbacks)
        finally:
            event.set()  # if the parent failed: running runs save a checkpoint at their next update and stop
            pool.shutdown(wait=True, cancel_futures=True)


def _kill_workers(pools: Sequence[ProcessPoolExecutor]) -> None:
    """Second signal: kill the pool's workers at once (no checkpoint; they resume from their last one)."""
    for pool in pools:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.pid is not None:
                os.kill(process.pid, signal.SIGKILL)


def _run_pool(
    pool: ProcessPoolExecutor,
    specs: Sequence[RunSpec],
    started: float,
    cores: int,
    callbacks: CallbackFactory | None = None,
) -> list[RunResult]:
    by_spec: dict[int, RunResult] = {}
    with blocking_signals():  # workers start with the signals held back, until init_worker
        futures: dict[Future, int] = {
            pool.submit(run_owning_cores, cores, _worker, spec, True, callbacks): i for i, spec in enumerate(specs)
        }
    pending = set(futures)
    stopping = False
    progress = GridProgress(specs, started=started)
    while pending:
        done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        for future in done:
            i = futures[future]
            if future.cancelled():
                by_spec[i] = RunResult(str(specs[i].run_dir), "not started")
            else:
                by_spec[i] = future.result()
            progress.record(i, by_spec[i])
            with progress.above():
                _announce(by_spec[i], len(by_spec), len(specs), started)
        progress.refresh()
        if stop_requested() is not None and not stopping:
            stopping = True
            for future in pending:
                future.cancel()  # queued runs: not started (running ones save and stop)
    progress.close()
    return [by_spec[i] for i in range(len(specs))]


def _run_ray(specs: Sequence[RunSpec], started: float, n_workers: int) -> list[RunResult]:
    # RAY_ADDRESS (if set) names a cluster; otherwise a private local instance with n_workers CPUs
    return run_ray(specs, _worker, _announce, started, num_cpus=n_workers)
