"""Stopping runs cleanly on Ctrl-C (SIGINT) or SIGTERM.

A signal only sets a flag; :class:`agents.pipeline.checkpoints.CheckpointCallback` looks at it at the next update
boundary (rollout start), saves a checkpoint there and raises :class:`RunInterrupted`, which
:func:`agents.pipeline.train.train_run` turns into an ``interrupted`` result. Saving at an update boundary is what
lets the resumed run continue with exactly its configured steps and TensorBoard curves without gaps or repeats.

The sweep's parent process owns the request (:func:`handling_signals`); workers of a process pool get a shared
event (:func:`init_worker`) and also set their own flag when a signal reaches them directly (the terminal sends
Ctrl-C to the whole process group; a cluster may send SIGTERM to every process). A second signal to the parent
stops at once, without saving.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: the signals that stop runs cleanly
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: a second signal within this many seconds of the first is the same request, not "stop now"
SAME_REQUEST_SECONDS = 1.0
#: how often a pool worker checks that the sweep process is still there
PARENT_POLL_SECONDS = 1.0

_requested: str | None = None
_requested_at = 0.0
_shared: Any = None  # a multiprocessing Event in pool workers


class RunInterrupted(Exception):
    """A stop was requested; the run saved a checkpoint (if it had trained since its last one) and stopped.

    :param steps: the step count of the checkpoint the run resumes from
    :param saved: whether a checkpoint was written at this stop
    """

    def __init__(self, steps: int, saved: bool) -> None:
        super().__init__(f"interrupted at step {steps}")
        self.steps = steps
        self.saved = saved


def request_stop(reason: str = "stop") -> None:
    """Ask every run of this process (and the pool workers sharing its event) to stop at the next update.

    :param reason: what asked, e.g. ``SIGINT``
    """
    global _requested, _requested_at
    if _requested is None:
        _requested, _requested_at = reason, time.monotonic()
    if _shared is not None:
        _shared.set()


def stop_requested() -> str | None:
    """What asked this process's runs to stop (e.g. ``SIGTERM``), or ``None``."""
    if _requested is None and _shared is not None and _shared.is_set():
        return "stop requested by the sweep"
    return _requested


def stop_exit_status() -> int:
    """The exit status of a command its runs were stopped in: 143 after SIGTERM, 130 otherwise (as shells do)."""
    return 143 if stop_requested() == "SIGTERM" else 130


def reset() -> None:
    """Forget an earlier request. A request holds for the rest of the process otherwise, so a command that runs
    several grids (a study's arms) starts none after Ctrl-C."""
    global _requested
    _requested = None
    if _shared is not None:
        _shared.clear()


def _worker_handler(signum: int, frame: Any) -> None:
    # every signal means the same request; the parent decides about stopping hard
    request_stop(signal.Signals(signum).name)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            request_stop("the sweep process exited")
            return


def init_worker(event: Any) -> None:
    """Initializer of a pool worker process: share the parent's stop event, turn signals into a request, and
    request a stop if the parent dies (killed with SIGKILL, it cannot tell the workers; orphans would train on).

    :param event: a ``multiprocessing`` Event set by the parent on the first signal
    """
    global _shared
    _shared = event
    for sig in STOP_SIGNALS:
        signal.signal(sig, _worker_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # spawned under blocking_signals
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="watch-parent").start()


def watch_stop_file(path: Path, poll: float = PARENT_POLL_SECONDS) -> None:
    """Request a stop in this process when ``path`` appears (how a Ray driver reaches its tasks on other nodes:
    the runs folder is shared, signals are not). A daemon thread polls it; a stale request is forgotten first.

    :param path: the stop file the driver writes on Ctrl-C/SIGTERM (its text is the reason)
    :param poll: seconds between two looks
    """
    if not path.exists():
        reset()  # a Ray worker process is reused by the next task of the same job

    def watch() -> None:
        while stop_requested() is None:
            if path.exists():
                request_stop(path.read_text().strip() or "stop requested by the sweep")
                return
            time.sleep(poll)

    threading.Thread(target=watch, daemon=True, name="watch-stop-file").start()


@contextmanager
def blocking_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while worker processes are spawned. The workers inherit the blocked mask, so a
    signal during their start-up (importing torch takes seconds) waits until :func:`init_worker` has installed
    their handlers instead of killing them with a traceback; the parent gets its own held signal on leaving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextmanager
def handling_signals(on_force: Any = None, shared: Any = None) -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM requests a clean stop (one line on stderr), the second stops now.

    :param on_force: called before exiting on the second signal (e.g. to kill worker processes)
    :param shared: the Event given to pool workers (set on the first signal)
    """
    global _shared
    if threading.current_thread() is not threading.main_thread():  # signal handlers need the main thread
        yield
        return
    _shared = shared
    if _requested is not None and shared is not None:  # stopped during an earlier grid of this command
        shared.set()

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        # `timeout` and terminals may deliver one request twice (to the process, then to its group)
        if _requested is not None and time.monotonic() - _requested_at >= SAME_REQUEST_SECONDS:
            print(f"{name} again: stopping now without saving; runs resume from their last checkpoint", file=sys.stderr)
            if on_force is not None:
                on_force()
            raise SystemExit(128 + signum)
        if _requested is not None:
            return
        request_stop(name)
        print(
            f"{name}: saving a checkpoint of every running run at its next update, then stopping "
            "(send it again to stop now without saving)",
            file=sys.stderr,
            flush=True,
        )

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _shared = None
