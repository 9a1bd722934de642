"""Schema of ``configs/pixelcnn.yaml``: the frame dataset, the PixelCNN and the norm x batch-size grid.

Layout::

    data:   {env_id, path, n_frames, n_test_frames, n_envs, seed, keep_every, policies, size, bits, binary_mode}
    model:  {arch, hidden_channels, n_layers, kernel_size, output, n_mixtures}
    train:  {norms, batch_sizes, n_updates, lr, eval_every, eval_frames, n_samples, seed, device, logdir}

Every unknown key and bad value raises ``ValueError`` naming the dotted field (and the allowed values)
before anything is built. ``key=value`` overrides use dotted keys (``train.n_updates=200``); a key that
names exactly one field of a section is resolved to it (``n_updates=200``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.config import load_yaml, parse_override
from rlnorm.pixelcnn.frames import BINARY_MODES
from rlnorm.pixelcnn.layers import PIXELCNN_NORMS
from rlnorm.pixelcnn.model import ARCHS, OUTPUTS

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
class TrainConfig:
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
    :param device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``
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
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-able data (tuples become lists)."""
        return {
            name: {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}
            for name, section in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
        }


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
_POSITIVE_INTS = {"n_frames", "n_test_frames", "n_envs", "keep_every", "size", "bits", "hidden_channels"}
_POSITIVE_INTS |= {"n_layers", "kernel_size", "n_updates", "eval_every", "eval_frames", "n_samples", "n_mixtures"}


def _fail(path: str, problem: str) -> ValueError:
    return ValueError(f"{path}: {problem}")


def _check_int(value: Any, path: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(path, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _check_choice(value: Any, path: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise _fail(path, f"got {value!r}; choose one of {', '.join(allowed)}")
    return value


def _check_policy(value: Any, path: str) -> str:
    if value == "random":
        return value
    algo, sep, model_path = str(value).partition(":")
    if not sep or algo not in POLICY_ALGOS or not model_path:
        raise _fail(
            path, f"must be 'random' or '<ALGO>:<model.zip>' with ALGO in {', '.join(POLICY_ALGOS)}, got {value!r}"
        )
    return value


def _parse_section(name: str, data: Any) -> Any:
    cls = _SECTIONS[name]
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise _fail(name, f"must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise _fail(f"{name}.{unknown[0]}", f"unknown key; allowed keys: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{name}.{key}"
        if key in _POSITIVE_INTS:
            value = _check_int(value, path, 1)
        elif key == "seed":
            value = _check_int(value, path, 0)
        elif key == "lr":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise _fail(path, f"must be a number > 0, got {value!r}")
            value = float(value)
        elif key in ("norms", "batch_sizes", "policies"):
            if not isinstance(value, (list, tuple)) or not value:
                raise _fail(path, f"must be a non-empty list, got {value!r}")
            if key == "norms":
                value = tuple(_check_choice(v, f"{path}[{i}]", PIXELCNN_NORMS) for i, v in enumerate(value))
            elif key == "batch_sizes":
                value = tuple(_check_int(v, f"{path}[{i}]", 1) for i, v in enumerate(value))
            else:
                value = tuple(_check_policy(v, f"{path}[{i}]") for i, v in enumerate(value))
            if len(set(value)) != len(value):
                raise _fail(path, f"has duplicates: {list(value)}")
        elif key == "arch":
            value = _check_choice(value, path, ARCHS)
        elif key == "output":
            value = _check_choice(value, path, OUTPUTS)
        elif key == "binary_mode":
            value = _check_choice(value, path, BINARY_MODES)
        elif not isinstance(value, str) or not value:
            raise _fail(path, f"must be a non-empty string, got {value!r}")
        values[key] = value
    if values.get("kernel_size", 1) % 2 == 0:
        raise _fail(f"{name}.kernel_size", f"must be odd, got {values['kernel_size']}")
    if values.get("bits", 1) > 8:
        raise _fail(f"{name}.bits", f"must be in 1..8, got {values['bits']}")
    return cls(**values)


def parse_pixelcnn_config(data: Any) -> PixelCNNExperiment:
    """Validate raw YAML data into a :class:`PixelCNNExperiment`.

    :param data: the parsed document (a mapping with ``data``, ``model``, ``train``)
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _fail("<config>", f"must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise _fail(unknown[0], f"unknown section; allowed: {', '.join(_SECTIONS)}")
    return PixelCNNExperiment(**{name: _parse_section(name, data.get(name)) for name in _SECTIONS})


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
                raise _fail(key, f"override {where}; use section.key")
            parts = [owners[0], key]
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            raise _fail(key, f"overrides are <section>.<key> with section in {', '.join(_SECTIONS)}")
        section = data.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise _fail(parts[0], "is not a section")
        section[parts[1]] = value
    return data


def load_pixelcnn_config(path: str | Path, overrides: Sequence[str] = ()) -> PixelCNNExperiment:
    """Load, override and validate a PixelCNN config file.

    :param path: the YAML file
    :param overrides: ``key=value`` strings
    """
    return parse_pixelcnn_config(apply_pixelcnn_overrides(load_yaml(path), overrides))
