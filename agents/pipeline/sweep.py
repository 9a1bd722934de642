"""Run the grid of a config (envs x norms x seeds) on a backend: ``python -m agents sweep CONFIG [key=value ...]``.

Backends:

* ``local`` (default) - a process pool with ``workers`` processes (0 = one per core), each run in its own
  process with one torch thread; ``workers=1`` runs in this process with a progress bar.
* ``ray`` - the same runs as Ray tasks (``pip install -e .[ray]``), on a local Ray instance, or on the
  cluster named by ``RAY_ADDRESS``. On a cluster, ``runs_dir`` must be on a filesystem shared by all nodes.

Finished runs are skipped and interrupted ones resume, whatever the backend.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from agents.config import ConfigError, ExperimentConfig
from agents.pipeline.checkpoints import write_json_atomic
from agents.pipeline.runs import FAILED_FILE, RunResult, RunSpec, experiment_dir, grid
from agents.pipeline.tb_layout import RETURN_CLEAN, write_layout
from agents.pipeline.train import train_run


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


#: seconds between two progress lines of a run in a parallel worker
PROGRESS_LINE_EVERY = 60.0


def _worker(spec: RunSpec, parallel: bool) -> RunResult:
    try:
        return train_run(spec, progress_lines=PROGRESS_LINE_EVERY if parallel else None)
    except Exception as err:  # one broken run must not take the grid down; its message is reported
        detail = traceback.format_exc(limit=-3).strip().replace("\n", " | ")
        message = f"{type(err).__name__}: {err} ({detail})"
        if spec.run_dir.is_dir():
            write_json_atomic(spec.run_dir / FAILED_FILE, {"message": message})
        return RunResult(str(spec.run_dir), "failed", message=message)


def _announce(result: RunResult, done: int, total: int, started: float) -> None:
    clean = result.metrics.get(RETURN_CLEAN)
    score = f" return_clean={clean:.2f}" if clean is not None else ""
    extra = f" {result.message}" if result.status == "failed" else ""
    print(
        f"[{done}/{total}] {result.status} {result.run_dir} steps={result.num_timesteps}{score}"
        f" ({time.time() - started:.0f}s){extra}",
        flush=True,
    )


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

    :param config: the experiment
    :param backend: ``local`` or ``ray``; ``None`` takes ``sweep.backend``
    :param workers: parallel runs; ``None`` takes ``sweep.workers``
    """
    specs = grid(config)
    backend = backend or config.sweep.backend
    n_workers = resolve_workers(config, workers, len(specs))
    write_layout(experiment_dir(config), config.envs, config.eval.noise)
    started = time.time()
    print(f"{config.experiment}: {len(specs)} runs, backend={backend}, workers={n_workers}", flush=True)
    if backend == "ray":
        return _run_ray(specs, started)
    if backend != "local":
        raise ConfigError("<command line>", "--backend", f"must be local or ray; got {backend!r}")
    if n_workers == 1:
        results = []
        for i, spec in enumerate(specs):
            results.append(_worker(spec, parallel=False))
            _announce(results[-1], i + 1, len(specs), started)
        return results
    by_spec: dict[int, RunResult] = {}
    # spawn: a fresh interpreter per worker, not a fork of a process that already holds torch threads
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_worker, spec, True): i for i, spec in enumerate(specs)}
        for future in as_completed(futures):
            by_spec[futures[future]] = future.result()
            _announce(by_spec[futures[future]], len(by_spec), len(specs), started)
    return [by_spec[i] for i in range(len(specs))]


def _run_ray(specs: Sequence[RunSpec], started: float) -> list[RunResult]:
    try:
        import ray
    except ImportError:
        raise ConfigError("<command line>", "--backend", "ray is not installed; pip install -e '.[ray]'") from None
    # RAY_ADDRESS (if set) connects to an existing cluster; otherwise a local instance is started
    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, include_dashboard=False)
    remote = ray.remote(num_cpus=1)(_worker)
    refs = [remote.remote(spec, True) for spec in specs]
    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, RunResult] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        results[index[done[0]]] = ray.get(done[0])
        _announce(results[index[done[0]]], len(results), len(refs), started)
    return [results[i] for i in range(len(refs))]
