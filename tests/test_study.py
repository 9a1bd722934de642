"""The noise-sensitivity study scripts on tiny real runs: a MinAtar PPO experiment trained by the pipeline (LN and
BN, a few hundred steps), read back by the batch-dependence, BN-mode and minibatch studies; a tiny PixelCNN grid."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from agents.config import ConfigError
from agents.studies.batch_dependence import find_trained_runs, run_study
from agents.studies.bn_modes import bn_modes_report, mode_table
from agents.studies.minibatch import minibatch_configs
from agents.studies.minibatch import report as minibatch_report

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "total_timesteps=256",
    "train.n_envs=2",
    "hyperparams.default.n_steps=64",
    "hyperparams.default.batch_size=64",
    "hyperparams.default.n_epochs=1",
    "eval.n_episodes=2",
    "eval.n_envs=2",
    "eval.noise=[]",
    "diagnostics.freq=0",
    "norms=[ln,bn]",
    "seeds=[0]",
]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/study_noise`` at a few hundred steps, trained by ``python -m agents train`` (real envs and events)."""
    from agents.commands import main

    root = tmp_path_factory.mktemp("study")
    status = main(
        [
            str(ROOT / "configs/study_noise.yaml"),
            *TINY,
            f"runs_dir={root / 'runs'}",
            f"reports_dir={root / 'reports'}",
            "--workers",
            "1",
            "--no-compare",
        ]
    )
    assert status == 0
    return root / "runs" / "study_noise"


def test_study_configs_validate() -> None:
    from agents.config import load_config
    from agents.pixelcnn.config import load_pixelcnn_config

    for name in (
        "study_noise",
        "study_noise_trained",
        "study_minibatch",
        "study_minibatch_atari",
        "study_recurrent",
        "study_recurrent_flicker",
        "study_exploration",
    ):
        config = load_config(ROOT / f"configs/{name}.yaml")
        assert config.experiment == name
    assert load_pixelcnn_config(ROOT / "configs/study_pixelcnn.yaml").train.logdir == "runs/study_pixelcnn"


def test_batch_dependence_of_trained_policies(experiment: Path, tmp_path: Path) -> None:
    runs = find_trained_runs(experiment)
    assert sorted(r.norm for r in runs) == ["bn", "ln"]
    report = run_study([experiment], tmp_path / "reports", tmp_path / "runs", [1, 4, 16], n_obs=32, n_batches=2)
    assert (report.parent / "batch_dependence.png").stat().st_size > 10_000
    results = pd.read_csv(report.parent / "per_run.csv")
    by = results.set_index(["norm", "metric", "mode", "batch_size"]).value
    for metric in ("batch_dependence", "action_tv"):
        assert math.isnan(by["bn", metric, "train", 1])  # a batch of one: n/a
        for size in (4, 16):
            assert by["ln", metric, "train", size] == 0.0
            assert by["ln", metric, "eval", size] == 0.0
            assert by["bn", metric, "eval", size] == 0.0
            assert by["bn", metric, "train", size] > 0.0
    text = report.read_text()
    assert "| bn | n/a |" in text and "[" in text  # intervals
    from tbparse import SummaryReader

    events = SummaryReader(str(tmp_path / "runs" / "study_batch_dependence")).scalars
    train_rows = events[events.tag == "batch_dependence/train"]
    assert sorted(set(train_rows.step)) == [4, 16]


def test_batch_dependence_rejects_bad_arguments(experiment: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_sizes"):
        run_study([experiment], tmp_path, tmp_path, [0, 4])
    with pytest.raises(ValueError, match="n_obs"):
        run_study([experiment], tmp_path, tmp_path, [4, 64], n_obs=32)
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        run_study([tmp_path], tmp_path, tmp_path, [4])


def test_bn_modes_report(experiment: Path, tmp_path: Path) -> None:
    from agents.report.scalars import load_scalars

    report = bn_modes_report(experiment, tmp_path)
    assert (report.parent / "bn_modes.png").stat().st_size > 10_000
    table = mode_table(load_scalars(experiment))
    assert set(table.norm) == {"bn"}  # only the BN policy has a train mode to compare
    row = table.iloc[-1]
    assert row.gap == pytest.approx(row.eval_mode - row.train_mode)
    assert row.kl >= 0.0
    assert "| MinAtar/Breakout-v1 | bn |" in report.read_text()
    scalars = load_scalars(experiment)
    with pytest.raises(ValueError, match="bn_modes"):
        mode_table(scalars[scalars.norm == "ln"])


def test_minibatch_configs(tmp_path: Path) -> None:
    configs = minibatch_configs(ROOT / "configs/study_minibatch.yaml", [16, 64], ["seeds=[0]"])
    assert [size for size, _ in configs] == [16, 64]
    for size, config in configs:
        assert config.env_hyperparams("MinAtar/Breakout-v1")["batch_size"] == size
        assert Path(config.runs_dir) == Path("runs/study_minibatch") and config.experiment == f"mb{size}"
    with pytest.raises(ConfigError, match="--batch-sizes"):
        minibatch_configs(ROOT / "configs/study_minibatch.yaml", [1, 16])
    data = yaml.safe_load((ROOT / "configs/study_minibatch.yaml").read_text())
    data["hyperparams"]["MinAtar/Breakout-v1"] = {"batch_size": 32}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"hyperparams\.MinAtar/Breakout-v1\.batch_size"):
        minibatch_configs(path, [16])


def test_minibatch_report_reads_every_size(experiment: Path, tmp_path: Path) -> None:
    # the same real runs stand in for two minibatch sizes: the report must keep the sizes apart
    study = tmp_path / "study_minibatch"
    study.mkdir()
    for size in (16, 64):
        (study / f"mb{size}").symlink_to(experiment, target_is_directory=True)
    report = minibatch_report(study, tmp_path / "out", [16, 64, 256], note="test")
    assert (report.parent / "minibatch.png").stat().st_size > 10_000
    text = report.read_text()
    assert "| norm | mb=16 | mb=64 |" in text  # mb256 has no folder and is skipped
    finals = pd.read_csv(report.parent / "per_run.csv")
    assert sorted(finals.minibatch.unique()) == [16, 64]


def test_minibatch_study_command_line(tmp_path: Path) -> None:
    from agents.studies.minibatch import main

    tiny = [o for o in TINY if not o.startswith("hyperparams.default.batch_size")]
    overrides = [*tiny, "norms=[bn]", f"runs_dir={tmp_path / 'runs'}", f"reports_dir={tmp_path / 'reports'}"]
    argv = [str(ROOT / "configs/study_minibatch.yaml"), *overrides, "--batch-sizes", "16", "64", "--workers", "1"]
    assert main(argv) == 0
    for size in (16, 64):
        assert (tmp_path / "runs" / "study_minibatch" / f"mb{size}" / "MinAtar-Breakout-v1" / "PPO-bn-s0").is_dir()
    text = (tmp_path / "reports" / "study_minibatch" / "report.md").read_text()
    assert "| norm | mb=16 | mb=64 |" in text and "256 steps per run; this invocation took" in text
    # finished runs are skipped; --report-only leaves the wall time out of the note
    assert main([*argv, "--report-only"]) == 0
    text = (tmp_path / "reports" / "study_minibatch" / "report.md").read_text()
    assert "256 steps per run." in text and "invocation took" not in text


def test_pixelcnn_study_two_seeds(tmp_path: Path) -> None:
    from agents.studies.pixelcnn import main, parse_reuse

    overrides = [
        f"data.path={tmp_path / 'frames.npz'}",
        "data.n_frames=64",
        "data.n_test_frames=16",
        "data.n_envs=2",
        "model.hidden_channels=4",
        "model.n_layers=1",
        "train.norms=[pixel_ln,bn]",
        "train.batch_sizes=[1,4]",
        "train.n_updates=2",
        "train.eval_every=1",
        "train.eval_frames=8",
        "train.n_samples=1",
        f"train.logdir={tmp_path / 'runs'}",
    ]
    assert (
        main([str(ROOT / "configs/study_pixelcnn.yaml"), *overrides, "--seeds", "0", "1", "--out", str(tmp_path)]) == 0
    )
    report = tmp_path / "study_pixelcnn" / "report.md"
    assert (report.parent / "pixelcnn.png").stat().st_size > 10_000
    text = report.read_text()
    assert "| bn |" in text and "| pixel_ln |" in text and "b=4" in text
    assert text.count("| pixel_ln | 4 |") == 2  # one per-seed row for each seed
    with pytest.raises(ValueError, match="SEED=PATH"):
        parse_reuse(["runs/x.csv"])
    with pytest.raises(ValueError, match="no such file"):
        parse_reuse([f"0={tmp_path / 'missing.csv'}"])
