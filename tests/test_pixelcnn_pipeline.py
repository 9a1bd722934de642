"""PixelCNN pipeline: config validation, frame collection into npz, the norm x batch-size training grid."""

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from tbparse import SummaryReader

import envs
from agents.pixelcnn.config import apply_pixelcnn_overrides, load_pixelcnn_config, parse_pixelcnn_config
from agents.pixelcnn.data import build_dataset, ensure_dataset, load_dataset
from agents.pixelcnn.data import main as data_main
from agents.pixelcnn.train import PALETTE, run_pixelcnn_grid, sample_grid, to_rgb
from agents.pixelcnn.train import main as train_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pixelcnn.yaml"


def tiny(tmp_path: Path, **sections) -> dict:
    data = {
        "data": {"path": str(tmp_path / "frames.npz"), "n_frames": 40, "n_test_frames": 12, "n_envs": 2},
        "model": {"hidden_channels": 8, "n_layers": 2},
        "train": {
            "norms": ["wn", "bn"],
            "batch_sizes": [1, 4],
            "n_updates": 6,
            "eval_every": 3,
            "eval_frames": 6,
            "n_samples": 2,
            "logdir": str(tmp_path / "runs"),
        },
    }
    for name, values in sections.items():
        data[name].update(values)
    return data


def test_shipped_config_is_valid_and_overrides_resolve():
    config = load_pixelcnn_config(CONFIG, ["n_updates=7", "data.n_envs=3", "train.batch_sizes=[1]"])
    assert config.train.n_updates == 7 and config.data.n_envs == 3 and config.train.batch_sizes == (1,)
    assert 1 in load_pixelcnn_config(CONFIG).train.batch_sizes
    assert set(load_pixelcnn_config(CONFIG).train.norms) == {"none", "wn", "pixel_ln", "pixel_gn", "bn"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"train": {"norms": ["wn", "xx"]}},
            r"train\.norms\[1\]: must be one of none, wn, bn, pixel_ln, pixel_gn; got 'xx'",
        ),
        ({"train": {"batch_sizes": [0]}}, r"train\.batch_sizes\[0\].*>= 1"),
        ({"train": {"n_update": 5}}, r"train\.n_update: unknown key"),
        ({"model": {"arch": "wide"}}, r"model\.arch.*gated, plain"),
        ({"model": {"kernel_size": 4}}, r"model\.kernel_size.*odd"),
        ({"model": {"output": "gaussian"}}, r"model\.output.*softmax, logistic_mixture"),
        ({"data": {"policies": ["SAC:x.zip"]}}, r"data\.policies\[0\].*PPO, A2C, DQN"),
        ({"data": {"binary_mode": "onehot"}}, r"data\.binary_mode.*bits, argmax"),
        ({"train": {"lr": -1}}, r"train\.lr.*> 0"),
        ({"optim": {}}, r"optim: unknown section"),
    ],
)
def test_bad_config_values_name_the_field(data, message):
    with pytest.raises(ValueError, match=message):
        parse_pixelcnn_config(data)


def test_errors_are_config_errors_naming_file_and_field(tmp_path):
    from agents.config import ConfigError

    path = tmp_path / "p.yaml"
    path.write_text("train:\n  n_updates: 1e3\n  batch_sizes: [1, 8.0]\n  device: mps\n")
    config = load_pixelcnn_config(path)
    assert config.train.n_updates == 1000 and config.train.batch_sizes == (1, 8) and config.train.device == "mps"
    with pytest.raises(ConfigError) as info:
        load_pixelcnn_config(path, ["train.n_updates=2.5"])
    assert (info.value.source, info.value.field) == (str(path), "train.n_updates")
    assert str(info.value).endswith("must be an integer >= 1, got 2.5 (not a whole number)")
    with pytest.raises(ConfigError, match=r"train\.device: must be auto, cpu, mps, cuda or cuda:N; got 'gpu'"):
        parse_pixelcnn_config({"train": {"device": "gpu"}})
    with pytest.raises(ConfigError, match=r"train\.norms\[1\]: duplicate value 'wn'"):
        parse_pixelcnn_config({"train": {"norms": ["wn", "wn"]}})
    with pytest.raises(ConfigError, match=r"data\.bits: must be an integer in \[1, 8\], got 9"):
        parse_pixelcnn_config({"data": {"bits": 9}})


def test_former_norm_names_are_read_as_the_pixel_norms_with_a_warning():
    with pytest.warns(DeprecationWarning) as records:
        config = parse_pixelcnn_config({"train": {"norms": ["ln", "gn", "bn"]}})
    assert [str(r.message).split(" (")[0] for r in records] == [
        "train.norms[0]: 'ln' is the former name of 'pixel_ln'",
        "train.norms[1]: 'gn' is the former name of 'pixel_gn'",
    ]
    assert config.train.norms == ("pixel_ln", "pixel_gn", "bn")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"train\.norms\[1\]: duplicate"):
        parse_pixelcnn_config({"train": {"norms": ["ln", "pixel_ln"]}})


def test_renamed_pixelcnn_names_still_import_with_a_warning():
    import agents.pixelcnn.config
    import agents.pixelcnn.train

    with pytest.warns(DeprecationWarning, match="PixelCNNTrainConfig"):
        assert agents.pixelcnn.config.TrainConfig is agents.pixelcnn.config.PixelCNNTrainConfig
    with pytest.warns(DeprecationWarning, match="run_pixelcnn_grid"):
        assert agents.pixelcnn.train.run_grid is run_pixelcnn_grid
    with pytest.warns(DeprecationWarning, match="PixelCNNRunResult"):
        assert agents.pixelcnn.train.RunResult is agents.pixelcnn.train.PixelCNNRunResult


def test_ambiguous_or_unknown_override_is_rejected():
    with pytest.raises(ValueError, match="several sections"):
        apply_pixelcnn_overrides({}, ["seed=1"])
    with pytest.raises(ValueError, match="names no field"):
        apply_pixelcnn_overrides({}, ["epochs=1"])


def test_collected_dataset_holds_encoded_frames_of_the_real_env(tmp_path):
    config = parse_pixelcnn_config(tiny(tmp_path)).data
    path = build_dataset(config)
    data = load_dataset(path)
    assert data["train"].shape == (40, 1, 10, 10) and data["test"].shape == (12, 1, 10, 10)
    assert data["train"].dtype == np.uint8 and int(data["levels"]) == 16 and str(data["encoding"]) == "bits"
    assert data["train"].max() < 16 and data["train"].max() > 0  # the paddle and bricks are on screen
    assert str(data["env_id"]) == "MinAtar/Breakout-v1" and (data["train_policy"] == 0).all()
    # test frames come from other seeds: not a copy of the training stream
    assert not np.array_equal(data["train"][:12], data["test"])


def test_frames_from_a_trained_policy(tmp_path):
    env = envs.make_env("MinAtar/Breakout-v1", n_envs=1, seed=0)
    PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, device="cpu", seed=0).learn(32).save(
        tmp_path / "agent.zip"
    )
    env.close()
    config = parse_pixelcnn_config(tiny(tmp_path, data={"policies": ["random", f"PPO:{tmp_path / 'agent.zip'}"]}))
    data = load_dataset(build_dataset(config.data))
    assert sorted(set(data["train_policy"].tolist())) == [0, 1] and len(data["train"]) == 40
    with pytest.raises(FileNotFoundError, match=r"missing\.zip"):
        build_dataset(parse_pixelcnn_config(tiny(tmp_path, data={"policies": ["PPO:missing.zip"]})).data)


def test_load_dataset_rejects_other_npz(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a PixelCNN dataset"):
        load_dataset(tmp_path / "other.npz")


def test_training_grid_collects_data_logs_tensorboard_and_saves_samples(tmp_path):
    config = parse_pixelcnn_config(tiny(tmp_path))
    assert not Path(config.data.path).exists()
    results = run_pixelcnn_grid(config)
    assert Path(config.data.path).is_file()  # collected on demand
    assert [(r.norm, r.batch_size) for r in results] == [("wn", 1), ("wn", 4), ("bn", 1), ("bn", 4)]
    root = tmp_path / "runs" / "MinAtar_Breakout-v1"
    for r in results:
        run_dir = root / f"{r.norm}-b{r.batch_size}-s0"
        assert (run_dir / "samples.png").is_file()
        scalars = SummaryReader(str(run_dir)).scalars
        for tag in ("train/bits_per_dim", "test/bits_per_dim", "test/bits_per_dim_train_mode_b1"):
            values = scalars[scalars["tag"] == tag]
            assert list(values["step"]) == [3, 6] and np.isfinite(values["value"]).all()
    assert len((root / "summary.csv").read_text().splitlines()) == 5


def test_command_lines(tmp_path, capsys):
    data = tiny(tmp_path)
    overrides = [f"data.path={data['data']['path']}", "data.n_frames=8", "data.n_test_frames=4", "data.n_envs=2"]
    assert data_main([str(CONFIG), *overrides]) == 0
    assert "train (8, 1, 10, 10)" in capsys.readouterr().out
    assert ensure_dataset(parse_pixelcnn_config(data).data).is_file()
    assert train_main([str(CONFIG), "train.norms=[sn]"]) == 2
    assert "train.norms[0]" in capsys.readouterr().err


def test_sample_grid_tiles_images_with_borders():
    import torch

    samples = torch.tensor([[[[0, 7], [7, 0]]], [[[7, 7], [7, 7]]]])
    grid = sample_grid(samples, levels=8, columns=2)
    assert grid.shape == (4, 7, 3)
    assert (grid[1, 1] == 0).all() and (grid[1, 2] == 255).all() and (grid[1, 4] == 255).all()
    assert (grid[0, 0] == 128).all()


def test_minatar_samples_are_coloured_by_channel():
    images = np.array([[[0, 1, 2, 3]]])  # nothing, channel 0, channel 1, channels 0 and 1
    rgb = to_rgb(images, levels=16, encoding="bits")[0, 0]
    assert (rgb[0] == 0).all()
    assert (rgb[1] == PALETTE[0]).all() and (rgb[2] == PALETTE[1]).all()
    assert (rgb[3] == np.maximum(PALETTE[0], PALETTE[1])).all()
    collapsed = to_rgb(np.array([[[0, 2]]]), levels=5, encoding="argmax")[0, 0]
    assert (collapsed[0] == 0).all() and (collapsed[1] == PALETTE[1]).all()
    with pytest.raises(ValueError, match="encoding"):
        to_rgb(images, 16, "rgb")


def test_study_reads_summaries_saved_under_the_former_norm_names(tmp_path):
    from agents.studies.pixelcnn import load_summaries

    header = "norm,batch_size,train_bpd,test_bpd,test_bpd_train_mode_b1,seconds\n"
    (tmp_path / "old.csv").write_text(header + "ln,1,1.0,1.1,1.2,3\ngn,1,1.0,1.1,1.2,3\nbn,1,1.0,1.1,1.2,3\n")
    (tmp_path / "new.csv").write_text(header + "pixel_ln,1,1.0,1.1,1.2,3\n")
    results = load_summaries({0: tmp_path / "old.csv", 1: tmp_path / "new.csv"})
    assert list(results.norm) == ["pixel_ln", "pixel_gn", "bn", "pixel_ln"]


def test_saved_models_reload_and_the_study_reports_batch_norm_causality(tmp_path):
    import torch

    from agents.pixelcnn.causality import CAUSALITY_FILE, causal_bits_per_dim, measure_run
    from agents.pixelcnn.train import eval_bits_per_dim, load_run_model
    from agents.studies.pixelcnn import main as study_main

    logdir = tmp_path / "study_runs"  # seed 0's grid where the study looks for it
    data = tiny(
        tmp_path, data={"n_test_frames": 16}, train={"eval_frames": 8, "n_updates": 4, "logdir": str(logdir / "s0")}
    )
    results = run_pixelcnn_grid(parse_pixelcnn_config(data))
    test = torch.as_tensor(load_dataset(data["data"]["path"])["test"][:8]).long()
    root = logdir / "s0" / "MinAtar_Breakout-v1"
    for r in results:  # the saved model is the one that was evaluated
        model = load_run_model(root / f"{r.norm}-b{r.batch_size}-s0")
        assert not model.training and eval_bits_per_dim(model, test) == pytest.approx(r.test_bpd, abs=1e-6)
    # a causal model has no leak; batch norm's train mode differs from its future-blind evaluation
    wn = causal_bits_per_dim(load_run_model(root / "wn-b4-s0"), test[:3])
    assert wn["bpd_eval"] == pytest.approx(wn["bpd_future_blind_b1"], abs=1e-4) and abs(wn["leak_bpd"]) < 1e-4
    measured = measure_run(root / "bn-b4-s0", test, 3)
    assert abs(measured["causal_bpd"]["leak_bpd"]) > 0 and [r["score_batch"] for r in measured["leak"]] == [1, 2, 4, 8]
    assert measured["leak"][0]["other_images"] == 0 and all(r["future"] > 0 for r in measured["leak"])
    assert (root / "bn-b4-s0" / CAUSALITY_FILE).is_file() and measure_run(root / "bn-b4-s0", test, 3) == measured

    # the study over the same grid (seed 0's summary exists, so nothing is trained again)
    overrides = [f"data.path={data['data']['path']}", "train.norms=[wn,bn]", "train.batch_sizes=[1,4]"]
    overrides += ["train.eval_frames=8", f"train.logdir={logdir}"]
    assert study_main([str(CONFIG), *overrides, "--seeds", "0", "--out", str(tmp_path), "--causal-frames", "3"]) == 0
    report = (tmp_path / "study_pixelcnn" / "report.md").read_text()
    assert "## test bits/dim, causal (eval mode" in report and "## Batch norm in train mode is not causal" in report
    assert "| bn (not causal) |" in report and "| wn (not causal) |" not in report
    assert "### bn trained at batch 4: the leak vs the scoring batch size B" in report
    causal = (tmp_path / "study_pixelcnn" / "causal_bpd.csv").read_text().splitlines()
    assert len(causal) == 3 and causal[0].startswith("norm,batch_size,seed,frames,bpd_eval")
    assert study_main([str(CONFIG), "--causal-frames", "1"]) == 2
