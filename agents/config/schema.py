"""Typed schema for the experiment YAML files (``configs/*.yaml``): the dataclasses and allowed values.

Parsing and validation live in :mod:`agents.config.loader` (import everything from there).

A config is parsed into frozen dataclasses; every unknown key and every bad value raises
:class:`ConfigError` (:class:`rlnorm.validation.ConfigError`) *before* any environment or model is built, with a
one-line message that names the file, the dotted field and the allowed values (or the closest valid key). The
allowed values come from their one table each: norms from :data:`rlnorm.registry.NORMS`, activations from
:data:`rlnorm.layers.ACTIVATIONS`, noise kinds from :data:`envs.noise.NOISE_KIND_OPTIONS`.

Layout of a config (see ``configs/default.yaml``)::

    experiment: minatar_norms        # runs/<experiment>/, reports/<experiment>/
    algo: PPO                        # any of ALGOS: PPO, A2C, DQN, SAC, RecurrentPPO, CrossQ, ...
    norms: [none, bn, ln]            # one arm per norm, all with the same architecture, labelled by the norm
    arms:                            # optional: arms that are a norm plus policy kwargs, labelled as written
      wn: {norm: wn, policy_kwargs: {wn_data_init: true}}
      wn-noinit: {norm: wn}
    envs: [MinAtar/Breakout-v1]
    seeds: [0, 1]
    train: {total_timesteps: 200000, n_envs: 8, checkpoint_freq: 50000}
    hyperparams:                     # rl-zoo style: "default" then per-env overrides
      default: {learning_rate: 2.5e-4, n_steps: 128}
      MinAtar/Breakout-v1: {ent_coef: 0.01}
    eval: {freq: 0, n_episodes: 10, noise: [{kind: gaussian, levels: [0.1, 0.3]}]}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.policies import algorithm_aliases
from envs.noise import NOISE_KIND_OPTIONS
from rlnorm.layers import ACTIVATIONS, LAYER_NORMS
from rlnorm.registry import norm_names
from rlnorm.validation import ConfigError

#: the algorithms a config may name: every one with norm policies (the one table: agents.policies)
ALGOS: tuple[str, ...] = tuple(algorithm_aliases())
NETWORKS = ("auto", "cnn", "mlp")
#: how the grid of runs is executed (``sweep.backend``); not the env backends of ``envs.make_env``
SWEEP_BACKENDS = ("local", "ray")
#: ``eval.noise[].kind`` names: the noise kinds of :data:`envs.noise.NOISE_KIND_OPTIONS`
NOISE_KINDS: tuple[str, ...] = tuple(NOISE_KIND_OPTIONS)
#: norms whose train mode normalizes with the statistics of the batch (a batch of one fails)
BATCH_STAT_NORMS: tuple[str, ...] = norm_names("layer", needs_batch_gt1=True)
#: what an arm label may be made of (it names the run folders ``<algo>-<label>-s<seed>``)
ARM_LABEL_PATTERN = r"^[A-Za-z0-9_.+\-]+$"
#: hyperparameters the training entry point sets itself
RESERVED_HYPERPARAMS = ("policy", "env", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model")

__all__ = [
    "ACTIVATIONS",
    "ALGOS",
    "ARM_LABEL_PATTERN",
    "BATCH_STAT_NORMS",
    "LAYER_NORMS",
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
    "arm_norms",
    "plain_data",
]


@dataclass(frozen=True)
class NoiseSpec:
    """Evaluation condition: one perturbation kind at several levels.

    :param kind: one of :data:`NOISE_KINDS` (``gaussian``, ``salt_pepper``, ``flicker``, ``frame_drop``)
    :param levels: strengths, each > 0 (std of Gaussian noise on observations scaled to [0, 1],
        or a probability for ``salt_pepper`` / ``flicker``)
    """

    kind: str
    levels: tuple[float, ...]


@dataclass(frozen=True)
class ArmConfig:
    """One arm of the grid defined under ``arms:``: a norm and the policy arguments that set the arm apart.

    :param norm: one of :data:`LAYER_NORMS`, the norm the arm's policy is built with
    :param policy_kwargs: policy arguments of this arm only (e.g. ``{wn_data_init: true}``), on top of the
        config-wide ``policy_kwargs``; a key may be set here or config-wide, not both
    """

    norm: str
    policy_kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """How long and how each run trains.

    :param total_timesteps: environment steps per run (summed over the parallel envs)
    :param n_envs: parallel environments per run
    :param checkpoint_freq: steps between checkpoints (written atomically; used to resume)
    :param progress_bar: show a tqdm bar with fps and recent return
    :param log_interval: SB3 ``log_interval`` (iterations for on-policy, episodes for DQN)
    :param save_replay_buffer: also checkpoint the DQN replay buffer (large for Atari)
    :param torch_threads: ``torch.set_num_threads`` in each run's process (0: torch's default). One thread is
        fastest for these small networks, and several runs in parallel must not oversubscribe the cores
    """

    total_timesteps: int
    n_envs: int = 8
    checkpoint_freq: int = 50_000
    progress_bar: bool = True
    log_interval: int = 1
    save_replay_buffer: bool = False
    torch_threads: int = 1


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation during and at the end of training.

    :param freq: steps between evaluations; 0 evaluates only once, at the end
    :param n_episodes: episodes per condition
    :param n_envs: parallel evaluation environments
    :param deterministic: greedy actions (``True``) or sampled ones
    :param noise: noisy conditions evaluated besides the clean one
    :param bn_modes: for BN policies, also evaluate in train mode (batch statistics) and log the
        KL divergence between the action distributions of the two modes
    """

    freq: int = 0
    n_episodes: int = 10
    n_envs: int = 4
    deterministic: bool = False
    noise: tuple[NoiseSpec, ...] = ()
    bn_modes: bool = True


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Per-layer norm statistics (``norm/...`` tags).

    :param freq: steps between two logs of ``rlnorm.diagnostics.layer_statistics``; 0 disables them
    """

    freq: int = 10_000


@dataclass(frozen=True)
class SweepConfig:
    """How the grid (envs x norms x seeds) runs.

    :param workers: parallel runs; 0 means one per CPU core
    :param backend: one of :data:`SWEEP_BACKENDS`: ``local`` (process pool) or ``ray`` (local Ray or the
        cluster at ``RAY_ADDRESS``)
    """

    workers: int = 0
    backend: str = "local"


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: the grid of runs and everything each run needs.

    :param experiment: name; runs go to ``<runs_dir>/<experiment>/`` and the report to
        ``<reports_dir>/<experiment>/``
    :param algo: one of :data:`ALGOS`
    :param norms: norms compared, each from :data:`LAYER_NORMS` (``none`` = same architecture
        without normalization); each is an arm labelled by its name. May be empty when :attr:`arms` is not
    :param arms: further arms, label -> :class:`ArmConfig` (a norm plus per-arm policy kwargs), e.g. WN with and
        without its data-dependent init; the label names the run folders and the reports' ``norm`` column.
        Labels match :data:`ARM_LABEL_PATTERN`, differ from every entry of :attr:`norms`, and a label that is a
        norm's name has that norm
    :param envs: environment ids accepted by ``envs.make_env``
    :param seeds: one run per seed for each (env, norm)
    :param train: see :class:`TrainConfig`
    :param network: ``cnn`` / ``mlp`` policy family, or ``auto`` (images -> cnn)
    :param device: ``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N`` (:func:`rlnorm.validation.check_device`)
    :param hyperparams: algorithm arguments keyed by ``default`` or env id (env entries override default);
        ``n_envs`` there overrides ``train.n_envs`` for that env. DQN also takes ``mixed_return`` (``beta`` in
        ``[0, 1]``): the target mixes the TD target with the episode's Monte Carlo return,
        ``(1 - beta) y_TD + beta R_MC`` (Ostrovski et al. 2017 use 0.1; :mod:`agents.mixed_return`)
    :param policy_kwargs: extra policy arguments (``norm`` is set per arm)
    :param env_options: options for ``envs.make_env`` (training envs; evaluation adds ``training=False``)
    :param eval: see :class:`EvalConfig`
    :param diagnostics: see :class:`DiagnosticsConfig`
    :param sweep: see :class:`SweepConfig`
    :param exploration: optional exploration bonus, e.g. ``{kind: pseudocount, ...}`` built by
        ``agents.exploration``
    :param runs_dir: root of all runs
    :param reports_dir: root of all reports
    """

    experiment: str
    algo: str
    norms: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    train: TrainConfig
    network: str = "auto"
    device: str = "auto"
    hyperparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    policy_kwargs: Mapping[str, Any] = field(default_factory=dict)
    env_options: Mapping[str, Any] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    exploration: Mapping[str, Any] | None = None
    runs_dir: str = "runs"
    reports_dir: str = "reports"
    arms: Mapping[str, ArmConfig] = field(default_factory=dict)

    @property
    def arm_norms(self) -> dict[str, str]:
        """Every arm of the grid, label -> norm (:func:`arm_norms`)."""
        return arm_norms(self.norms, self.arms)

    def arm_policy_kwargs(self, label: str) -> dict[str, Any]:
        """The policy kwargs that set arm ``label`` apart (empty for an entry of :attr:`norms`).

        :param label: a key of :attr:`arm_norms`
        """
        arm = self.arms.get(label)
        return dict(arm.policy_kwargs) if arm is not None else {}

    def env_hyperparams(self, env_id: str) -> dict[str, Any]:
        """Algorithm arguments for one env: ``hyperparams.default`` updated by ``hyperparams[env_id]``.

        :param env_id: one of :attr:`envs`
        :return: a fresh dict
        """
        merged = dict(self.hyperparams.get("default", {}))
        merged.update(self.hyperparams.get(env_id, {}))
        merged.pop("n_envs", None)
        return merged

    def env_n_envs(self, env_id: str) -> int:
        """Parallel training envs for one env: ``hyperparams[env_id].n_envs`` (rl-zoo style), else
        ``hyperparams.default.n_envs``, else ``train.n_envs``.

        :param env_id: one of :attr:`envs`
        """
        for block in (env_id, "default"):
            if "n_envs" in self.hyperparams.get(block, {}):
                return int(self.hyperparams[block]["n_envs"])
        return self.train.n_envs

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able data (tuples become lists), ``arms`` right after ``norms``.

        A config without ``arms`` gives no ``arms`` entry, so it reads as it did before arms existed.
        """
        doc = plain_data(dataclasses.asdict(self))
        arms = doc.pop("arms")
        if not arms:
            return doc
        out: dict[str, Any] = {}
        for key, value in doc.items():
            out[key] = value
            if key == "norms":
                out["arms"] = arms
        return out


def arm_norms(norms: tuple[str, ...], arms: Mapping[str, ArmConfig]) -> dict[str, str]:
    """Every arm of a grid, label -> norm: the entries of ``norms`` (labelled by their name), then ``arms`` in the
    order written.

    :param norms: :attr:`ExperimentConfig.norms`
    :param arms: :attr:`ExperimentConfig.arms`
    """
    return {**{norm: norm for norm in norms}, **{label: arm.norm for label, arm in arms.items()}}


def plain_data(value: Any) -> Any:
    """``value`` with mappings as dicts with string keys and sequences as lists (what YAML writes)."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    return value
