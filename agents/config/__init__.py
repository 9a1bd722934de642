"""Experiment configs: the schema (dataclasses), the YAML loader with ``key=value`` overrides, validation.

Every problem is a :class:`ConfigError` naming the file, the field and the allowed values, raised before any
environment or model is built. It is :class:`rlnorm.validation.ConfigError`, the one error type of every
config and option check in the project (the env factory and the PixelCNN configs raise it too).
"""

import warnings
from typing import Any

from agents.config.loader import apply_overrides, load_config, parse_config, parse_schedule, save_config
from agents.config.schema import (
    ACTIVATIONS,
    ALGOS,
    BATCH_STAT_NORMS,
    NETWORKS,
    NOISE_KIND_OPTIONS,
    NOISE_KINDS,
    RESERVED_HYPERPARAMS,
    SWEEP_BACKENDS,
    ArmConfig,
    ConfigError,
    DiagnosticsConfig,
    EvalConfig,
    ExperimentConfig,
    NoiseSpec,
    SweepConfig,
    TrainConfig,
)
from agents.config.yaml_io import load_yaml, parse_override, yaml_load

# former names -> current ones; the old names meant something else elsewhere (envs.BACKENDS are env backends,
# envs.NOISE_OPTIONS the tuple of noise options)
_RENAMED = {"BACKENDS": "SWEEP_BACKENDS", "NOISE_OPTIONS": "NOISE_KIND_OPTIONS"}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        warnings.warn(f"agents.config.{name} is now agents.config.{_RENAMED[name]}", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "ALGOS",
    "BATCH_STAT_NORMS",
    "NETWORKS",
    "NOISE_KINDS",
    "NOISE_KIND_OPTIONS",
    "RESERVED_HYPERPARAMS",
    "SWEEP_BACKENDS",
    "ArmConfig",
    "ConfigError",
    "DiagnosticsConfig",
    "EvalConfig",
    "ExperimentConfig",
    "NoiseSpec",
    "SweepConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "load_yaml",
    "parse_config",
    "parse_override",
    "parse_schedule",
    "save_config",
    "yaml_load",
]
