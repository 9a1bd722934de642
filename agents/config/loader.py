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
    plain_data,
)

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


# --------------------------------------------------------------------------------------------- parsing


class _Parser:
    """Turns raw YAML data into the dataclasses, raising :class:`ConfigError` on the first problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, problem: str) -> ConfigError:
        return ConfigError(self.source, path, problem)

    def mapping(self, data: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(path, f"must be a mapping, got {type(data).__name__} {data!r:.60}")
        for key in data:
            if not isinstance(key, str):
                raise self.fail(f"{path}.{key!r}", "keys must be strings")
        return data

    def check_keys(self, data: Mapping[str, Any], cls: type, path: str) -> None:
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(names)}"
                raise self.fail(_join(path, key), f"unknown key; {hint}")
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and f.name not in data:
                raise self.fail(_join(path, f.name), "missing (required)")

    def integer(self, value: Any, path: str, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"must be an integer, got {value!r:.60}")
        if minimum is not None and value < minimum:
            bound = "> 0" if minimum == 1 else f">= {minimum}"
            raise self.fail(path, f"must be {bound}, got {value}")
        return value

    def number(self, value: Any, path: str, *, positive: bool = False, at_most: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"must be a number, got {value!r:.60}")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(path, f"must be finite, got {value}")
        if positive and value <= 0:
            raise self.fail(path, f"must be > 0, got {value}")
        if at_most is not None and value > at_most:
            raise self.fail(path, f"must be <= {at_most}, got {value}")
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, got {value!r:.60}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"must be a non-empty string, got {value!r:.60}")
        return value

    def choice(self, value: Any, path: str, allowed: Sequence[str]) -> str:
        if value not in allowed or not isinstance(value, str):
            close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(path, f"must be one of {', '.join(allowed)}; got {value!r:.60}{hint}")
        return value

    def seq(self, value: Any, path: str) -> list[Any]:
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
            raise self.fail(path, f"must be a list, got {value!r:.60}")
        if not value:
            raise self.fail(path, "must not be empty")
        return list(value)

    def unique(self, items: list[Any], path: str) -> tuple[Any, ...]:
        for i, item in enumerate(items):
            if item in items[:i]:
                raise self.fail(f"{path}[{i}]", f"duplicate value {item!r}")
        return tuple(items)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _layer_norms() -> tuple[str, ...]:
    from rlnorm.layers import LAYER_NORMS

    return tuple(LAYER_NORMS)


def _algo_parameters(algo: str) -> set[str]:
    from agents.policies.algos import algo_class

    return set(inspect.signature(algo_class(algo).__init__).parameters) - {"self"}


def parse_config(data: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate raw config data (as loaded from YAML) into an :class:`ExperimentConfig`.

    :param data: the YAML document
    :param source: name used in error messages (usually the file path)
    :return: the validated config
    :raises ConfigError: on the first unknown key or bad value
    """
    p = _Parser(source)
    data = p.mapping(data, "<top level>")
    p.check_keys(data, ExperimentConfig, "")

    experiment = p.string(data["experiment"], "experiment")
    if not _NAME_RE.match(experiment):
        raise p.fail("experiment", f"use letters, digits, '_', '-', '.' only; got {experiment!r}")
    algo = p.choice(data["algo"], "algo", ALGOS)
    allowed_norms = _layer_norms()
    norms = p.unique(
        [p.choice(n, f"norms[{i}]", allowed_norms) for i, n in enumerate(p.seq(data["norms"], "norms"))],
        "norms",
    )
    env_ids = p.unique([p.string(e, f"envs[{i}]") for i, e in enumerate(p.seq(data["envs"], "envs"))], "envs")
    seeds = p.unique(
        [p.integer(s, f"seeds[{i}]", minimum=0) for i, s in enumerate(p.seq(data["seeds"], "seeds"))], "seeds"
    )
    train = _parse_train(p, data["train"])
    network = p.choice(data.get("network", "auto"), "network", NETWORKS)
    device = p.string(data.get("device", "auto"), "device")
    if not _DEVICE_RE.match(device):
        raise p.fail("device", f"must be auto, cpu, mps, cuda or cuda:N; got {device!r}")
    hyperparams = _parse_hyperparams(p, data.get("hyperparams", {}) or {}, algo, env_ids)
    policy_kwargs = dict(p.mapping(data.get("policy_kwargs", {}) or {}, "policy_kwargs"))
    _check_policy_kwargs(p, policy_kwargs, "policy_kwargs")
    env_options = dict(p.mapping(data.get("env_options", {}) or {}, "env_options"))
    for key in ("env_id", "n_envs", "seed"):
        if key in env_options:
            raise p.fail(f"env_options.{key}", "set by the training entry point; remove it here")
    exploration = data.get("exploration")
    if exploration is not None:
        exploration = dict(p.mapping(exploration, "exploration"))
        _check_exploration(p, exploration)
    runs_dir = p.string(data.get("runs_dir", "runs"), "runs_dir")
    reports_dir = p.string(data.get("reports_dir", "reports"), "reports_dir")

    eval_config = _parse_eval(p, data.get("eval", {}) or {})
    batch_norms = [n for n in norms if n in BATCH_STAT_NORMS]
    if eval_config.bn_modes and batch_norms and eval_config.n_envs < 2:
        raise p.fail(
            "eval.n_envs",
            f"must be >= 2 to evaluate {', '.join(batch_norms)} in train mode (eval.bn_modes: true); "
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
        diagnostics=_parse_diagnostics(p, data.get("diagnostics", {}) or {}),
        sweep=_parse_sweep(p, data.get("sweep", {}) or {}),
        exploration=exploration,
        runs_dir=runs_dir,
        reports_dir=reports_dir,
    )


def _parse_train(p: _Parser, data: Any) -> TrainConfig:
    data = p.mapping(data, "train")
    p.check_keys(data, TrainConfig, "train")
    d = TrainConfig(total_timesteps=1)
    return TrainConfig(
        total_timesteps=p.integer(data["total_timesteps"], "train.total_timesteps", minimum=1),
        n_envs=p.integer(data.get("n_envs", d.n_envs), "train.n_envs", minimum=1),
        checkpoint_freq=p.integer(data.get("checkpoint_freq", d.checkpoint_freq), "train.checkpoint_freq", minimum=1),
        progress_bar=p.boolean(data.get("progress_bar", d.progress_bar), "train.progress_bar"),
        log_interval=p.integer(data.get("log_interval", d.log_interval), "train.log_interval", minimum=1),
        save_replay_buffer=p.boolean(data.get("save_replay_buffer", d.save_replay_buffer), "train.save_replay_buffer"),
        torch_threads=p.integer(data.get("torch_threads", d.torch_threads), "train.torch_threads", minimum=0),
    )


def _parse_eval(p: _Parser, data: Any) -> EvalConfig:
    data = p.mapping(data, "eval")
    p.check_keys(data, EvalConfig, "eval")
    d = EvalConfig()
    noise = []
    raw_noise = data.get("noise", []) or []
    if isinstance(raw_noise, (str, Mapping)) or not isinstance(raw_noise, Sequence):
        raise p.fail("eval.noise", f"must be a list of {{kind, levels}}, got {raw_noise!r:.60}")
    for i, item in enumerate(raw_noise):
        path = f"eval.noise[{i}]"
        item = p.mapping(item, path)
        p.check_keys(item, NoiseSpec, path)
        kind = p.choice(item["kind"], f"{path}.kind", tuple(NOISE_OPTIONS))
        at_most = None if kind == "gaussian" else 1.0
        levels = p.unique(
            [
                p.number(v, f"{path}.levels[{j}]", positive=True, at_most=at_most)
                for j, v in enumerate(p.seq(item["levels"], f"{path}.levels"))
            ],
            f"{path}.levels",
        )
        if any(s.kind == kind for s in noise):
            raise p.fail(f"{path}.kind", f"{kind!r} listed twice; merge the levels")
        noise.append(NoiseSpec(kind=kind, levels=tuple(sorted(levels))))
    return EvalConfig(
        freq=p.integer(data.get("freq", d.freq), "eval.freq", minimum=0),
        n_episodes=p.integer(data.get("n_episodes", d.n_episodes), "eval.n_episodes", minimum=1),
        n_envs=p.integer(data.get("n_envs", d.n_envs), "eval.n_envs", minimum=1),
        deterministic=p.boolean(data.get("deterministic", d.deterministic), "eval.deterministic"),
        noise=tuple(noise),
        bn_modes=p.boolean(data.get("bn_modes", d.bn_modes), "eval.bn_modes"),
    )


def _parse_diagnostics(p: _Parser, data: Any) -> DiagnosticsConfig:
    data = p.mapping(data, "diagnostics")
    p.check_keys(data, DiagnosticsConfig, "diagnostics")
    return DiagnosticsConfig(freq=p.integer(data.get("freq", DiagnosticsConfig.freq), "diagnostics.freq", minimum=0))


def _parse_sweep(p: _Parser, data: Any) -> SweepConfig:
    data = p.mapping(data, "sweep")
    p.check_keys(data, SweepConfig, "sweep")
    return SweepConfig(
        workers=p.integer(data.get("workers", SweepConfig.workers), "sweep.workers", minimum=0),
        backend=p.choice(data.get("backend", SweepConfig.backend), "sweep.backend", BACKENDS),
    )


def _parse_hyperparams(p: _Parser, data: Any, algo: str, env_ids: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    data = p.mapping(data, "hyperparams")
    allowed_blocks = ("default", *env_ids)
    valid = sorted((_algo_parameters(algo) - set(RESERVED_HYPERPARAMS)) | {"n_envs"})
    out: dict[str, dict[str, Any]] = {}
    for block, params in data.items():
        if block not in allowed_blocks:
            # blocks for other envs are kept (a config may serve several env lists, e.g. `envs=[...]`
            # overrides), but a near miss of a listed env is a typo
            close = difflib.get_close_matches(block, allowed_blocks, n=1, cutoff=0.8)
            if close:
                raise p.fail(f"hyperparams.{block}", f"not an env of this config; did you mean {close[0]!r}?")
        params = p.mapping(params or {}, f"hyperparams.{block}")
        for key, value in params.items():
            path = f"hyperparams.{block}.{key}"
            if key in RESERVED_HYPERPARAMS:
                raise p.fail(path, "set by the training entry point; remove it here")
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(valid)}"
                raise p.fail(path, f"not an argument of {algo}; {hint}")
            if key == "n_envs":
                p.integer(value, path, minimum=1)
            elif key == "policy_kwargs":
                _check_policy_kwargs(p, p.mapping(value, path), path)
            elif isinstance(value, str) and key in ("learning_rate", "clip_range", "clip_range_vf"):
                parse_schedule(value, lambda problem, path=path: p.fail(path, problem))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                at_most = 1.0 if key in ("gamma", "gae_lambda", "tau", "exploration_fraction") else None
                if not value >= 0:  # also catches NaN
                    raise p.fail(path, f"must be >= 0, got {value}")
                if at_most is not None and value > at_most:
                    raise p.fail(path, f"must be <= {at_most}, got {value}")
        out[block] = dict(params)
    return out


def _check_policy_kwargs(p: _Parser, kwargs: Mapping[str, Any], path: str) -> None:
    if "norm" in kwargs:
        raise p.fail(f"{path}.norm", "set by the 'norms' list; remove it here")
    if "activation_fn" in kwargs:
        p.choice(kwargs["activation_fn"], f"{path}.activation_fn", ACTIVATIONS)


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


def _check_exploration(p: _Parser, exploration: dict[str, Any]) -> None:
    from agents.exploration import EXPLORATION_KINDS, PseudoCountConfig

    p.choice(exploration.get("kind"), "exploration.kind", EXPLORATION_KINDS)
    try:
        PseudoCountConfig.from_dict(exploration)
    except (ValueError, TypeError) as err:
        # the exploration module names the key itself ("exploration.beta must be ...")
        named = re.match(r"^exploration\.(\w+):? (.*)$", str(err))
        if named:
            raise p.fail(f"exploration.{named[1]}", named[2]) from None
        raise p.fail("exploration", str(err).removeprefix("exploration").lstrip(".: ")) from None


# ------------------------------------------------------------------------------------------ loading


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning a missing file or a syntax error into a one-line :class:`ConfigError`.

    :param path: the YAML file
    :return: the parsed document
    """
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(source, "<file>", f"cannot read: {err.strerror or err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(source, where, f"YAML syntax error: {problem}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split one ``key=value`` command-line override; the value is parsed as YAML.

    :param text: e.g. ``"train.total_timesteps=20000"`` or ``"seeds=[0]"``
    :return: (dotted key, value)
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("<command line>", text, "overrides are key=value (e.g. train.total_timesteps=20000)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError("<command line>", key, f"cannot parse value {raw!r} as YAML") from None
    return key.strip(), value


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
