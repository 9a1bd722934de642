"""Which CPU cores this process owns, so that an env's worker threads can be pinned without colliding.

ale-py's vector env runs its games on C++ threads. Left to the OS scheduler, those threads are fast in most
processes and about half as fast in some (two of them end up sharing a core); pinning each thread to its own
core makes every process fast. Pinning is only safe on cores nobody else pins to: if every run of a sweep
pinned to cores 0..n, they would all pile up there. So a process first *claims* cores:

- :func:`claim_cores` takes ``n`` consecutive cores among those the process may use, with one lock file per
  core (``fcntl.flock``, so a killed process releases its cores) shared by every process of this user on this
  machine, and restricts the process to them (``sched_setaffinity``);
- :func:`owned_cores` tells an env which cores it may pin to (``None``: it owns none, so it does not pin).

The sweep claims cores for each run (:func:`run_owning_cores`): a local pool of ``w`` workers on ``c`` cores
gives each run ``c // w`` cores, a Ray task the CPUs it asked for. Linux only; elsewhere nothing is claimed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: one lock file per core, shared by this user's processes on this machine
LOCK_DIR = Path(tempfile.gettempdir()) / f"rlnorm-cores-{os.getuid()}"

_owned: list[int] | None = None
_lock_fds: list[int] = []
_mask_before: set[int] | None = None


def allowed_cores() -> list[int]:
    """The cores this process may run on (its affinity mask, e.g. a cgroup cpuset), sorted."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def owned_cores() -> list[int] | None:
    """The consecutive cores this process claimed, or ``None`` if it claimed none."""
    return list(_owned) if _owned is not None else None


def _try_lock(core: int) -> int | None:
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / f"core-{core}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def claim_cores(n: int) -> list[int] | None:
    """Claim ``n`` consecutive free cores and restrict this process to them (all or nothing).

    :param n: cores wanted (at least 1)
    :return: the cores, or ``None`` if no ``n`` consecutive allowed cores are free (or not on Linux, or this
        process already owns cores)
    """
    global _owned, _mask_before
    if _owned is not None or n < 1 or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = allowed_cores()
    for start in range(len(allowed) - n + 1):
        window = allowed[start : start + n]
        if window[-1] - window[0] != n - 1:  # ale-py pins thread i to core offset + i: no gaps
            continue
        fds = []
        for core in window:
            fd = _try_lock(core)
            if fd is None:
                break
            fds.append(fd)
        if len(fds) == n:
            _lock_fds[:] = fds
            _mask_before = set(os.sched_getaffinity(0))
            os.sched_setaffinity(0, window)
            _owned = window
            return list(window)
        for fd in fds:
            os.close(fd)  # closing the file releases its lock
    return None


def release_cores() -> None:
    """Give the claimed cores back and restore the affinity the process had before."""
    global _owned, _mask_before
    if _mask_before is not None:
        os.sched_setaffinity(0, _mask_before)
    for fd in _lock_fds:
        os.close(fd)
    _lock_fds.clear()
    _owned = _mask_before = None


@contextmanager
def owning_cores(n: int) -> Iterator[list[int] | None]:
    """Own ``n`` cores for the duration of the block if they are free (see :func:`claim_cores`).

    :param n: cores wanted
    :return: the cores, or ``None`` (the block runs unpinned)
    """
    cores = claim_cores(n)
    try:
        yield cores
    finally:
        if cores is not None:
            release_cores()


def run_owning_cores(n: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` while owning ``n`` cores if they are free; picklable, for process pools and Ray tasks.

    :param n: cores wanted (0: do not claim)
    :param fn: what to run
    :param args: its arguments
    """
    if n < 1:
        return fn(*args)
    with owning_cores(n):
        return fn(*args)


def cores_per_worker(n_workers: int) -> int:
    """Cores each of ``n_workers`` parallel workers of this machine may claim: an equal share, 0 if less than one.

    :param n_workers: parallel workers
    """
    return len(allowed_cores()) // max(n_workers, 1)
