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
from agents.pipeline.progress import GridProgress
from agents.pipeline.runs import RunResult, RunSpec
from agents.pipeline.tb_layout import env_slug
from envs.cores import run_owning_cores

#: times Ray runs a task again after its worker process or node died (not after an exception in the run)
MAX_RETRIES = 3
#: Ray CPUs (and cores claimed on its node) per run
CPUS_PER_RUN = 1
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
    from ray.exceptions import RayError

    specs = [with_absolute_runs_dir(spec) for spec in specs]
    owned = connect(num_cpus)
    try:
        # SPREAD: runs are CPU-bound, so one per node before two on any node
        task = ray.remote(
            num_cpus=CPUS_PER_RUN, max_retries=MAX_RETRIES, retry_exceptions=False, scheduling_strategy="SPREAD"
        )(run_owning_cores)
        # each task owns the cores it asked Ray for, so its env may pin threads there (envs.cores)
        refs = [
            task.options(name=f"{env_slug(s.env_id)}/{s.name}").remote(CPUS_PER_RUN, worker, s, True) for s in specs
        ]
        index = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, RunResult] = {}
        progress = GridProgress(specs, started=started)
        pending = list(refs)
        while pending:
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
        progress.close()
        return [results[i] for i in range(len(refs))]
    finally:
        if owned:
            ray.shutdown()
