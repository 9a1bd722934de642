"""Experiment configs: the schema (dataclasses), the YAML loader with ``key=value`` overrides, validation.

Every problem is a :class:`ConfigError` naming the file, the field and the allowed values, raised before any
environment or model is built.
"""

from agents.config.loader import (
    apply_overrides,
    load_config,
    load_yaml,
    parse_config,
    parse_override,
    parse_schedule,
    save_config,
)
from agents.config.schema import (
    ACTIVATIONS,
    ALGOS,
    BACKENDS,
    BATCH_STAT_NORMS,
    NETWORKS,
    NOISE_OPTIONS,
    RESERVED_HYPERPARAMS,
    ConfigError,
    DiagnosticsConfig,
    EvalConfig,
    ExperimentConfig,
    NoiseSpec,
    SweepConfig,
    TrainConfig,
)

__all__ = [
    "ACTIVATIONS",
    "ALGOS",
    "BACKENDS",
    "BATCH_STAT_NORMS",
    "NETWORKS",
    "NOISE_OPTIONS",
    "RESERVED_HYPERPARAMS",
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
]
