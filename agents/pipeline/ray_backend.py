"""The ``ray`` backend of the sweep: every run of the grid is one Ray task.

Without ``RAY_ADDRESS`` the sweep starts a private Ray instance on this machine (as many CPUs as ``--workers``),
listening on the loopback interface only, and stops it at the end. With ``RAY_ADDRESS=<head>:<port>`` it
submits the runs to that cluster, as any Ray driver does (see ``docs/cluster.md``).

A run is the unit of retry: if the node (or the worker process) running it dies, Ray runs the task again
elsewhere, up to :data:`MAX_RETRIES` times, and :func:`agents.pipeline.train.train_run` resumes it from its last
checkpoint in the shared runs folder. A run that raises is not retried: it comes back ``failed`` with its
message (the sweep's worker catches it), and the other runs go on.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from agents.config import ConfigError
from agents.pipeline.interrupt import handling_signals, stop_requested, watch_stop_file
from agents.pipeline.progress import GridProgress
from agents.pipeline.runs import RunResult, RunSpec, experiment_dir
from agents.pipeline.tb_layout import env_slug
from envs.cores import run_owning_cores

#: times Ray runs a task again after its worker process or node died (not after an exception in the run)
MAX_RETRIES = 3
#: Ray CPUs (and cores claimed on its node) per run
CPUS_PER_RUN = 1
#: the file in the experiment folder through which the driver asks its tasks to stop
STOP_FILE = ".stop-request"
#: seconds between two looks at the runs in flight (progress line)
POLL_SECONDS = 0.5

Worker = Callable[[RunSpec, bool], RunResult]
Announce = Callable[[RunResult, int, int, float], None]


@contextmanager
def loopback_only() -> Iterator[None]:
    """While starting a private single-machine Ray instance, have it listen on 127.0.0.1 only.

    Ray binds its servers (GCS, raylet, workers) to the node's network address unless that address is the
    loopback one, and it turns ``127.0.0.1`` into the network address whenever multi-node clusters are
    enabled (Linux); a private instance has no reason to be reachable from the network. This flips the switch
    Ray itself uses on macOS and Windows, for the duration of ``ray.init``.
    """
    from ray._private import ray_constants

    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if saved is None:  # another Ray version: keep its default rather than guess
        yield
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail at once, naming the address, if nothing listens at a ``host:port`` cluster address (Ray itself
    retries for minutes). Other forms (``auto``, ``ray://...``) are left to Ray.

    :param address: ``RAY_ADDRESS``
    :param timeout: seconds to wait for the TCP connection
    :raises ConfigError: the head's port cannot be reached
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        problem = f"{address}: cannot reach the Ray cluster's head ({err}); is `ray start --head` running there?"
        raise ConfigError("<environment>", "RAY_ADDRESS", problem) from None


def connect(num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``RAY_ADDRESS``, or start a private local instance.

    :param num_cpus: CPUs of a private instance (``None``: all cores); ignored for a cluster
    :return: whether this call started Ray (and so should shut it down)
    """
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        check_reachable(address)
        ray.init(address=address)
    else:
        # "local": a new instance even if `ray start` left one on this machine (another user's, maybe)
        with loopback_only():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    return True


def with_absolute_runs_dir(spec: RunSpec) -> RunSpec:
    """The same run with ``runs_dir`` made absolute: a Ray worker's working directory is not the driver's.

    :param spec: the run
    """
    runs_dir = str(Path(spec.config.runs_dir).resolve())
    if runs_dir == spec.config.runs_dir:
        return spec
    return dataclasses.replace(spec, config=dataclasses.replace(spec.config, runs_dir=runs_dir))


def run_task(stop_file: Path, worker: Worker, spec: RunSpec) -> RunResult:
    """One Ray task: the run on the cores Ray gave it, stopping cleanly when the driver writes ``stop_file``.

    :param stop_file: the grid's stop request (see :func:`run_ray`)
    :param worker: ``worker(spec, parallel) -> RunResult``
    :param spec: the run
    """
    watch_stop_file(stop_file)
    return run_owning_cores(CPUS_PER_RUN, worker, spec, True)


def run_ray(
    specs: Sequence[RunSpec], worker: Worker, announce: Announce, started: float, num_cpus: int | None = None
) -> list[RunResult]:
    """Run the grid as Ray tasks and return the outcomes in grid order, announcing each as it ends.

    :param specs: the runs
    :param worker: ``worker(spec, parallel) -> RunResult``, run inside each task (must not raise)
    :param announce: ``announce(result, n_done, n_total, started)``, called in the driver as each run ends
    :param started: ``time.time()`` at the start of the grid
    :param num_cpus: CPUs of a private local instance (``--workers``)
    """
    import ray

    specs = [with_absolute_runs_dir(spec) for spec in specs]
    # Ctrl-C/SIGTERM reach the driver only: it writes this file in the shared runs folder and every task stops
    # at its next update with a checkpoint, as a local run does
    stop_file = experiment_dir(specs[0].config) / STOP_FILE if specs else Path(STOP_FILE)
    stop_file.unlink(missing_ok=True)
    owned = connect(num_cpus)
    try:
        # SPREAD: runs are CPU-bound, so one per node before two on any node
        task = ray.remote(
            num_cpus=CPUS_PER_RUN, max_retries=MAX_RETRIES, retry_exceptions=False, scheduling_strategy="SPREAD"
        )(run_task)
        # each task owns the cores it asked Ray for, so its env may pin threads there (envs.cores)
        refs = [task.options(name=f"{env_slug(s.env_id)}/{s.name}").remote(stop_file, worker, s) for s in specs]
        progress = GridProgress(specs, started=started)
        # a second signal stops at once: the tasks are killed and resume from their last checkpoint next time
        with handling_signals(on_force=lambda: [ray.cancel(ref, force=True) for ref in refs]):
            results = wait_for_runs(refs, specs, stop_file, progress, announce, started)
        progress.close()
        return [results[i] for i in range(len(refs))]
    finally:
        stop_file.unlink(missing_ok=True)
        if owned:
            ray.shutdown()


def wait_for_runs(
    refs: list, specs: Sequence[RunSpec], stop_file: Path, progress: GridProgress, announce: Announce, started: float
) -> dict[int, RunResult]:
    """Collect the tasks' results as they end, announcing each; pass a stop request on to the tasks.

    :param refs: the tasks, in grid order
    :param specs: their runs
    :param stop_file: written once when this process is asked to stop
    :param progress: the grid's progress line
    :param announce: ``announce(result, n_done, n_total, started)``
    :param started: ``time.time()`` at the start of the grid
    :return: grid index -> result
    """
    import ray
    from ray.exceptions import RayError

    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, RunResult] = {}
    pending = list(refs)
    while pending:
        reason = stop_requested()
        if reason is not None and not stop_file.exists():
            temporary = stop_file.with_name(stop_file.name + ".tmp")
            temporary.write_text(reason)
            temporary.replace(stop_file)  # the tasks never read half a reason
        done, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
        for ref in done:
            i = index[ref]
            try:
                results[i] = ray.get(ref)
            except RayError as err:  # lost more often than MAX_RETRIES (node deaths, OOM kills)
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                message = f"{type(err).__name__} after {MAX_RETRIES} retries: {first}"
                results[i] = RunResult(str(specs[i].run_dir), "failed", message=message)
            progress.record(i, results[i])
            with progress.above():
                announce(results[i], len(results), len(refs), started)
        progress.refresh()
    return results
