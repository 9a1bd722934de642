"""Schema of ``configs/pixelcnn.yaml``: the frame dataset, the PixelCNN and the norm x batch-size grid.

Layout::

    data:   {env_id, path, n_frames, n_test_frames, n_envs, seed, keep_every, policies, size, bits, binary_mode}
    model:  {arch, hidden_channels, n_layers, kernel_size, output, n_mixtures}
    train:  {norms, batch_sizes, n_updates, lr, eval_every, eval_frames, n_samples, seed, device, logdir}

Every unknown key and bad value raises :class:`~rlnorm.validation.ConfigError` (the experiment configs' error,
a ``ValueError``) naming the file, the dotted field and the allowed values before anything is built.
``key=value`` overrides use dotted keys (``train.n_updates=200``); a key that names exactly one field of a
section is resolved to it (``n_updates=200``). The norms are the PixelCNN's (``pixel_ln``, ``pixel_gn``, ...;
the former ``ln`` / ``gn`` are read as those, with a ``DeprecationWarning``).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.config import load_yaml, parse_override
from rlnorm.pixelcnn.frames import BINARY_MODES
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS, check_pixelcnn_norm
from rlnorm.pixelcnn.model import ARCHS, OUTPUTS
from rlnorm.validation import (
    ConfigError,
    check_choice,
    check_device,
    check_int,
    check_keys,
    check_list,
    check_mapping,
    check_positive,
    check_str,
)

#: Algorithms a trained data-collection policy may come from (``"<ALGO>:<path to .zip>"``).
POLICY_ALGOS: tuple[str, ...] = ("PPO", "A2C", "DQN")


@dataclass(frozen=True)
class DataConfig:
    """Frames to collect (``python -m agents.pixelcnn.data``).

    :param env_id: an image env of ``envs.make_env`` (Atari or MinAtar)
    :param path: the ``.npz`` file written
    :param n_frames: training frames (split evenly between ``policies``)
    :param n_test_frames: test frames, collected on envs seeded apart from the training ones
    :param n_envs: parallel envs while collecting
    :param seed: seed of the training envs (test envs use ``seed + 10_000``)
    :param keep_every: keep one vector step in ``keep_every`` (consecutive frames are near duplicates)
    :param policies: ``"random"`` or ``"<ALGO>:<model.zip>"`` (a trained SB3 model), one or more
    :param size: Atari frames are downsampled to ``size x size``
    :param bits: Atari grey-level bits
    :param binary_mode: MinAtar channel encoding, ``bits`` or ``argmax``
    """

    env_id: str = "MinAtar/Breakout-v1"
    path: str = "data/pixelcnn/minatar_breakout.npz"
    n_frames: int = 6000
    n_test_frames: int = 1000
    n_envs: int = 4
    seed: int = 0
    keep_every: int = 2
    policies: tuple[str, ...] = ("random",)
    size: int = 42
    bits: int = 3
    binary_mode: str = "bits"


@dataclass(frozen=True)
class ModelConfig:
    """The PixelCNN shared by every norm (see :class:`rlnorm.pixelcnn.model.PixelCNN`; ``output`` is ``softmax`` or
    ``logistic_mixture`` with ``n_mixtures`` components)."""

    arch: str = "gated"
    hidden_channels: int = 16
    n_layers: int = 4
    kernel_size: int = 3
    output: str = "softmax"
    n_mixtures: int = 5


@dataclass(frozen=True)
class PixelCNNTrainConfig:
    """The grid: one run per (norm, batch size), each ``n_updates`` Adam steps.

    :param norms: from :data:`~rlnorm.pixelcnn.layers.PIXELCNN_NORMS`
    :param batch_sizes: training batch sizes (include 1: the online setting)
    :param n_updates: gradient steps per run (the same for every batch size)
    :param lr: Adam learning rate
    :param eval_every: test bits/dim every this many updates (and at the end)
    :param eval_frames: test frames used per evaluation (the first ones of the test set), scored in eval
        mode and one at a time in train mode
    :param n_samples: images in the final sample grid
    :param seed: torch seed of every run
    :param device: ``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``
    :param logdir: root of the TensorBoard runs
    """

    norms: tuple[str, ...] = PIXELCNN_NORMS
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    n_updates: int = 1000
    lr: float = 1e-3
    eval_every: int = 200
    eval_frames: int = 256
    n_samples: int = 16
    seed: int = 0
    device: str = "cpu"
    logdir: str = "runs/pixelcnn"


@dataclass(frozen=True)
class PixelCNNExperiment:
    """The whole ``configs/pixelcnn.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: PixelCNNTrainConfig = field(default_factory=PixelCNNTrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-able data (tuples become lists)."""
        return {
            name: {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}
            for name, section in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
        }


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": PixelCNNTrainConfig}
_POSITIVE_INTS = {"n_frames", "n_test_frames", "n_envs", "keep_every", "size", "bits", "hidden_channels"}
_POSITIVE_INTS |= {"n_layers", "kernel_size", "n_updates", "eval_every", "eval_frames", "n_samples", "n_mixtures"}
_CHOICES: dict[str, tuple[str, ...]] = {"arch": ARCHS, "output": OUTPUTS, "binary_mode": BINARY_MODES}


def _check_policy(value: Any, path: str) -> str:
    if value == "random":
        return value
    algo, sep, model_path = str(value).partition(":")
    if not sep or algo not in POLICY_ALGOS or not model_path:
        raise ConfigError(
            "",
            path,
            f"must be 'random' or '<ALGO>:<model.zip>' with ALGO in {', '.join(POLICY_ALGOS)}, got {value!r}",
        )
    return value


def _check_value(key: str, value: Any, path: str) -> Any:
    """``value`` of the field ``key`` checked (and converted) by the validator of its kind."""
    if key in _POSITIVE_INTS:
        return check_int(value, path, 1, maximum=8 if key == "bits" else None)
    if key == "seed":
        return check_int(value, path, 0)
    if key == "lr":
        return check_positive(value, path)
    if key == "device":
        return check_device(value, path)
    if key in _CHOICES:
        return check_choice(value, path, _CHOICES[key])
    item_checks = {
        "norms": check_pixelcnn_norm,
        "batch_sizes": lambda v, p: check_int(v, p, 1),
        "policies": _check_policy,
    }
    if key in item_checks:
        items = [item_checks[key](v, f"{path}[{i}]") for i, v in enumerate(check_list(value, path))]
        return tuple(check_list(items, path, unique=True))
    return check_str(value, path)


def _parse_section(name: str, data: Any) -> Any:
    cls = _SECTIONS[name]
    if data is None:
        return cls()
    data = check_mapping(data, name)
    check_keys(data, name, [f.name for f in dataclasses.fields(cls)])
    values = {key: _check_value(key, value, f"{name}.{key}") for key, value in data.items()}
    if values.get("kernel_size", 1) % 2 == 0:
        raise ConfigError("", f"{name}.kernel_size", f"must be odd, got {values['kernel_size']}")
    return cls(**values)


def parse_pixelcnn_config(data: Any, source: str = "<config>") -> PixelCNNExperiment:
    """Validate raw YAML data into a :class:`PixelCNNExperiment`.

    :param data: the parsed document (a mapping with ``data``, ``model``, ``train``)
    :param source: name used in error messages (usually the file path)
    :raises ConfigError: on the first unknown key or bad value
    """
    if data is None:
        data = {}
    try:
        data = check_mapping(data, "<top level>")
        unknown = sorted(set(data) - set(_SECTIONS))
        if unknown:
            raise ConfigError("", unknown[0], f"unknown section; allowed: {', '.join(_SECTIONS)}")
        return PixelCNNExperiment(**{name: _parse_section(name, data.get(name)) for name in _SECTIONS})
    except ConfigError as err:
        if err.source:
            raise
        raise err.with_source(source) from None


def apply_pixelcnn_overrides(data: Any, overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted, or a field name unique to one section) to raw data."""
    data = copy.deepcopy(dict(data or {}))
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        if len(parts) == 1:
            owners = [s for s, cls in _SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
            if len(owners) != 1:
                where = f"is in several sections ({', '.join(owners)})" if owners else "names no field"
                raise ConfigError("<command line>", key, f"override {where}; use section.key")
            parts = [owners[0], key]
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            problem = f"overrides are <section>.<key> with section in {', '.join(_SECTIONS)}"
            raise ConfigError("<command line>", key, problem)
        section = data.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise ConfigError("<command line>", parts[0], "is not a section")
        section[parts[1]] = value
    return data


def load_pixelcnn_config(path: str | Path, overrides: Sequence[str] = ()) -> PixelCNNExperiment:
    """Load, override and validate a PixelCNN config file.

    :param path: the YAML file
    :param overrides: ``key=value`` strings
    """
    return parse_pixelcnn_config(apply_pixelcnn_overrides(load_yaml(path), overrides), source=str(path))


def __getattr__(name: str) -> Any:
    # the experiment configs have a TrainConfig of their own (agents.config.TrainConfig)
    if name == "TrainConfig":
        warnings.warn("agents.pixelcnn.config.TrainConfig is now PixelCNNTrainConfig", DeprecationWarning, stacklevel=2)
        return PixelCNNTrainConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
