"""The grid runs on a local process pool and as Ray tasks; results come back in grid order; reruns skip."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from agents.config import ConfigError, load_config
from agents.pipeline.runs import grid
from agents.pipeline.sweep import resolve_workers, run_grid

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
TINY = ["total_timesteps=512", "checkpoint_freq=512", "eval.freq=0", "eval.n_episodes=2", "diagnostics.freq=0"]


def test_grid_is_envs_norms_seeds() -> None:
    config = load_config(SMOKE, ["seeds=[0, 1]", "norms=[none, wn, ln]"])
    specs = grid(config)
    assert len(specs) == 6
    assert {(s.norm, s.seed) for s in specs} == {(n, s) for n in ("none", "wn", "ln") for s in (0, 1)}
    assert len({s.run_dir for s in specs}) == 6
    assert specs[0].run_dir.parts[-3:] == ("smoke", "CartPole-v1", "PPO-none-s0")


def test_resolve_workers() -> None:
    config = load_config(SMOKE, ["sweep.workers=0"])
    assert resolve_workers(config, None, 100) == (os.cpu_count() or 1)
    assert resolve_workers(config, 3, 2) == 2
    assert resolve_workers(config, 1, 8) == 1
    with pytest.raises(ConfigError, match="--workers"):
        resolve_workers(config, -1, 8)


def test_local_pool_runs_grid_in_parallel_and_skips_finished(tmp_path: Path) -> None:
    config = load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY])
    results = run_grid(config, backend="local", workers=2)
    assert [Path(r.run_dir) for r in results] == [s.run_dir for s in grid(config)]
    assert [r.status for r in results] == ["finished", "finished"], [r.message for r in results]
    for r in results:
        assert json.loads((Path(r.run_dir) / "final.json").read_text())["num_timesteps"] == 512
    again = run_grid(config, backend="local", workers=1)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert [r.metrics for r in again] == [r.metrics for r in results]


def test_ray_backend_runs_tiny_grid(tmp_path: Path) -> None:
    """A private Ray instance (no RAY_ADDRESS): started for the grid, on loopback only, and stopped after it."""
    import ray  # the test extra installs Ray: a missing Ray fails here instead of skipping

    config = load_config(SMOKE, [f"runs_dir={tmp_path}", *TINY])
    results = run_grid(config, backend="ray", workers=2)
    assert not ray.is_initialized()
    assert [r.status for r in results] == ["finished", "finished"], [r.message for r in results]
    assert [Path(r.run_dir) for r in results] == [s.run_dir for s in grid(config)]
    for r in results:
        run_dir = Path(r.run_dir)
        assert (run_dir / "final_model.zip").exists()
        final = json.loads((run_dir / "final.json").read_text())
        assert final["executed_on"]["ray_node_id"] and final["executed_on"]["pid"] != os.getpid()
        assert json.loads((run_dir / "progress.json").read_text())["num_timesteps"] == 512


def test_ray_backend_without_ray_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from agents.commands import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the package
    assert main([str(SMOKE), f"runs_dir={tmp_path}", *TINY, "--backend", "ray", "--no-compare"]) == 2
    err = capsys.readouterr().err
    assert err == "error: <command line>: --backend: ray is not installed; pip install -e '.[ray]'\n"
    assert not any(tmp_path.iterdir())  # nothing ran
