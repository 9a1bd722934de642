"""The arms of a grid: the entries of a config's ``norms`` and of its ``arms`` mapping (a norm plus per-arm policy
kwargs, under a label of its own), and the checks of policy kwargs against every arm's norm.

Part of :mod:`agents.config.loader` (which calls these while parsing); the dataclass is
:class:`agents.config.schema.ArmConfig`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from agents.config.schema import ACTIVATIONS, ARM_LABEL_PATTERN, LAYER_NORMS, ArmConfig, ConfigError
from rlnorm.layers import WEIGHT_NORM_KINDS
from rlnorm.validation import check_bool, check_choice, check_keys, check_mapping

_ARM_LABEL_RE = re.compile(ARM_LABEL_PATTERN)


def arm_name(label: str, norm: str) -> str:
    """How messages name an arm: its label, with its norm when that differs (``wn-noinit (wn)``)."""
    return label if label == norm else f"{label} ({norm})"


def parse_arms(data: Any, norms: tuple[str, ...]) -> dict[str, ArmConfig]:
    """The ``arms`` mapping: label -> ``{norm, policy_kwargs}``, each label new and each norm a layer norm."""
    data = check_mapping(data, "arms")
    arms: dict[str, ArmConfig] = {}
    for label, item in data.items():
        path = f"arms.{label}"
        if not isinstance(label, str) or not _ARM_LABEL_RE.match(label):
            raise ConfigError("", path, f"an arm label uses letters, digits, '_', '.', '+', '-' only; got {label!r}")
        if label in norms:
            raise ConfigError(
                "", path, f"label {label!r} is already an arm of the 'norms' list; give this arm another label"
            )
        item = check_mapping(item, path)
        check_keys(item, path, [f.name for f in dataclasses.fields(ArmConfig)], required=["norm"])
        norm = check_choice(item["norm"], f"{path}.norm", LAYER_NORMS)
        if label in LAYER_NORMS and norm != label:
            raise ConfigError(
                "", f"{path}.norm", f"the arm labelled {label!r} (a norm's name) must have norm {label!r}; got {norm!r}"
            )
        kwargs = dict(check_mapping(item.get("policy_kwargs", {}) or {}, f"{path}.policy_kwargs"))
        if "norm" in kwargs:
            raise ConfigError("", f"{path}.policy_kwargs.norm", f"set by {path}.norm; remove it here")
        check_policy_kwargs(kwargs, f"{path}.policy_kwargs")
        arms[label] = ArmConfig(norm=norm, policy_kwargs=kwargs)
    return arms


def check_arm_policy_kwargs(
    arm_norms: Mapping[str, str],
    arms: Mapping[str, ArmConfig],
    policy_kwargs: Mapping[str, Any],
    hyperparams: Mapping[str, Mapping[str, Any]],
    env_ids: tuple[str, ...],
) -> None:
    """Per-arm policy kwargs against the config-wide ones, and ``wn_data_init`` against every arm's norm.

    A key is set per arm or config-wide (``policy_kwargs``, ``hyperparams.<block>.policy_kwargs``), not both:
    which one would win is not obvious from the file. ``wn_data_init: true`` needs a weight-normalized norm in
    every arm it reaches (:func:`agents.policies.options.check_policy_norm` would refuse it later, in the run).
    """
    wide = {"policy_kwargs": policy_kwargs}
    for block in ("default", *env_ids):
        if block in hyperparams:
            wide[f"hyperparams.{block}.policy_kwargs"] = hyperparams[block].get("policy_kwargs") or {}
    for label, arm in arms.items():
        for key in arm.policy_kwargs:
            for where, kwargs in wide.items():
                if key in kwargs:
                    raise ConfigError(
                        "",
                        f"arms.{label}.policy_kwargs.{key}",
                        f"also set by {where} ({kwargs[key]!r}); set it either per arm or config-wide",
                    )
    sources = [(where, kwargs, dict(arm_norms)) for where, kwargs in wide.items()]
    sources += [(f"arms.{label}.policy_kwargs", arm.policy_kwargs, {label: arm.norm}) for label, arm in arms.items()]
    for where, kwargs, reached in sources:
        if not check_bool(kwargs.get("wn_data_init", False), f"{where}.wn_data_init"):
            continue
        others = [arm_name(label, norm) for label, norm in reached.items() if norm not in WEIGHT_NORM_KINDS]
        if others:
            raise ConfigError(
                "",
                f"{where}.wn_data_init",
                f"true needs a weight-normalized norm ({', '.join(WEIGHT_NORM_KINDS)}); it reaches "
                f"{', '.join(others)}; set it under arms.<label>.policy_kwargs of the weight-normalized arms only",
            )


def check_policy_kwargs(kwargs: Mapping[str, Any], path: str) -> None:
    """What the config can check of a policy kwargs mapping at ``path``: no ``norm`` (the arms set it) and a known
    ``activation_fn``."""
    if "norm" in kwargs:
        raise ConfigError("", f"{path}.norm", "set by the 'norms' list (or arms.<label>.norm); remove it here")
    if "activation_fn" in kwargs:
        check_choice(kwargs["activation_fn"], f"{path}.activation_fn", ACTIVATIONS)
