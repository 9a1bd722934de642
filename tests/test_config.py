"""Experiment config schema: every shipped config loads; unknown keys and bad values fail early, one line each."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.config import ConfigError, apply_overrides, load_config, parse_config
from agents.pipeline.sweep import preflight

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMOKE = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())


def _error(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x.yaml")
    return info.value


# every experiment config shipped in configs/ (the PixelCNN ones have their own schema and tests)
EXPERIMENT_CONFIGS = sorted(p.stem for p in CONFIGS.glob("*.yaml") if "pixelcnn" not in p.stem)


def test_known_configs_are_shipped() -> None:
    assert {"default", "smoke", "atari", "atari_dqn", "recurrent", "study_noise_trained"} <= set(EXPERIMENT_CONFIGS)


@pytest.mark.parametrize("name", EXPERIMENT_CONFIGS)
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.norms and config.envs and config.seeds
    assert config.train.total_timesteps > 0


def test_default_config_is_the_cpu_comparison() -> None:
    config = load_config(CONFIGS / "default.yaml")
    assert config.algo == "PPO"
    assert set(config.norms) >= {"none", "bn", "wn", "ln"}
    assert len(config.seeds) >= 2
    assert all(env.startswith("MinAtar/") for env in config.envs)
    assert config.eval.noise, "the default experiment evaluates under observation noise"


def test_negative_timesteps_names_file_field_and_value() -> None:
    data = copy.deepcopy(SMOKE)
    data["train"]["total_timesteps"] = -5
    assert str(_error(data)) == "x.yaml: train.total_timesteps: must be an integer >= 1, got -5"


@pytest.mark.parametrize(
    ("path", "bad_key", "suggestion"),
    [
        ((), "seed", "seeds"),
        (("train",), "total_timestep", "total_timesteps"),
        (("eval",), "n_episode", "n_episodes"),
        (("hyperparams", "default"), "n_step", "n_steps"),
    ],
)
def test_unknown_key_suggests_closest(path: tuple[str, ...], bad_key: str, suggestion: str) -> None:
    data = copy.deepcopy(SMOKE)
    node = data
    for part in path:
        node = node[part]
    node[bad_key] = 1
    err = _error(data)
    assert err.field == ".".join((*path, bad_key))
    assert f"did you mean {suggestion!r}" in str(err)


def test_unknown_norm_lists_allowed() -> None:
    from rlnorm.layers import LAYER_NORMS

    data = copy.deepcopy(SMOKE)
    data["norms"] = ["wn", "batchnorm"]
    err = _error(data)
    assert err.field == "norms[1]"
    assert all(n in str(err) for n in LAYER_NORMS)


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        ({"algo": "PPO2"}, "algo"),
        ({"seeds": [0, 0]}, "seeds[1]"),
        ({"seeds": []}, "seeds"),
        ({"device": "gpu"}, "device"),
        ({"network": "resnet"}, "network"),
        ({"experiment": "a b"}, "experiment"),
        ({"eval": {"noise": [{"kind": "gaussian", "levels": [-0.1]}]}}, "eval.noise[0].levels[0]"),
        ({"eval": {"noise": [{"kind": "blur", "levels": [0.1]}]}}, "eval.noise[0].kind"),
        ({"eval": {"n_episodes": 0}}, "eval.n_episodes"),
        ({"eval": {"n_envs": 1}}, "eval.n_envs"),
        ({"hyperparams": {"CartPole-v2": {"n_steps": 8}}}, "hyperparams.CartPole-v2"),
        ({"hyperparams": {"default": {"gamma": 1.5}}}, "hyperparams.default.gamma"),
        ({"hyperparams": {"default": {"seed": 3}}}, "hyperparams.default.seed"),
        ({"hyperparams": {"default": {"learning_rate": "fast"}}}, "hyperparams.default.learning_rate"),
        ({"policy_kwargs": {"norm": "wn"}}, "policy_kwargs.norm"),
        ({"policy_kwargs": {"activation_fn": "swish"}}, "policy_kwargs.activation_fn"),
        ({"exploration": {"kind": "pseudocount", "beta": -1}}, "exploration.beta"),
        ({"sweep": {"backend": "slurm"}}, "sweep.backend"),
    ],
)
def test_bad_values_name_the_field(mutation: dict, field: str) -> None:
    data = copy.deepcopy(SMOKE)
    for key, value in mutation.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    err = _error(data)
    assert err.field == field, str(err)
    assert "\n" not in str(err)


def test_unknown_env_fails_in_preflight_naming_it() -> None:
    config = parse_config({**SMOKE, "envs": ["CartPole-v1", "NoSuchGame-v9"]}, "x.yaml")
    with pytest.raises(ConfigError) as info:
        preflight(config, "x.yaml")
    assert info.value.field == "envs[1]"
    assert "NoSuchGame-v9" in str(info.value)


def test_overrides_dotted_shortcut_and_yaml_values() -> None:
    data = apply_overrides(SMOKE, ["total_timesteps=20000", "seeds=[0, 3]", "eval.n_episodes=2", "norms=[wn]"])
    config = parse_config(data)
    assert config.train.total_timesteps == 20000
    assert config.seeds == (0, 3)
    assert config.eval.n_episodes == 2
    assert config.norms == ("wn",)
    assert SMOKE["train"]["total_timesteps"] != 20000, "the input document is not modified"
    assert parse_config(apply_overrides(SMOKE, ["train.torch_threads=2"])).train.torch_threads == 2
    with pytest.raises(ConfigError, match=r"train\.torch_threads"):
        parse_config(apply_overrides(SMOKE, ["train.torch_threads=-1"]))
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(SMOKE, ["total_timesteps"])
    with pytest.raises(ConfigError, match=r"ambiguous; write train.n_envs or eval.n_envs"):
        apply_overrides(SMOKE, ["n_envs=2"])


def test_env_hyperparams_merge_default_and_env() -> None:
    data = copy.deepcopy(SMOKE)
    data["hyperparams"]["CartPole-v1"] = {"n_steps": 64, "n_envs": 2}
    config = parse_config(data)
    merged = config.env_hyperparams("CartPole-v1")
    assert merged["n_steps"] == 64 and merged["batch_size"] == SMOKE["hyperparams"]["default"]["batch_size"]
    assert "n_envs" not in merged
    assert config.env_n_envs("CartPole-v1") == 2


# --------------------------------------------------------------------------- fuzzing: bad YAML never trains

_INT_FIELDS = [
    ("train", "total_timesteps", 1),
    ("train", "n_envs", 1),
    ("train", "checkpoint_freq", 1),
    ("eval", "n_episodes", 1),
    ("eval", "n_envs", 1),
    ("eval", "freq", 0),
    ("diagnostics", "freq", 0),
    ("sweep", "workers", 0),
]
_CHOICE_FIELDS = [("algo",), ("network",), ("sweep", "backend"), ("norms", 0), ("eval", "noise", 0, "kind")]
_SECTIONS = [(), ("train",), ("eval",), ("diagnostics",), ("sweep",), ("hyperparams", "default")]
_VALID_NAMES = {
    "experiment", "algo", "norms", "envs", "seeds", "train", "network", "device", "hyperparams", "policy_kwargs",
    "env_options", "eval", "diagnostics", "sweep", "exploration", "runs_dir", "reports_dir", "total_timesteps",
    "n_envs", "checkpoint_freq", "progress_bar", "log_interval", "save_replay_buffer", "freq", "n_episodes",
    "deterministic", "noise", "bn_modes", "workers", "backend",
}  # fmt: skip
_junk = st.one_of(
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)


def _set(data: dict, path: tuple, value: object) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@st.composite
def bad_documents(draw: st.DrawFn) -> tuple[str, str]:
    """A YAML text that must be rejected, and the field its error must name."""
    data = copy.deepcopy(SMOKE)
    kind = draw(st.sampled_from(["int", "choice", "unknown", "missing", "type", "syntax"]))
    if kind == "int":
        section, key, minimum = draw(st.sampled_from(_INT_FIELDS))
        # a float is bad unless it is a whole number within the bounds (1e4 is a valid count)
        bad_float = st.floats().filter(lambda f: not (math.isfinite(f) and f.is_integer() and f >= minimum))
        data[section][key] = draw(st.integers(max_value=minimum - 1) | st.text(max_size=4) | bad_float)
        return yaml.safe_dump(data), f"{section}.{key}"
    if kind == "choice":
        path = draw(st.sampled_from(_CHOICE_FIELDS))
        _set(data, path, draw(st.text(alphabet="abcxyz_", min_size=1, max_size=6)))
        field = ".".join(p if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        return yaml.safe_dump(data), field
    if kind == "unknown":
        section = draw(st.sampled_from(_SECTIONS))
        key = draw(st.text(alphabet="abcdefgz_", min_size=1, max_size=10).filter(lambda k: k not in _VALID_NAMES))
        node = data
        for part in section:
            node = node[part]
        node[key] = draw(_junk)
        return yaml.safe_dump(data), ".".join((*section, key))
    if kind == "missing":
        key = draw(st.sampled_from(["experiment", "algo", "norms", "envs", "seeds", "train"]))
        del data[key]
        return yaml.safe_dump(data), key
    if kind == "type":
        key = draw(st.sampled_from(["train", "eval", "norms", "seeds", "hyperparams", "policy_kwargs"]))
        data[key] = draw(st.integers() | st.text(alphabet="abc ", min_size=1, max_size=5))
        return yaml.safe_dump(data), key
    text = draw(st.sampled_from(["train: [1, 2\n", "a: b: c\n", "- 1\n- 2\n", "42\n", "experiment: 'x\n"]))
    return text, ""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bad_documents())
def test_fuzzed_bad_yaml_never_trains(case: tuple[str, str], tmp_path: Path, monkeypatch, capsys) -> None:
    import agents.pipeline.sweep
    from agents.commands import main

    text, field = case

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started on an invalid config")

    monkeypatch.setattr(agents.pipeline.sweep, "run_grid", must_not_run)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    runs = tmp_path / "runs_never"
    status = main([str(path), f"runs_dir={runs}"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {path}: {field}"), (err, field)
    assert not runs.exists()


# --------------------------------------------------------------------------- one error type, one table each


def test_whole_number_floats_are_accepted_for_integer_fields(tmp_path: Path) -> None:
    text = yaml.safe_dump(SMOKE).replace("total_timesteps:", "total_timesteps: 1e4 #")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.train.total_timesteps == 10000 and type(config.train.total_timesteps) is int
    assert load_config(path, ["total_timesteps=1.5e3"]).train.total_timesteps == 1500
    assert load_config(path, ["train.n_envs=2.0", "seeds=[1e0, 2]"]).seeds == (1, 2)
    assert parse_config({**SMOKE, "train": {**SMOKE["train"], "total_timesteps": 2e4}}).train.total_timesteps == 20000
    for bad, shown in (
        ("1e4.5", "'1e4.5'"),
        ("2.5", "2.5 (not a whole number)"),
        ("1e-2", "0.01 (not a whole number)"),
    ):
        with pytest.raises(ConfigError) as info:
            load_config(path, [f"total_timesteps={bad}"])
        assert info.value.field == "train.total_timesteps"
        assert str(info.value) == f"{path}: train.total_timesteps: must be an integer >= 1, got {shown}"


def test_exponent_numbers_in_yaml_are_numbers() -> None:
    from agents.config import yaml_load

    assert yaml_load("a: 1e4\nb: 1.5e3\nc: 2.5e-4\nd: 1e4.5\ne: 10\nf: '1e4'\ng: 1_000") == {
        "a": 10000.0, "b": 1500.0, "c": 2.5e-4, "d": "1e4.5", "e": 10, "f": "1e4", "g": 1000,
    }  # fmt: skip
    data = copy.deepcopy(SMOKE)
    data["hyperparams"]["default"].update(learning_rate=yaml_load("1e-3"), n_steps=yaml_load("1.28e2"))
    params = parse_config(data).hyperparams["default"]
    assert params["learning_rate"] == 1e-3
    assert params["n_steps"] == 128 and type(params["n_steps"]) is int  # PPO's n_steps is an integer


def test_one_config_error_class_everywhere() -> None:
    import agents.config
    import envs.checks
    import rlnorm
    from rlnorm.validation import ConfigError as Base

    assert ConfigError is Base is rlnorm.ConfigError is envs.checks.ConfigError is agents.config.schema.ConfigError


def test_exploration_errors_name_file_and_field_without_parsing_messages() -> None:
    data = {**SMOKE, "exploration": {"kind": "pseudocount", "norm": "in", "beta": 0.1}}
    err = _error(data)
    assert (err.source, err.field) == ("x.yaml", "exploration.norm")
    assert err.problem == "must be one of none, wn, bn, pixel_ln, pixel_gn; got 'in' (did you mean 'wn'?)"
    err = _error({**SMOKE, "exploration": {"kind": "pseudocount", "n_layers": 0}})
    assert (err.source, err.field) == ("x.yaml", "exploration.n_layers")


def test_exploration_block_is_kept_as_written() -> None:
    # the run's recorded config must still equal a re-read of the same file when it resumes
    block = {"kind": "pseudocount", "hidden_channels": 8.0, "device": "mps"}
    assert parse_config({**SMOKE, "exploration": block}).exploration == block
    with pytest.warns(DeprecationWarning, match="former name of 'pixel_ln'"):
        config = parse_config({**SMOKE, "exploration": {"kind": "pseudocount", "norm": "ln"}})
    assert config.exploration["norm"] == "ln"


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "cuda", "cuda:3"])
def test_every_device_field_takes_the_same_devices(device: str) -> None:
    from agents.exploration import PseudoCountConfig
    from agents.pixelcnn.config import parse_pixelcnn_config

    assert parse_config({**SMOKE, "device": device}).device == device
    assert PseudoCountConfig(device=device).device == device
    assert parse_pixelcnn_config({"train": {"device": device}}).train.device == device


def test_allowed_names_come_from_their_tables() -> None:
    import agents.config
    from envs.noise import NOISE_KIND_OPTIONS
    from rlnorm.layers import ACTIVATIONS, LAYER_NORMS

    assert agents.config.ACTIVATIONS is ACTIVATIONS
    assert agents.config.NOISE_KIND_OPTIONS is NOISE_KIND_OPTIONS
    assert tuple(NOISE_KIND_OPTIONS) == agents.config.NOISE_KINDS
    assert agents.config.BATCH_STAT_NORMS == ("bn", "brn")
    err = _error({**SMOKE, "policy_kwargs": {"activation_fn": "swish"}})
    assert all(name in err.problem for name in ACTIVATIONS)
    err = _error({**SMOKE, "eval": {"noise": [{"kind": "blur", "levels": [0.1]}]}})
    assert all(kind in err.problem for kind in NOISE_KIND_OPTIONS)
    assert all(n in _error({**SMOKE, "norms": ["x"]}).problem for n in LAYER_NORMS)


@pytest.mark.parametrize(("old", "new"), [("BACKENDS", "SWEEP_BACKENDS"), ("NOISE_OPTIONS", "NOISE_KIND_OPTIONS")])
def test_renamed_constants_still_import_with_a_warning(old: str, new: str) -> None:
    import agents.config

    with pytest.warns(DeprecationWarning, match=f"agents.config.{old} is now agents.config.{new}"):
        value = getattr(agents.config, old)
    assert value is getattr(agents.config, new)
