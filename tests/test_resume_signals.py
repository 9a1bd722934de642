"""Issue 21.4: Ctrl-C (SIGINT) and SIGTERM make every running run save a checkpoint at its next update and stop,
with one line per run and no traceback; a re-run says which runs it resumes from which step, and the resumed
run has exactly its configured steps, each TensorBoard step once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.config import load_config
from agents.pipeline.checkpoints import checkpoint_steps
from agents.pipeline.resume import read_history
from agents.pipeline.runs import grid
from agents.pipeline.sweep import run_grid
from tests._resume_helpers import ROLLOUT, ROOT, SMOKE, kill_group, start_training, tag_steps, wait_for_checkpoint

TINY = ["eval.freq=0", "diagnostics.freq=0", "checkpoint_freq=1024"]


@pytest.mark.parametrize(
    ("sig", "workers", "norms", "status", "backend"),
    [
        (signal.SIGINT, 1, "[none]", 130, "local"),  # in-process runs
        (signal.SIGTERM, 2, "[none, bn]", 143, "local"),  # a process pool; the signal reaches the parent only
        (signal.SIGINT, 2, "[none, bn]", 130, "ray"),  # Ray tasks: the driver passes the request on
    ],
)
def test_signal_saves_every_running_run_and_rerun_resumes_there(
    sig: signal.Signals,
    workers: int,
    norms: str,
    status: int,
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    overrides = [f"runs_dir={tmp_path}", f"norms={norms}", *TINY]
    specs = grid(load_config(SMOKE, [*overrides, "total_timesteps=10000000"]))
    proc = start_training([*overrides, "total_timesteps=10000000", f"--backend={backend}"], workers=workers)
    try:
        wait_for_checkpoint(proc, specs[0].run_dir, 2048)
        if sig == signal.SIGINT and backend == "local":  # Ctrl-C in a terminal reaches the whole process group
            os.killpg(proc.pid, sig)
        else:  # a job scheduler may signal the main process only
            proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    assert proc.returncode == status, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    saved = {}
    for spec in specs:
        lines = [line for line in out.splitlines() if f" {spec.run_dir} " in line and "interrupted" in line]
        assert len(lines) == 1, out  # one line per run, saying where it stopped
        steps = checkpoint_steps(spec.run_dir)
        assert steps is not None and steps % ROLLOUT == 0 and f"checkpoint saved at step {steps}" in lines[0]
        assert read_history(spec.run_dir)[-1]["event"] == "interrupted"
        saved[spec.run_dir] = steps
    assert f"{sig.name}: {len(specs)} of {len(specs)} runs stopped before the end" in out

    target = max(saved.values()) + 2 * ROLLOUT
    capsys.readouterr()
    results = run_grid(load_config(SMOKE, [*overrides, f"total_timesteps={target}"]), workers=1)
    plan = capsys.readouterr().out
    for spec, result in zip(specs, results):
        assert f"resume {spec.run_dir} from step {saved[spec.run_dir]} (of {target})" in plan
        assert result.status == "finished" and result.num_timesteps == target
        final = json.loads((spec.run_dir / "final.json").read_text())
        assert final["resumed_from"] == saved[spec.run_dir]
        # every rollout of the run logged once: none lost at the interruption, none repeated after it
        assert tag_steps(spec.run_dir, "rollout/ep_rew_mean") == list(range(ROLLOUT, target + 1, ROLLOUT))
    again = run_grid(load_config(SMOKE, [*overrides, f"total_timesteps={target}"]), workers=1)
    assert [r.status for r in again] == ["skipped"] * len(specs)
    plan = capsys.readouterr().out
    assert all(f"skip {spec.run_dir}: finished ({target} steps)" in plan for spec in specs)


def test_signal_before_training_leaves_no_traceback(tmp_path: Path) -> None:
    """A Ctrl-C while the pool's workers are still starting (importing torch) stops them quietly."""
    overrides = [f"runs_dir={tmp_path}", "norms=[none, bn]", *TINY, "total_timesteps=10000000"]
    proc = start_training(overrides, workers=2)
    try:
        # the first output line comes once the config is loaded, right before the workers are spawned
        first = proc.stdout.readline()
        assert first.startswith("smoke: 2 runs"), first
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    assert out.count("[1/2] ") == 1 and out.count("[2/2] ") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_holds_for_the_next_grid_of_the_same_command(workers: int, tmp_path: Path) -> None:
    """After Ctrl-C, a command that runs several grids (a study's arms) starts no run of the next one."""
    from agents.pipeline import interrupt

    interrupt.request_stop("SIGINT")
    try:
        results = run_grid(load_config(SMOKE, [f"runs_dir={tmp_path}", "norms=[none, bn]", *TINY]), workers=workers)
    finally:
        interrupt.reset()
    assert [r.status for r in results] == ["not started", "not started"]
    assert not any(p.name.startswith("events.out.tfevents") and p.parent.name != "_layout" for p in tmp_path.rglob("*"))


def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C before any run has started (Python still importing torch and SB3): one line, exit 130."""
    proc = start_training([f"runs_dir={tmp_path}", *TINY])
    try:
        time.sleep(0.5)  # well inside the imports, which take seconds
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "interrupted" in output


def test_ctrl_c_after_the_command_finished_leaves_no_traceback() -> None:
    """A Ctrl-C that lands while Python shuts down (torch's exit hooks run) after the command's work is done."""
    # the hook is registered first, so it runs last: after torch's finalizers, like a late Ctrl-C
    script = (
        "import atexit, os, runpy, signal, sys, time\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
        "sys.argv = ['agents', 'compare', '--help']\n"
        "runpy.run_module('agents', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
