"""Fuzzing the resume path: the training command is killed (SIGKILL, SIGINT or SIGTERM) at random points - while
it starts, trains, checkpoints, evaluates or finishes - and run again until it finishes. Every finished run must
then have exactly its configured steps, the same TensorBoard (tag, step) pairs as an uninterrupted run (nothing
repeated, nothing missing), a final model that loads, and a config that is the model's."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import yaml
from stable_baselines3 import PPO

from agents.config import load_config
from agents.pipeline.checkpoints import KEEP_CHECKPOINTS, checkpoint_steps, list_checkpoints
from agents.pipeline.resume import read_history
from agents.pipeline.runs import grid, is_finished
from agents.pipeline.train import train_run
from tests._resume_helpers import SMOKE, kill_group, start_training, tb_steps

TOTAL = 6144
SETTINGS = [f"total_timesteps={TOTAL}", "checkpoint_freq=1024", "eval.freq=1024", "diagnostics.freq=512"]
SIGNALS = (signal.SIGKILL, signal.SIGKILL, signal.SIGINT, signal.SIGTERM)


def _kill_at_random_points(runs: Path, norms: str, workers: int, tries: int, seed: int, logs: Path) -> None:
    rng = random.Random(seed)
    specs = grid(load_config(SMOKE, [f"runs_dir={runs}", f"norms={norms}", *SETTINGS]))
    for i in range(tries):
        if all(is_finished(s.run_dir, TOTAL) for s in specs):
            break
        sig = rng.choice(SIGNALS)
        log = logs / f"try{i}-{sig.name}.log"
        proc = start_training([f"runs_dir={runs}", f"norms={norms}", *SETTINGS], workers=workers, log=log)
        # a random point: while it starts, or shortly after some checkpoint (evaluating, training, saving)
        after = rng.choice([None, *range(0, TOTAL, 1024)])
        try:
            while proc.poll() is None and not log.read_text():  # the first line: imports done, runs start
                time.sleep(0.02)
            while after is not None and proc.poll() is None and (checkpoint_steps(specs[0].run_dir) or 0) < after:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
            proc.wait(timeout=120)
        finally:
            kill_group(proc)
        text = log.read_text()
        assert "Traceback" not in text, text
    proc = start_training([f"runs_dir={runs}", f"norms={norms}", *SETTINGS], workers=workers, log=logs / "last.log")
    assert proc.wait(timeout=300) == 0, (logs / "last.log").read_text()


def _check_finished_runs(runs: Path, norms: str, reference: Path) -> None:
    for spec in grid(load_config(SMOKE, [f"runs_dir={runs}", f"norms={norms}", *SETTINGS])):
        run_dir = spec.run_dir
        assert json.loads((run_dir / "final.json").read_text())["num_timesteps"] == TOTAL
        expected = tb_steps(reference / spec.run_dir.relative_to(runs))
        got = tb_steps(run_dir)
        assert got == expected, {
            "repeated or extra": sorted((got - expected).items())[:10],
            "missing": sorted((expected - got).items())[:10],
            "history": read_history(run_dir),
        }
        model = PPO.load(run_dir / "final_model.zip", device="cpu")
        assert model.num_timesteps == TOTAL and model.policy.norm == spec.norm
        recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
        hyper = recorded["hyperparams"]["default"]
        assert recorded["train"]["total_timesteps"] == TOTAL and recorded["run"]["norm"] == spec.norm
        assert (model.n_steps, model.batch_size, model.n_epochs) == (
            hyper["n_steps"],
            hyper["batch_size"],
            hyper["n_epochs"],
        )
        assert len(list_checkpoints(run_dir)) <= KEEP_CHECKPOINTS
        assert read_history(run_dir)[-1]["event"] == "finished"


def _reference(tmp_path: Path, norms: str) -> Path:
    """The same runs, uninterrupted (in this process)."""
    root = tmp_path / "reference"
    for spec in grid(load_config(SMOKE, [f"runs_dir={root}", f"norms={norms}", *SETTINGS])):
        assert train_run(spec, progress_bar=False).status == "finished"
    return root


def test_killed_at_random_points_every_run_finishes_exactly_once(tmp_path: Path) -> None:
    reference = _reference(tmp_path, "[none]")
    _kill_at_random_points(tmp_path / "runs", "[none]", workers=1, tries=5, seed=21, logs=tmp_path)
    _check_finished_runs(tmp_path / "runs", "[none]", reference)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # each try starts three processes: about 15 s a try on 2 busy cores
@pytest.mark.parametrize("seed", [1, 2])
def test_killed_at_random_points_many_times_in_a_process_pool(tmp_path: Path, seed: int) -> None:
    reference = _reference(tmp_path, "[none, bn]")
    _kill_at_random_points(tmp_path / "runs", "[none, bn]", workers=2, tries=12, seed=seed, logs=tmp_path)
    _check_finished_runs(tmp_path / "runs", "[none, bn]", reference)
