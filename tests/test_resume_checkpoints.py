"""Issue 21.3: a run keeps its two newest checkpoints; a damaged newest one makes it resume from the one before
(said in one line); with none loadable, one line names the file and how to start over. Failures are reported once,
on one line, with the traceback in the run's ``failed.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agents.commands import main
from agents.config import load_config
from agents.pipeline import interrupt
from agents.pipeline.checkpoints import list_checkpoints
from agents.pipeline.runs import RunSpec, grid
from agents.pipeline.sweep import run_grid
from agents.pipeline.train import train_run
from tests._resume_helpers import ROLLOUT, SMOKE, stop_after, tag_steps

TINY = ["norms=[none]", "eval.freq=0", "diagnostics.freq=0", "checkpoint_freq=1024"]


def _interrupted_run(tmp_path: Path) -> Path:
    """A run stopped at step 1536, with checkpoints at 1024 (periodic) and 1536 (at the stop)."""
    spec = grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, "total_timesteps=4096"]))[0]
    result = train_run(spec, extra_callbacks=[stop_after(1536)])
    interrupt.reset()
    assert result.status == "interrupted" and result.num_timesteps == 1536
    assert [c.steps for c in list_checkpoints(spec.run_dir)] == [1536, 1024]
    return spec.run_dir


def test_only_the_two_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    spec = grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, "total_timesteps=4096", "checkpoint_freq=512"]))
    assert train_run(spec[0]).status == "finished"
    assert [c.steps for c in list_checkpoints(spec[0].run_dir)] == [4096, 3584]
    assert sorted(p.name for p in (spec[0].run_dir / "checkpoints").iterdir()) == [
        "step-000000003584",
        "step-000000004096",
    ]


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _interrupted_run(tmp_path)
    newest = run_dir / "checkpoints" / "step-000000001536" / "model.zip"
    newest.write_bytes(os.urandom(newest.stat().st_size))
    capsys.readouterr()
    (result,) = run_grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, "total_timesteps=2048"]))
    out = capsys.readouterr().out
    assert result.status == "finished" and result.num_timesteps == 2048, result.message
    fallback = [line for line in out.splitlines() if "do not load" in line]
    assert len(fallback) == 1
    assert "resuming from the checkpoint at step 1024" in fallback[0]
    assert (
        "checkpoints/step-000000001536/model.zip (ValueError: Error: the file model.zip wasn't a zip-file)"
        in (fallback[0])
    )
    assert json.loads((run_dir / "final.json").read_text())["resumed_from"] == 1024
    # the steps after 1024 logged before the interruption were trained again; each is in the curves once
    assert tag_steps(run_dir, "rollout/ep_rew_mean") == list(range(ROLLOUT, 2048 + 1, ROLLOUT))


def test_no_loadable_checkpoint_says_which_file_and_how_to_start_over(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _interrupted_run(tmp_path)
    for checkpoint in list_checkpoints(run_dir):
        checkpoint.model_file.write_bytes(b"not a zip")
    capsys.readouterr()
    argv = [str(SMOKE), f"runs_dir={tmp_path}", *TINY, "total_timesteps=2048", "--no-compare"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text and " | " not in text
    lines = [line for line in text.splitlines() if "does not load" in line]
    assert len(lines) == 1, text  # said once, on one line
    assert f"{run_dir}/checkpoints/step-000000001536/model.zip does not load (ValueError: " in lines[0]
    assert f"to start the run over, delete {run_dir}" in lines[0]
    assert "does not load" in json.loads((run_dir / "failed.json").read_text())["message"]


def test_unexpected_error_is_one_line_with_the_traceback_in_failed_json(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.pipeline.sweep as sweep

    def broken(spec: RunSpec, **kwargs: object) -> None:
        spec.run_dir.mkdir(parents=True)
        raise RuntimeError("boom\nsecond line of the message")

    monkeypatch.setattr(sweep, "train_run", broken)
    assert main([str(SMOKE), f"runs_dir={tmp_path}", *TINY, "--no-compare"]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert text.count("RuntimeError: boom") == 1 and "second line" not in text and "Traceback" not in text
    run_dir = grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY]))[0].run_dir
    failed = json.loads((run_dir / "failed.json").read_text())
    assert failed["message"].startswith("RuntimeError: boom (traceback in ")
    assert failed["traceback"].startswith("Traceback (most recent call last)") and "second line" in failed["traceback"]


def test_a_code_error_while_loading_is_not_taken_for_a_damaged_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here a NameError inside ``load``) propagates as itself: no fallback to an older checkpoint, no advice
    to delete the run, every checkpoint kept."""
    from stable_baselines3 import PPO

    run_dir = _interrupted_run(tmp_path)

    def broken_load(*args: object, **kwargs: object) -> None:
        raise NameError("name 'check_head_norm' is not defined")

    monkeypatch.setattr(PPO, "load", broken_load)
    spec = grid(load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY, "total_timesteps=2048"]))[0]
    with pytest.raises(NameError, match="check_head_norm"):
        train_run(spec)
    assert [c.steps for c in list_checkpoints(run_dir)] == [1536, 1024]
