"""What the resume tests share: a training command in a subprocess, and TensorBoard steps read back independently
(TensorBoard's own event loader, not the pipeline's code)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from agents.pipeline import interrupt
from agents.pipeline.checkpoints import checkpoint_steps
from agents.pipeline.tb_layout import event_dir

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
#: smoke.yaml: 128 steps x 4 envs per rollout
ROLLOUT = 512


def tb_steps(run_dir: Path) -> Counter[tuple[str, int]]:
    """How many times each (scalar tag, step) was logged, over every event file of the run."""
    counts: Counter[tuple[str, int]] = Counter()
    for path in sorted(event_dir(run_dir).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name in ("scalars", "") and not value.tag.startswith("_hparams_"):
                    counts[(value.tag, event.step)] += 1
    return counts


def tag_steps(run_dir: Path, tag: str) -> list[int]:
    """The steps of one tag, sorted, repeats kept."""
    return sorted(step for (t, step), n in tb_steps(run_dir).items() if t == tag for _ in range(n))


def start_training(overrides: Sequence[str], *, workers: int = 1, log: Path | None = None) -> subprocess.Popen:
    """``python -m agents train configs/smoke.yaml OVERRIDES --no-compare`` in a new process.

    :param overrides: ``key=value`` overrides
    :param workers: ``--workers``
    :param log: where its stdout and stderr go (default: a pipe)
    """
    out = open(log, "w") if log is not None else subprocess.PIPE  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "agents", "train", str(SMOKE), *overrides, "--no-compare", f"--workers={workers}"],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a terminal's Ctrl-C can be imitated, and cleaned up
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and its pool workers (so a failed test leaves nothing training)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, steps: int, timeout: float = 180.0) -> None:
    """Wait until the run has a checkpoint at ``steps`` or later (training is well under way)."""
    deadline = time.monotonic() + timeout
    while (checkpoint_steps(run_dir) or 0) < steps:
        assert proc.poll() is None, "training process exited early"
        assert time.monotonic() < deadline, f"no checkpoint at {steps} steps within {timeout} s"
        time.sleep(0.1)


class AtRolloutEnd(BaseCallback):
    """Calls ``action(model)`` at the end of each rollout once the run has ``steps`` steps."""

    def __init__(self, steps: int, action: Callable[[BaseAlgorithm], None]) -> None:
        super().__init__()
        self.steps, self.action = steps, action

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.steps:
            self.action(self.model)


def stop_after(steps: int) -> AtRolloutEnd:
    """Requests a stop (as a signal would) at the end of the rollout that reaches ``steps``."""
    return AtRolloutEnd(steps, lambda _: interrupt.request_stop("test"))
