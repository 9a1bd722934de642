"""Progress of a grid while its runs are in flight, the same way for every sweep backend.

Each run writes ``progress.json`` in its folder (:class:`RunProgressCallback`: steps, fps, where it runs), a
few times a minute and atomically. The sweep's driver reads those files and shows one line for the whole grid
(:class:`GridProgress`): runs done / running / failed, steps, fps, ETA. A file in the run folder is what works
for a local process pool and for Ray tasks on other machines alike (the runs folder is shared, see
``docs/cluster.md``), with nothing to keep open between driver and workers.

On a terminal the line is redrawn in place about once a second; otherwise (CI, a log file) it is printed as a
plain line only every :data:`LINE_EVERY_NON_TTY` seconds, so short grids add nothing to the log.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from stable_baselines3.common.callbacks import BaseCallback

from agents.pipeline.checkpoints import checkpoint_steps, write_json_atomic
from agents.pipeline.runs import RunResult, RunSpec

PROGRESS_FILE = "progress.json"
#: seconds between two writes of a run's ``progress.json``
WRITE_EVERY = 2.0
#: seconds between two redraws of the grid line on a terminal
REDRAW_EVERY = 1.0
#: seconds between two plain grid lines when the output is not a terminal (0: never)
LINE_EVERY_NON_TTY = 300.0
_DONE = ("finished", "skipped")


def executor_info() -> dict[str, Any]:
    """Where this process runs: host name, pid and, inside a Ray task, the Ray node id.

    Recorded in a run's ``progress.json`` and ``final.json``, so one can tell which node trained a run (two Ray
    nodes on one machine share the host name; their node ids differ).
    """
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    ray = sys.modules.get("ray")  # never import Ray here: local runs do not need it
    if ray is not None and ray.is_initialized():
        context = ray.get_runtime_context()
        if context.get_task_id() is not None:  # a task, not a driver that happens to hold a connection
            info["ray_node_id"] = context.get_node_id()
    return info


def read_progress(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's ``progress.json``, or ``None`` if it has none (or it cannot be read right now).

    :param run_dir: the run directory
    """
    try:
        return json.loads((Path(run_dir) / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None


class RunProgressCallback(BaseCallback):
    """Write the run's ``progress.json`` at the start, every ``every`` seconds and at the end of training.

    :param run_dir: the run directory
    :param total_timesteps: the run's target step count
    :param every: seconds between two writes
    """

    def __init__(self, run_dir: str | Path, total_timesteps: int, every: float = WRITE_EVERY) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.total_timesteps = total_timesteps
        self.every = every
        self._where: dict[str, Any] = {}
        self._t0 = self._last = self._started = 0.0
        self._steps0 = 0

    def _write(self, now: float) -> None:
        self._last = now
        fps = (self.num_timesteps - self._steps0) / max(now - self._t0, 1e-9)
        state = {
            "num_timesteps": int(self.num_timesteps),
            "total_timesteps": self.total_timesteps,
            "start_timesteps": self._steps0,
            "fps": round(fps, 1),
            "started": self._started,
            "time": time.time(),
            **self._where,
        }
        write_json_atomic(self.run_dir / PROGRESS_FILE, state)

    def _on_training_start(self) -> None:
        self._where = executor_info()
        self._t0, self._steps0, self._started = time.perf_counter(), int(self.num_timesteps), time.time()
        self._write(self._t0)

    def _on_step(self) -> bool:
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._write(now)
        return True

    def _on_training_end(self) -> None:
        self._write(time.perf_counter())


def _steps(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class GridProgress:
    """One status line for a grid: runs done / running / failed, steps, fps and ETA, from the runs' files.

    A run counts as running once it has written a ``progress.json`` during this grid (a file left by an
    earlier invocation is told apart by its content, not by clocks, which may differ between nodes).

    :param specs: the runs of the grid
    :param stream: where to draw (default ``sys.stdout``); redrawn in place only on a terminal
    :param line_every: seconds between plain lines when ``stream`` is not a terminal (0: never)
    :param started: ``time.time()`` when the grid started (default: now), so the elapsed time matches the
        sweep's other lines
    """

    def __init__(
        self,
        specs: Sequence[RunSpec],
        stream: TextIO | None = None,
        line_every: float = LINE_EVERY_NON_TTY,
        started: float | None = None,
    ) -> None:
        self.run_dirs = [spec.run_dir for spec in specs]
        self.totals = [spec.config.train.total_timesteps for spec in specs]
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.line_every = line_every
        self.results: dict[int, RunResult] = {}
        self._t0 = time.monotonic() - (0.0 if started is None else max(time.time() - started, 0.0))
        self._last = time.monotonic()
        self._drawn = False
        self._earlier = [read_progress(d) for d in self.run_dirs]
        # steps each run already had before this grid (resumed runs), so fps and ETA count new work only
        self._baseline = [min(checkpoint_steps(d) or 0, total) for d, total in zip(self.run_dirs, self.totals)]

    def record(self, index: int, result: RunResult) -> None:
        """A run of the grid ended (or was skipped).

        :param index: its position in the grid
        :param result: its outcome
        """
        self.results[index] = result

    def _current(self, index: int) -> dict[str, Any] | None:
        progress = read_progress(self.run_dirs[index])
        return progress if progress is not None and progress != self._earlier[index] else None

    def status(self) -> str:
        """The status line (without drawing it)."""
        done = sum(r.status in _DONE for r in self.results.values())
        failed = sum(r.status == "failed" for r in self.results.values())
        stopped = len(self.results) - done - failed
        running, steps, fps = 0, 0, 0.0
        for i, total in enumerate(self.totals):
            result = self.results.get(i)
            if result is not None:
                steps += total if result.status in _DONE else result.num_timesteps
                continue
            progress = self._current(i)
            if progress is None:
                steps += self._baseline[i]
            else:
                running += 1
                steps += min(int(progress["num_timesteps"]), total)
                fps += float(progress.get("fps", 0.0))
        parts = [f"{done}/{len(self.totals)} done", f"{running} running", f"{failed} failed"]
        if stopped:
            parts.append(f"{stopped} stopped")
        line = f"grid: {', '.join(parts)} | {_steps(steps)}/{_steps(sum(self.totals))} steps"
        if running:
            # the sum of the running runs' rates: what the workers do now, whatever ran before
            line += f" | {fps:,.0f} steps/s"
            todo = sum(self.totals) - steps
            if fps > 0 and todo > 0:
                line += f" | ETA {_duration(todo / fps)}"
        return line + f" | {_duration(time.monotonic() - self._t0)}"

    def refresh(self, force: bool = False) -> None:
        """Redraw the line if it is due (terminal: every :data:`REDRAW_EVERY` s; otherwise every ``line_every``).

        :param force: draw now
        """
        now = time.monotonic()
        every = REDRAW_EVERY if self.tty else self.line_every
        if not force and (not every or now - self._last < every):
            return
        self._last = now
        if self.tty:
            self.stream.write(f"\r{self.status()}\x1b[K")
            self._drawn = True
        else:
            self.stream.write(self.status() + "\n")
        self.stream.flush()

    @contextmanager
    def above(self) -> Iterator[None]:
        """Print other lines (e.g. a run that ended) above the status line, then redraw it."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
        yield
        if self.tty:
            self.refresh(force=True)

    def close(self) -> None:
        """Leave the last status line on the terminal (nothing when not a terminal)."""
        if self.tty:
            self.refresh(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
