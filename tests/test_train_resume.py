"""Kill-and-resume: a training process killed after a checkpoint resumes from it, and its step counter (and
its TensorBoard curves, in the same run directory) continue instead of starting over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from agents.config import load_config
from agents.pipeline.checkpoints import checkpoint_steps
from agents.pipeline.runs import grid
from agents.pipeline.tb_layout import event_dir
from agents.pipeline.train import train_run

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def _steps(event_file: Path, tag: str) -> list[int]:
    return [e.step for e in EventFileLoader(str(event_file)).Load() for v in e.summary.value if v.tag == tag]


def test_killed_run_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    overrides = [
        f"runs_dir={tmp_path}",
        "norms=[none]",
        "checkpoint_freq=512",
        "eval.freq=0",
        "diagnostics.freq=0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agents",
            "train",
            str(SMOKE),
            *overrides,
            "total_timesteps=10000000",
            "--no-compare",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = load_config(SMOKE, [*overrides, "total_timesteps=10000000"])
    run_dir = grid(config)[0].run_dir
    try:
        deadline = time.monotonic() + 180
        while (checkpoint_steps(run_dir) or 0) < 1024:
            assert proc.poll() is None, "training process exited early"
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = checkpoint_steps(run_dir)
    assert saved is not None and saved >= 1024 and saved % 512 == 0
    assert not (run_dir / "final.json").exists()
    events_before = set(event_dir(run_dir).glob("events.out.tfevents.*"))

    target = saved + 1024
    resumed = load_config(SMOKE, [*overrides, f"total_timesteps={target}"])
    result = train_run(grid(resumed)[0], progress_bar=False)

    assert result.status == "finished"
    assert result.num_timesteps == target
    final = json.loads((run_dir / "final.json").read_text())
    assert final["resumed_from"] == saved and final["num_timesteps"] == target
    # same TensorBoard directory, a new event file whose steps continue after the checkpoint
    new_files = set(event_dir(run_dir).glob("events.out.tfevents.*")) - events_before
    assert len(new_files) == 1
    new_steps = _steps(next(iter(new_files)), "rollout/ep_rew_mean")
    assert new_steps, "the resumed run logged its rollouts"
    assert min(new_steps) > saved and max(new_steps) == target


def test_pseudo_count_density_model_is_checkpointed_and_restored(tmp_path: Path) -> None:
    """A resumed pseudo-count run continues the density model it had, not a fresh one."""
    from stable_baselines3 import PPO

    from agents.exploration import PseudoCountReward
    from agents.pipeline.checkpoints import ENV_STATE_FILE, list_checkpoints, load_checkpoint, stateful_wrapper
    from agents.pipeline.train import make_train_env

    overrides = [
        f"runs_dir={tmp_path / 'runs'}",
        f"reports_dir={tmp_path / 'reports'}",
        "norms=[none]",
        "train.total_timesteps=256",
        "train.n_envs=2",
        "train.checkpoint_freq=128",
        "train.progress_bar=false",
        "hyperparams.default.n_steps=64",
        "hyperparams.default.batch_size=64",
        "hyperparams.default.n_epochs=1",
        "eval.freq=0",
        "eval.n_episodes=1",
        "diagnostics.freq=0",
        "exploration.hidden_channels=4",
        "exploration.n_layers=2",
    ]
    config = load_config("configs/pseudocount_minatar.yaml", overrides)
    (spec,) = grid(config)
    assert train_run(spec).status == "finished"
    assert (list_checkpoints(spec.run_dir)[0].path / ENV_STATE_FILE).exists()

    env = make_train_env(spec)
    wrapper = stateful_wrapper(env)
    assert isinstance(wrapper, PseudoCountReward) and wrapper.n_updates == 0
    load_checkpoint(PPO, spec.run_dir, env)
    assert wrapper.n_updates >= 256  # one density update per frame seen during training
    env.close()
