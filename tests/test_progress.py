"""The grid's progress line: read from the runs' progress.json, drawn in place on a terminal, quiet otherwise."""

from __future__ import annotations

import io
import json
from pathlib import Path

from agents.config import load_config
from agents.pipeline.progress import PROGRESS_FILE, GridProgress, read_progress
from agents.pipeline.runs import RunResult, grid

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _write_progress(run_dir: Path, steps: int, fps: float, stamp: float) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {"num_timesteps": steps, "total_timesteps": 2048, "start_timesteps": 0, "fps": fps, "time": stamp}
    (run_dir / PROGRESS_FILE).write_text(json.dumps(state))


def test_status_counts_runs_steps_fps_and_eta(tmp_path: Path) -> None:
    specs = grid(load_config(SMOKE, [f"runs_dir={tmp_path}", "seeds=[0, 1]"]))  # 4 runs of 2048 steps
    _write_progress(specs[3].run_dir, 2048, 100.0, stamp=1.0)  # left by an earlier invocation: not running
    progress = GridProgress(specs, stream=io.StringIO())
    assert progress.status().startswith("grid: 0/4 done, 0 running, 0 failed | 0/8.2k steps")

    _write_progress(specs[0].run_dir, 1024, 500.0, stamp=2.0)
    progress.record(1, RunResult(str(specs[1].run_dir), "finished", 2048))
    progress.record(2, RunResult(str(specs[2].run_dir), "failed", 512, message="boom"))
    line = progress.status()
    assert line.startswith("grid: 1/4 done, 1 running, 1 failed | 3.6k/8.2k steps | 500 steps/s | ETA 9s")
    _write_progress(specs[3].run_dir, 0, 0.0, stamp=3.0)  # now it started (again)
    assert "2 running" in progress.status()
    assert read_progress(specs[0].run_dir)["num_timesteps"] == 1024


def test_drawn_in_place_on_a_terminal_and_silent_elsewhere(tmp_path: Path) -> None:
    specs = grid(load_config(SMOKE, [f"runs_dir={tmp_path}"]))
    terminal = Terminal()
    progress = GridProgress(specs, stream=terminal)
    progress.refresh(force=True)
    with progress.above():
        terminal.write("[1/2] finished ...\n")
    progress.close()
    out = terminal.getvalue()
    assert out.startswith("\rgrid: 0/2 done") and "\r\x1b[K[1/2] finished ...\n\rgrid:" in out
    assert out.endswith("\n")

    log = io.StringIO()
    quiet = GridProgress(specs, stream=log)  # not a terminal: a plain line every LINE_EVERY_NON_TTY seconds only
    quiet.refresh()
    with quiet.above():
        log.write("[1/2] finished ...\n")
    quiet.close()
    assert log.getvalue() == "[1/2] finished ...\n"
