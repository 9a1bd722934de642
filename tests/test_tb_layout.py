"""Where a run's TensorBoard events live (run folder, or tb/ for old runs), and the per-norm mean runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from agents.pipeline.tb_layout import (
    MEAN_DIR,
    NORM_COLOR_REGEX,
    event_dir,
    has_events,
    remove_events,
    tensorboard_url,
)
from agents.pipeline.tb_means import write_norm_means

TAG = "by_env/CartPole-v1/return_clean"


def _run(
    experiment: Path, norm: str, seed: int, values: dict[int, float], legacy: bool = False, arm: str | None = None
) -> Path:
    run_dir = experiment / "CartPole-v1" / f"PPO-{arm or norm}-s{seed}"
    run_dir.mkdir(parents=True)
    info = {"algo": "PPO", "run": {"env": "CartPole-v1", "norm": norm, "seed": seed}}
    if arm is not None:
        info["run"]["arm"] = arm
    (run_dir / "config.yaml").write_text(yaml.safe_dump(info))
    writer = SummaryWriter(str(run_dir / "tb" if legacy else run_dir))
    for step, value in values.items():
        writer.add_scalar(TAG, value, step)
        writer.add_scalar("rollout/ep_rew_mean", value, step)
    writer.close()
    return run_dir


def test_events_live_in_the_run_folder_and_old_runs_keep_tb(tmp_path: Path) -> None:
    new = _run(tmp_path, "none", 0, {1: 1.0})
    old = _run(tmp_path, "none", 1, {1: 1.0}, legacy=True)
    assert event_dir(new) == new and event_dir(old) == old / "tb"
    assert has_events(new) and has_events(old)
    remove_events(old)
    assert not has_events(old) and not (old / "tb").exists() and event_dir(old) == old


def test_mean_run_per_norm_averages_seeds_at_common_steps(tmp_path: Path) -> None:
    experiment = tmp_path / "runs" / "exp"
    _run(experiment, "ln", 0, {100: 1.0, 200: 3.0, 300: 5.0})
    _run(experiment, "ln", 1, {100: 3.0, 200: 5.0}, legacy=True)  # shorter (e.g. still running), old layout
    _run(experiment, "wn", 0, {100: 7.0})
    written = write_norm_means(tmp_path / "runs")
    assert sorted(p.relative_to(experiment).as_posix() for p in written) == [
        f"{MEAN_DIR}/CartPole-v1/PPO-ln",
        f"{MEAN_DIR}/CartPole-v1/PPO-wn",
    ]
    acc = EventAccumulator(str(experiment / MEAN_DIR / "CartPole-v1" / "PPO-ln"))
    acc.Reload()
    assert acc.Tags()["scalars"] == [TAG]  # only the comparison charts' tags
    assert [(e.step, e.value) for e in acc.Scalars(TAG)] == [(100, 2.0), (200, 4.0)]
    assert len(write_norm_means(experiment)) == 2  # rewritten, never averaged with itself


def test_mean_run_per_arm_keeps_arms_of_one_norm_apart(tmp_path: Path) -> None:
    experiment = tmp_path / "runs" / "exp"
    _run(experiment, "wn", 0, {100: 1.0}, arm="wn")
    _run(experiment, "wn", 0, {100: 9.0}, arm="wn-noinit")
    written = write_norm_means(tmp_path / "runs")
    assert sorted(p.name for p in written) == ["PPO-wn", "PPO-wn-noinit"]
    acc = EventAccumulator(str(experiment / MEAN_DIR / "CartPole-v1" / "PPO-wn-noinit"))
    acc.Reload()
    assert [e.value for e in acc.Scalars(TAG)] == [9.0]


def test_url_and_norm_colour_regex() -> None:
    regex = re.compile(NORM_COLOR_REGEX)
    names = {
        "exp/CartPole-v1/PPO-ln-s0": "ln",
        "exp/MinAtar-Breakout-v1/PPO-bn_eval-s12/tb": "bn_eval",
        f"exp/{MEAN_DIR}/CartPole-v1/PPO-ln": "ln",
    }
    assert {name: regex.search(name)[1] for name in names} == names
    assert regex.search("exp/_layout") is None
    url = tensorboard_url("127.0.0.1", 6006, means=True)
    assert url.startswith("http://127.0.0.1:6006/?runColorGroup=regex%3A")
    assert url.endswith("#custom_scalars&regexInput=_mean")
