"""Loading and validation of the experiment YAML files (``configs/*.yaml``) into :mod:`agents.config.schema`.

A config is parsed into frozen dataclasses; every unknown key and every bad value raises
:class:`ConfigError` *before* any environment or model is built, with a one-line message that names
the file, the dotted field and the allowed values (or the closest valid key). Command-line overrides
(``key=value``, YAML-parsed values) are applied to the raw document first.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from agents.config.arms import arm_name, check_arm_policy_kwargs, check_policy_kwargs, parse_arms
from agents.config.schema import (
    ALGOS,
    BATCH_STAT_NORMS,
    LAYER_NORMS,
    NETWORKS,
    NOISE_KINDS,
    RESERVED_HYPERPARAMS,
    SWEEP_BACKENDS,
    ConfigError,
    DiagnosticsConfig,
    EvalConfig,
    ExperimentConfig,
    NoiseSpec,
    SweepConfig,
    TrainConfig,
    arm_norms,
    plain_data,
)
from agents.config.yaml_io import load_yaml, parse_override
from rlnorm.validation import (
    check_bool,
    check_choice,
    check_device,
    check_float,
    check_int,
    check_keys,
    check_list,
    check_mapping,
    check_str,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: hyperparameters that are probabilities or discount factors
_AT_MOST_ONE = ("gamma", "gae_lambda", "tau", "exploration_fraction")


# --------------------------------------------------------------------------------------------- parsing


def _section_keys(data: Mapping[str, Any], cls: type, path: str) -> None:
    """Unknown keys of ``data`` (with the closest field of ``cls``) and missing required fields fail."""
    fields = dataclasses.fields(cls)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    check_keys(data, path, [f.name for f in fields], required=required)


def parse_config(data: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate raw config data (as loaded from YAML) into an :class:`ExperimentConfig`.

    :param data: the YAML document
    :param source: name used in error messages (usually the file path)
    :return: the validated config
    :raises ConfigError: on the first unknown key or bad value
    """
    try:
        return _parse_experiment(data)
    except ConfigError as err:
        # the validators name the field; the file is known only here
        if err.source:
            raise
        raise err.with_source(source) from None


def _parse_experiment(data: Any) -> ExperimentConfig:
    data = check_mapping(data, "<top level>")
    # `norms` may be left out (or empty) when `arms` names the arms
    check_keys(data, "", [f.name for f in dataclasses.fields(ExperimentConfig)], required=_required_top_keys(data))

    experiment = check_str(data["experiment"], "experiment")
    if not _NAME_RE.match(experiment):
        raise ConfigError("", "experiment", f"use letters, digits, '_', '-', '.' only; got {experiment!r}")
    algo = check_choice(data["algo"], "algo", ALGOS)
    raw_arms = data.get("arms") or {}
    if raw_arms and not data.get("norms"):
        norms: tuple[str, ...] = ()
    else:
        norms = _unique_list(data["norms"], "norms", lambda v, path: check_choice(v, path, LAYER_NORMS))
    arms = parse_arms(raw_arms, norms)
    env_ids = _unique_list(data["envs"], "envs", check_str)
    seeds = _unique_list(data["seeds"], "seeds", lambda v, path: check_int(v, path, 0))
    train = _parse_train(data["train"])
    network = check_choice(data.get("network", "auto"), "network", NETWORKS)
    device = check_device(data.get("device", "auto"), "device")
    hyperparams = _parse_hyperparams(data.get("hyperparams", {}) or {}, algo, env_ids)
    policy_kwargs = dict(check_mapping(data.get("policy_kwargs", {}) or {}, "policy_kwargs"))
    check_policy_kwargs(policy_kwargs, "policy_kwargs")
    labels = arm_norms(norms, arms)
    check_arm_policy_kwargs(labels, arms, policy_kwargs, hyperparams, env_ids)
    env_options = dict(check_mapping(data.get("env_options", {}) or {}, "env_options"))
    for key in ("env_id", "n_envs", "seed"):
        if key in env_options:
            raise ConfigError("", f"env_options.{key}", "set by the training entry point; remove it here")
    exploration = data.get("exploration")
    if exploration is not None:
        exploration = _parse_exploration(exploration)
    runs_dir = check_str(data.get("runs_dir", "runs"), "runs_dir")
    reports_dir = check_str(data.get("reports_dir", "reports"), "reports_dir")

    eval_config = _parse_eval(data.get("eval", {}) or {})
    batch_arms = [arm_name(label, norm) for label, norm in labels.items() if norm in BATCH_STAT_NORMS]
    if eval_config.bn_modes and batch_arms and eval_config.n_envs < 2:
        raise ConfigError(
            "",
            "eval.n_envs",
            f"must be >= 2 to evaluate {', '.join(batch_arms)} in train mode (eval.bn_modes: true); "
            f"got {eval_config.n_envs}",
        )

    return ExperimentConfig(
        experiment=experiment,
        algo=algo,
        norms=norms,
        envs=env_ids,
        seeds=seeds,
        train=train,
        network=network,
        device=device,
        hyperparams=hyperparams,
        policy_kwargs=policy_kwargs,
        env_options=env_options,
        eval=eval_config,
        diagnostics=_parse_diagnostics(data.get("diagnostics", {}) or {}),
        sweep=_parse_sweep(data.get("sweep", {}) or {}),
        exploration=exploration,
        runs_dir=runs_dir,
        reports_dir=reports_dir,
        arms=arms,
    )


def _required_top_keys(data: Mapping[str, Any]) -> list[str]:
    """The required top-level keys: the fields of :class:`ExperimentConfig` without a default, less ``norms``
    when ``arms`` is given."""
    fields = dataclasses.fields(ExperimentConfig)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return [key for key in required if not (key == "norms" and data.get("arms"))]


def _unique_list(value: Any, path: str, check: Any) -> tuple[Any, ...]:
    """Each item of the list at ``path`` checked as ``check(item, "path[i]")``, then no item twice."""
    items = [check(item, f"{path}[{i}]") for i, item in enumerate(check_list(value, path))]
    return tuple(check_list(items, path, unique=True))


def _parse_train(data: Any) -> TrainConfig:
    data = check_mapping(data, "train")
    _section_keys(data, TrainConfig, "train")
    d = TrainConfig(total_timesteps=1)
    return TrainConfig(
        total_timesteps=check_int(data["total_timesteps"], "train.total_timesteps", 1),
        n_envs=check_int(data.get("n_envs", d.n_envs), "train.n_envs", 1),
        checkpoint_freq=check_int(data.get("checkpoint_freq", d.checkpoint_freq), "train.checkpoint_freq", 1),
        progress_bar=check_bool(data.get("progress_bar", d.progress_bar), "train.progress_bar"),
        log_interval=check_int(data.get("log_interval", d.log_interval), "train.log_interval", 1),
        save_replay_buffer=check_bool(data.get("save_replay_buffer", d.save_replay_buffer), "train.save_replay_buffer"),
        torch_threads=check_int(data.get("torch_threads", d.torch_threads), "train.torch_threads", 0),
    )


def _parse_eval(data: Any) -> EvalConfig:
    data = check_mapping(data, "eval")
    _section_keys(data, EvalConfig, "eval")
    d = EvalConfig()
    noise: list[NoiseSpec] = []
    raw_noise = data.get("noise", []) or []
    if isinstance(raw_noise, (str, Mapping)) or not isinstance(raw_noise, Sequence):
        raise ConfigError("", "eval.noise", f"must be a list of {{kind, levels}}, got {raw_noise!r:.60}")
    for i, item in enumerate(raw_noise):
        path = f"eval.noise[{i}]"
        item = check_mapping(item, path)
        _section_keys(item, NoiseSpec, path)
        kind = check_choice(item["kind"], f"{path}.kind", NOISE_KINDS)
        at_most = None if kind == "gaussian" else 1.0  # the other kinds are probabilities
        levels = _unique_list(
            item["levels"],
            f"{path}.levels",
            lambda v, p, at_most=at_most: check_float(v, p, minimum=0, exclusive_minimum=True, maximum=at_most),
        )
        if any(s.kind == kind for s in noise):
            raise ConfigError("", f"{path}.kind", f"{kind!r} listed twice; merge the levels")
        noise.append(NoiseSpec(kind=kind, levels=tuple(sorted(levels))))
    return EvalConfig(
        freq=check_int(data.get("freq", d.freq), "eval.freq", 0),
        n_episodes=check_int(data.get("n_episodes", d.n_episodes), "eval.n_episodes", 1),
        n_envs=check_int(data.get("n_envs", d.n_envs), "eval.n_envs", 1),
        deterministic=check_bool(data.get("deterministic", d.deterministic), "eval.deterministic"),
        noise=tuple(noise),
        bn_modes=check_bool(data.get("bn_modes", d.bn_modes), "eval.bn_modes"),
    )


def _parse_diagnostics(data: Any) -> DiagnosticsConfig:
    data = check_mapping(data, "diagnostics")
    _section_keys(data, DiagnosticsConfig, "diagnostics")
    return DiagnosticsConfig(freq=check_int(data.get("freq", DiagnosticsConfig.freq), "diagnostics.freq", 0))


def _parse_sweep(data: Any) -> SweepConfig:
    data = check_mapping(data, "sweep")
    _section_keys(data, SweepConfig, "sweep")
    return SweepConfig(
        workers=check_int(data.get("workers", SweepConfig.workers), "sweep.workers", 0),
        backend=check_choice(data.get("backend", SweepConfig.backend), "sweep.backend", SWEEP_BACKENDS),
    )


def _algo_defaults(algo: str) -> dict[str, Any]:
    """The constructor arguments of ``algo`` and their defaults (``inspect.Parameter.empty`` for none), with the
    arguments the project's subclasses add (``mixed_return`` for DQN)."""
    from agents.policies.algos import ALGO_EXTRA_ARGS, algo_class

    parameters = inspect.signature(algo_class(algo).__init__).parameters
    defaults = {name: p.default for name, p in parameters.items() if name != "self"}
    return {**defaults, **ALGO_EXTRA_ARGS.get(algo, {})}


def _parse_hyperparams(data: Any, algo: str, env_ids: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    data = check_mapping(data, "hyperparams")
    allowed_blocks = ("default", *env_ids)
    defaults = _algo_defaults(algo)
    valid = sorted((set(defaults) - set(RESERVED_HYPERPARAMS)) | {"n_envs"})
    out: dict[str, dict[str, Any]] = {}
    for block, params in data.items():
        if block not in allowed_blocks:
            # blocks for other envs are kept (a config may serve several env lists, e.g. `envs=[...]`
            # overrides), but a near miss of a listed env is a typo
            close = difflib.get_close_matches(block, allowed_blocks, n=1, cutoff=0.8)
            if close:
                raise ConfigError("", f"hyperparams.{block}", f"not an env of this config; did you mean {close[0]!r}?")
        params = dict(check_mapping(params or {}, f"hyperparams.{block}"))
        for key, value in params.items():
            path = f"hyperparams.{block}.{key}"
            if key in RESERVED_HYPERPARAMS:
                raise ConfigError("", path, "set by the training entry point; remove it here")
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(valid)}"
                raise ConfigError("", path, f"not an argument of {algo}; {hint}")
            if key == "n_envs":
                params[key] = check_int(value, path, 1)
            elif key == "policy_kwargs":
                check_policy_kwargs(check_mapping(value, path), path)
            elif key == "mixed_return":
                params[key] = check_float(value, path, minimum=0, maximum=1)
            elif isinstance(value, str) and key in ("learning_rate", "clip_range", "clip_range_vf"):
                parse_schedule(value, lambda problem, path=path: ConfigError("", path, problem))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                check_float(value, path, minimum=0, maximum=1.0 if key in _AT_MOST_ONE else None)
                default = defaults.get(key)
                if isinstance(value, float) and isinstance(default, int) and not isinstance(default, bool):
                    # `buffer_size: 1e6` means the integer the algorithm expects
                    params[key] = int(value) if value.is_integer() else value
        out[block] = params
    return out


def parse_schedule(value: str, fail: Any = None) -> float:
    """Parse an rl-zoo style linear schedule string ``lin_<initial value>``.

    :param value: e.g. ``"lin_2.5e-4"``
    :param fail: callable building the exception for a bad value (default: ``ValueError``)
    :return: the initial value (the schedule decays it linearly to 0)
    """
    match = re.fullmatch(r"lin_([0-9.eE+\-]+)", value)
    try:
        initial = float(match.group(1)) if match else -1.0
    except ValueError:
        initial = -1.0
    if initial <= 0:
        problem = f"schedule must be a number or 'lin_<positive float>', got {value!r}"
        raise fail(problem) if fail else ValueError(problem)
    return initial


def _parse_exploration(data: Any) -> dict[str, Any]:
    from agents.exploration import exploration_config

    exploration = dict(check_mapping(data, "exploration"))
    # errors name "exploration.<key>" (an unknown kind lists the allowed ones); the block is kept as written (the
    # run builds the bonus from it, with the run seed where none is written), so a run's recorded config still
    # matches it on resume
    exploration_config(exploration)
    return exploration


def apply_overrides(data: Any, overrides: Sequence[str]) -> Any:
    """Apply dotted ``key=value`` overrides to raw config data.

    A key that is not a top-level field but names exactly one field of a section is resolved to it
    (``total_timesteps=1000`` means ``train.total_timesteps=1000``).

    :param data: the raw YAML document (not modified)
    :param overrides: ``key=value`` strings
    :return: a new document
    """
    if not isinstance(data, Mapping):
        return data
    data = copy.deepcopy(dict(data))
    top = {f.name for f in dataclasses.fields(ExperimentConfig)}
    sections = {
        "train": TrainConfig,
        "eval": EvalConfig,
        "diagnostics": DiagnosticsConfig,
        "sweep": SweepConfig,
    }
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        if parts[0] not in top:
            owners = [s for s, cls in sections.items() if parts[0] in {f.name for f in dataclasses.fields(cls)}]
            if len(owners) == 1:
                parts = [owners[0], *parts]
            elif len(owners) > 1:
                choices = " or ".join(f"{o}.{key}" for o in owners)
                raise ConfigError("<command line>", key, f"ambiguous; write {choices}")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError("<command line>", ".".join(parts[: i + 1]), "is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load, override and validate a config file.

    :param path: the YAML file
    :param overrides: ``key=value`` strings (see :func:`apply_overrides`)
    :return: the validated config
    :raises ConfigError: on any problem, before anything is built
    """
    data = apply_overrides(load_yaml(path), overrides)
    return parse_config(data, source=str(path))


def save_config(config: ExperimentConfig, path: str | Path, **extra: Any) -> None:
    """Write the resolved config (plus ``extra`` top-level entries, e.g. the run's norm) as YAML.

    :param config: the validated config
    :param path: destination file
    :param extra: additional entries recorded beside the config (``run: {...}``)
    """
    doc = config.to_dict()
    if extra:
        doc["run"] = plain_data(extra)
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))
