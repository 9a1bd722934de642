"""rlnorm.validation: the one error type and the field validators every config and option check uses."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from rlnorm.validation import (
    ConfigError,
    check_bool,
    check_choice,
    check_device,
    check_float,
    check_int,
    check_keys,
    check_list,
    check_mapping,
    check_non_negative,
    check_positive,
    check_probability,
    check_str,
)


def test_error_names_source_field_and_problem_on_one_line() -> None:
    err = ConfigError("x.yaml", "train.n_envs", "must be an integer >= 1,\ngot 0")
    assert isinstance(err, ValueError)
    assert (err.source, err.field, err.problem) == ("x.yaml", "train.n_envs", "must be an integer >= 1,\ngot 0")
    assert str(err) == "x.yaml: train.n_envs: must be an integer >= 1, got 0"
    assert str(ConfigError("", "n_envs", "bad")) == "n_envs: bad"
    moved = ConfigError("", "exploration.beta", "bad").with_source("c.yaml")
    assert str(moved) == "c.yaml: exploration.beta: bad" and moved.field == "exploration.beta"


def test_error_survives_pickling() -> None:
    # process pools send a worker's error back pickled
    err = pickle.loads(pickle.dumps(ConfigError("x.yaml", "seeds[1]", "duplicate value 0")))
    assert (err.source, err.field, err.problem) == ("x.yaml", "seeds[1]", "duplicate value 0")
    assert str(err) == "x.yaml: seeds[1]: duplicate value 0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (10000.0, 10000), (1e4, 10000), (1.5e3, 1500), (np.int64(7), 7), (np.float32(4.0), 4)],
)
def test_int_accepts_integers_and_whole_floats(value: object, expected: int) -> None:
    result = check_int(value, "n", 0)
    assert result == expected and type(result) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2.5, r"^n: must be an integer >= 1, got 2\.5 \(not a whole number\)$"),
        (float("inf"), r"^n: must be an integer >= 1, got inf \(not a whole number\)$"),
        (float("nan"), r"^n: must be an integer >= 1, got nan \(not a whole number\)$"),
        ("1e4.5", r"^n: must be an integer >= 1, got '1e4\.5'$"),
        ("10", r"^n: must be an integer >= 1, got '10'$"),
        (True, r"^n: must be an integer >= 1, got True$"),
        (None, r"^n: must be an integer >= 1, got None$"),
        (0, r"^n: must be an integer >= 1, got 0$"),
        (0.0, r"^n: must be an integer >= 1, got 0$"),
    ],
)
def test_int_refuses_the_rest_naming_field_and_bound(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_int(value, "n", 1)


def test_int_bounds_and_source() -> None:
    assert check_int(-4, "offset") == -4
    with pytest.raises(ConfigError, match=r"^bits: must be an integer in \[1, 8\], got 9$"):
        check_int(9, "bits", 1, maximum=8)
    with pytest.raises(ConfigError, match=r"^c\.yaml: seed: must be an integer >= 0, got -1$"):
        check_int(-1, "seed", 0, source="c.yaml")


def test_floats() -> None:
    assert check_float(3, "x") == 3.0 and type(check_float(3, "x")) is float
    assert check_positive(1e-3, "lr") == 1e-3
    assert check_non_negative(0, "std") == 0.0
    assert check_probability(1, "p") == 1.0
    with pytest.raises(ConfigError, match=r"^lr: must be a finite number > 0, got 0$"):
        check_positive(0, "lr")
    with pytest.raises(ConfigError, match=r"^std: must be a finite number >= 0, got nan$"):
        check_non_negative(float("nan"), "std")
    with pytest.raises(ConfigError, match=r"^gamma: must be a finite number in \[0, 1\], got 1\.5$"):
        check_float(1.5, "gamma", minimum=0, maximum=1)
    with pytest.raises(ConfigError, match=r"^x: must be a finite number <= 2, got 3$"):
        check_float(3, "x", maximum=2)
    with pytest.raises(ConfigError, match=r"^x: must be a finite number, got '3'$"):
        check_float("3", "x")
    with pytest.raises(ConfigError, match=r"^p: must be a probability in \[0, 1\], got True$"):
        check_probability(True, "p")


def test_bool_and_str() -> None:
    assert check_bool(False, "flag") is False
    assert check_str("a", "name") == "a"
    with pytest.raises(ConfigError, match=r"^flag: must be true or false, got 1$"):
        check_bool(1, "flag")
    with pytest.raises(ConfigError, match=r"^name: must be a non-empty string, got ''$"):
        check_str("", "name")


def test_choice_lists_allowed_values_and_suggests_the_closest() -> None:
    assert check_choice("ray", "sweep.backend", ("local", "ray")) == "ray"
    message = r"^sweep\.backend: must be one of local, ray; got 'rya' \(did you mean 'ray'\?\)$"
    with pytest.raises(ConfigError, match=message):
        check_choice("rya", "sweep.backend", ("local", "ray"))
    with pytest.raises(ConfigError, match=r"^k: must be one of 1, 2; got True$"):
        check_choice(True, "k", (1, 2))
    with pytest.raises(ConfigError, match=r"^k: must be one of a, b; got \['a'\]$"):
        check_choice(["a"], "k", ("a", "b"))


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "cuda", "cuda:1"])
def test_device_accepts_the_torch_devices(device: str) -> None:
    assert check_device(device, "device") == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "", None, "CPU"])
def test_device_refuses_the_rest(device: object) -> None:
    with pytest.raises(ConfigError, match=r"^device: must be auto, cpu, mps, cuda or cuda:N; got "):
        check_device(device, "device")


def test_mapping_keys_and_lists() -> None:
    assert check_mapping({"a": 1}, "m") == {"a": 1}
    with pytest.raises(ConfigError, match=r"^m: must be a mapping, got list \[1\]$"):
        check_mapping([1], "m")
    with pytest.raises(ConfigError, match=r"^m\.1: keys must be strings$"):
        check_mapping({1: 2}, "m")
    check_keys({"n_envs": 1}, "train", ("n_envs", "seed"))
    with pytest.raises(ConfigError, match=r"^train\.n_env: unknown key; did you mean 'n_envs'\?$"):
        check_keys({"n_env": 1}, "train", ("n_envs", "seed"))
    with pytest.raises(ConfigError, match=r"^zzz: unknown key; valid keys: n_envs, seed$"):
        check_keys({"zzz": 1}, "", ("n_envs", "seed"))
    with pytest.raises(ConfigError, match=r"^train\.seed: missing \(required\)$"):
        check_keys({}, "train", ("n_envs", "seed"), required=("seed",))
    assert check_list((1, 2), "seeds", unique=True) == [1, 2]
    with pytest.raises(ConfigError, match=r"^seeds\[2\]: duplicate value 1$"):
        check_list([0, 1, 1], "seeds", unique=True)
    with pytest.raises(ConfigError, match=r"^seeds: must not be empty$"):
        check_list([], "seeds")
    with pytest.raises(ConfigError, match=r"^seeds: must be a list, got 'abc'$"):
        check_list("abc", "seeds")
