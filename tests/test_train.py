"""End to end: the tiny config trains two norms, writes the expected TensorBoard tags, and the report's numbers
are the event files' numbers; finished runs are skipped; NaN stops a run, says what it keeps (with its step) and
keeps the last finite weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.commands import main
from agents.config import load_config
from agents.pipeline.checkpoints import CHECKPOINT_DIR, checkpoint_steps, load_checkpoint
from agents.pipeline.runs import grid
from agents.pipeline.tb_layout import event_dir
from agents.pipeline.train import make_train_env, train_run
from tests._resume_helpers import AtRolloutEnd

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMOKE = CONFIGS / "smoke.yaml"


def _events(run_dir: Path) -> EventAccumulator:
    """An independent reader (TensorBoard's own), so the report is not checked against itself."""
    acc = EventAccumulator(str(event_dir(run_dir)), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def _last(acc: EventAccumulator, tag: str) -> float:
    events = acc.Scalars(tag)
    return max(events, key=lambda e: e.step).value


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("smoke")
    status = main([str(SMOKE), f"runs_dir={root / 'runs'}", f"reports_dir={root / 'reports'}"])
    assert status == 0
    return {"runs": root / "runs" / "smoke", "report": root / "reports" / "smoke"}


def test_runs_have_layout_config_model_and_final_metrics(trained: dict[str, Path]) -> None:
    runs = sorted(p.name for p in (trained["runs"] / "CartPole-v1").iterdir())
    assert runs == ["PPO-bn-s0", "PPO-none-s0"]
    for name in runs:
        run_dir = trained["runs"] / "CartPole-v1" / name
        text = (run_dir / "config.yaml").read_text()
        assert f"norm: {name.split('-')[1]}" in text and "env: CartPole-v1" in text
        final = json.loads((run_dir / "final.json").read_text())
        assert final["num_timesteps"] >= 2048
        model = PPO.load(run_dir / "final_model.zip", device="cpu")
        assert model.policy.norm == name.split("-")[1]
        assert checkpoint_steps(run_dir) == final["num_timesteps"]


def test_event_files_hold_the_comparison_tags(trained: dict[str, Path]) -> None:
    common = {
        "rollout/ep_rew_mean",
        "train/loss",
        "eval/return_clean",
        "eval/return_noise_gaussian_0.1",
        "eval/return_noise_gaussian_0.5",
        "by_env/CartPole-v1/return_clean",
        "by_env/CartPole-v1/ep_rew_mean",
        "norm/batch_dependence",
    }
    bn = _events(trained["runs"] / "CartPole-v1" / "PPO-bn-s0")
    none = _events(trained["runs"] / "CartPole-v1" / "PPO-none-s0")
    bn_tags, none_tags = set(bn.Tags()["scalars"]), set(none.Tags()["scalars"])
    assert common <= bn_tags and common <= none_tags
    assert {"eval/return_train_mode", "eval/return_eval_mode", "eval/bn_mode_kl"} <= bn_tags
    assert "eval/return_train_mode" not in none_tags
    assert any(re.match(r"norm/.*batch_mean_gap$", t) for t in bn_tags)
    # batch norm in train mode makes outputs depend on the batch; the plain network does not
    assert _last(bn, "norm/batch_dependence") > 1e-6
    assert _last(none, "norm/batch_dependence") == 0.0
    # evaluation ran during training (eval.freq) and at the end
    assert len(bn.Scalars("eval/return_clean")) >= 2
    # HParams plugin entry (norm, algo, env, seed)
    assert "_hparams_/session_start_info" in bn.PluginTagToContent("hparams")


def test_custom_scalars_layout_written_once(trained: dict[str, Path]) -> None:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = list((trained["runs"] / "_layout").glob("events.out.tfevents.*"))
    assert len(files) == 1
    tags = [v.tag for e in EventFileLoader(str(files[0])).Load() for v in e.summary.value]
    assert "custom_scalars__config__" in tags


def test_report_png_and_table_match_event_files(trained: dict[str, Path]) -> None:
    report = trained["report"]
    for name in ("learning_curves.png", "final_scores.png", "noise_sensitivity.png"):
        data = (report / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (report / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| CartPole-v1/PPO-")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        run, steps, clean, rollout = cells[0], int(cells[4]), float(cells[5]), float(cells[6])
        acc = _events(trained["runs"] / run)
        assert clean == pytest.approx(round(_last(acc, "eval/return_clean"), 2), abs=1e-9)
        assert rollout == pytest.approx(round(_last(acc, "rollout/ep_rew_mean"), 2), abs=1e-9)
        assert steps == max(e.step for e in acc.Scalars("eval/return_clean"))
    # with one seed the IQM is the run's value, and so is its CI
    none_clean = _last(_events(trained["runs"] / "CartPole-v1/PPO-none-s0"), "eval/return_clean")
    assert f"| CartPole-v1 | {none_clean:.2f} [{none_clean:.2f}, {none_clean:.2f}]" in md


def test_finished_run_is_skipped(trained: dict[str, Path]) -> None:
    config = load_config(SMOKE, [f"runs_dir={trained['runs'].parent}"])
    result = train_run(grid(config)[0])
    assert result.status == "skipped"
    assert (
        result.metrics["eval/return_clean"]
        == json.loads((Path(result.run_dir) / "final.json").read_text())["metrics"]["eval/return_clean"]
    )


def poison_a_weight(model: BaseAlgorithm) -> None:
    """Sets one policy weight to NaN."""
    with torch.no_grad():
        next(model.policy.parameters()).view(-1)[0] = float("nan")


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    config = load_config(
        SMOKE, [f"runs_dir={tmp_path}", "norms=[none]", "total_timesteps=4096", "checkpoint_freq=512", "eval.freq=0"]
    )
    spec = grid(config)[0]
    result = train_run(spec, extra_callbacks=[AtRolloutEnd(1536, poison_a_weight)])
    assert result.status == "failed"
    assert json.loads((spec.run_dir / "failed.json").read_text())["message"] == result.message
    assert not (spec.run_dir / "final.json").exists()
    saved = checkpoint_steps(spec.run_dir)
    assert saved is not None and 512 <= saved < result.num_timesteps
    assert result.message.startswith(f"non-finite values after {result.num_timesteps} steps: ")
    assert f"kept: last_finite_model.zip (the last finite weights, step {saved}); checkpoints/ up to step {saved}" in (
        result.message
    )
    env = make_train_env(spec)
    model = load_checkpoint(PPO, spec.run_dir, env, device="cpu")
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    assert model.num_timesteps == saved
    env.close()
    assert (spec.run_dir / CHECKPOINT_DIR / f"step-{saved:012d}" / "model.zip").exists()


def test_nan_message_says_what_is_kept_and_keeps_the_last_finite_model(tmp_path: Path) -> None:
    """Issue 21.5: a learning rate of 1e20 diverges at the first update, before any checkpoint is due; the
    message must not promise a checkpoint, and the last finite weights (the initial ones) are kept."""
    overrides = [
        f"runs_dir={tmp_path}",
        "norms=[none]",
        "total_timesteps=4096",
        "train.checkpoint_freq=256",
        "hyperparams.default.learning_rate=1.0e+20",
        "eval.freq=0",
        "diagnostics.freq=0",
    ]
    spec = grid(load_config(SMOKE, overrides))[0]
    result = train_run(spec)
    assert result.status == "failed" and result.num_timesteps == 512
    assert "checkpoint is kept" not in result.message
    assert result.message.endswith(
        "stopped, kept: last_finite_model.zip (the last finite weights, step 0); no checkpoint (none saved yet)"
    ), result.message
    assert checkpoint_steps(spec.run_dir) is None
    model = PPO.load(spec.run_dir / "last_finite_model.zip", device="cpu")
    assert model.num_timesteps == 0
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize(
    ("algo", "env", "norm", "hyperparams"),
    [
        ("DQN", "CartPole-v1", "bn", "{learning_starts: 64, buffer_size: 1000, train_freq: 4, batch_size: 32}"),
        ("RecurrentPPO", "CartPoleNoVel-v1", "wn", "{n_steps: 32, batch_size: 64, n_epochs: 1}"),
        ("RecurrentPPO", "CartPoleNoVel-v1", "bn", "{n_steps: 32, batch_size: 64, n_epochs: 1}"),
    ],
)
def test_other_algorithms_train_evaluate_and_resume(
    algo: str, env: str, norm: str, hyperparams: str, tmp_path: Path
) -> None:
    overrides = [
        f"runs_dir={tmp_path}",
        f"algo={algo}",
        f"envs=[{env}]",
        f"norms=[{norm}]",
        f"hyperparams={{default: {hyperparams}}}",
        "train.n_envs=2",
        "checkpoint_freq=128",
        "eval.freq=0",
        "eval.n_episodes=2",
        "diagnostics.freq=128",
    ]
    first = train_run(grid(load_config(SMOKE, [*overrides, "total_timesteps=256"]))[0])
    assert first.status == "finished", first.message
    assert {"eval/return_clean", "eval/return_noise_gaussian_0.1"} <= set(first.metrics)
    if norm == "bn":  # train- vs eval-mode evaluation, and the KL for policies with action distributions
        assert {"eval/return_train_mode", "eval/return_eval_mode"} <= set(first.metrics)
        if algo == "RecurrentPPO":
            assert first.metrics["eval/bn_mode_kl"] >= 0.0
    acc = _events(Path(first.run_dir))
    assert any(t.startswith("norm/") for t in acc.Tags()["scalars"])
    # a longer target resumes the finished run from its last checkpoint
    second = train_run(grid(load_config(SMOKE, [*overrides, "total_timesteps=384"]))[0])
    assert second.status == "finished" and second.num_timesteps >= 384
    assert json.loads((Path(second.run_dir) / "final.json").read_text())["resumed_from"] == first.num_timesteps
