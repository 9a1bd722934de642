"""Count-based exploration bonuses: exact visit counts, and pseudo-counts from an online PixelCNN density model
(Ostrovski et al., 2017).

Both are ``VecEnv`` wrappers (so PPO, A2C and DQN all use them unchanged) that add the bonus to the reward when
the transition is collected: DQN stores the rewarded transition in its replay buffer, as Ostrovski et al. did
(their mixed Monte Carlo return is :mod:`agents.mixed_return`, set by ``hyperparams: {default: {mixed_return:
0.1}}``). The ``exploration:`` block of an experiment config picks one by ``kind`` (:data:`EXPLORATION_KINDS`):

- ``count`` (:class:`CountReward`): the exact number of visits ``N`` of each observation (its bytes), counted
  when the frame is seen, and the bonus ``beta / sqrt(N + 0.01)``; the tabular baseline the pseudo-count
  approximates.
- ``pseudocount`` (:class:`PseudoCountReward`): on every step, for **every** new frame ``x`` of every env (the
  terminal frame where an episode ended), in env order:

1. ``log rho(x)`` under the current density model,
2. one optimizer step on ``-log rho(x)`` (batch of 1: the online setting where batch norm is at its worst),
3. ``log rho'(x)`` under the updated model; the prediction gain is ``PG = log rho'(x) - log rho(x)``,
4. pseudo-count ``N = 1 / (exp(c * n^-1/2 * max(PG, 0)) - 1)`` (``n``: frames the model has been trained on;
   ``N = inf`` when ``PG <= 0``) and bonus ``beta / sqrt(N + 0.01)``, added to the env reward.

``rho`` and ``rho'`` are always read from a causal evaluation (:meth:`PseudoCountReward.score`: eval mode);
only the update step runs in train mode. For the batch-independent norms (none, wn, pixel_ln, pixel_gn) the two
modes give the same numbers, so the update's own forward pass supplies ``log rho(x)``. Batch norm in train mode
normalizes the frame by its own statistics, through which every pixel's prediction sees the pixels after it
(:mod:`rlnorm.pixelcnn.causality`): that ``rho`` is no density and its prediction gain is not the recoding gain of
Ostrovski et al. So with ``norm: bn`` the frame is scored in eval mode (running statistics, updated by the train
step like any other state of the model), at the cost of one more forward pass per frame and per score.

Each info dict gets ``info["visit_count"] = {"bonus", "visit_count"}`` (``count``) or
``info["pseudo_count"] = {"prediction_gain", "pseudo_count", "bonus", "bits_per_dim", "visit_count"}``
(``pseudocount``; the exact count is kept beside the pseudo-count to measure how well the density model counts);
:class:`ExplorationLogger` records their means under ``exploration/...`` in TensorBoard.

Longer than 400 lines because it holds both bonus wrappers, which share the config dispatch, the transition
frames, the info format and the logger. The density model is
left in train mode between steps (it is trained online).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from rlnorm.pixelcnn.frames import BINARY_MODES, frame_encoder_for
from rlnorm.pixelcnn.layers import check_pixelcnn_norm
from rlnorm.pixelcnn.model import ARCHS, OUTPUTS, PixelCNN
from rlnorm.registry import NORMS
from rlnorm.validation import ConfigError, check_choice, check_device, check_int, check_positive

EXPLORATION_KINDS: tuple[str, ...] = ("count", "pseudocount")
#: the info key of the pseudo-count statistics, and that of the exact-count ones
INFO_KEY = "pseudo_count"
COUNT_INFO_KEY = "visit_count"
#: ``0.01`` in ``beta / sqrt(N + 0.01)`` (Ostrovski et al.; keeps the bonus finite at ``N = 0``)
COUNT_OFFSET = 0.01


def check_options_keys(options: Mapping[str, Any], known: set[str]) -> None:
    """Refuse keys of an ``exploration:`` block that its kind does not have, by name.

    :param options: the block (``kind`` is always allowed)
    :param known: the keys of the kind's settings
    :raises ConfigError: naming the first unknown key and listing the allowed ones
    """
    unknown = sorted(set(options) - known - {"kind"})
    if unknown:
        raise ConfigError(
            "",
            f"exploration.{unknown[0]}",
            f"unknown key(s) {unknown} for kind {options.get('kind')!r}; allowed keys: kind, "
            f"{', '.join(sorted(known))}",
        )


@dataclass(frozen=True)
class CountConfig:
    """Settings of the exact visit-count bonus (``exploration: {kind: count, ...}``).

    :param beta: bonus scale ``beta`` (> 0)
    :param seed: unused (the count has no randomness); accepted because the pipeline passes the run seed
    """

    beta: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_positive(self.beta, "exploration.beta"))
        object.__setattr__(self, "seed", check_int(self.seed, "exploration.seed", 0))

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> CountConfig:
        """Build from a mapping, rejecting unknown keys by name (``kind`` is accepted and ignored)."""
        check_options_keys(options, {f.name for f in dataclasses.fields(cls)})
        return cls(**{k: v for k, v in options.items() if k != "kind"})


@dataclass(frozen=True)
class PseudoCountConfig:
    """Settings of the pseudo-count bonus (the ``exploration:`` block of an experiment config).

    :param beta: bonus scale ``beta`` (> 0)
    :param c: prediction-gain decay constant ``c`` (> 0)
    :param lr: Adam learning rate of the density model
    :param norm: the density model's norm, one of :data:`~rlnorm.pixelcnn.layers.PIXELCNN_NORMS` (the former
        ``ln`` / ``gn`` are read as ``pixel_ln`` / ``pixel_gn``, with a ``DeprecationWarning``)
    :param arch: ``gated`` or ``plain`` PixelCNN
    :param hidden_channels: channels of the density model
    :param n_layers: masked layers of the density model
    :param kernel_size: odd kernel width
    :param output: the density model's head, ``softmax`` or ``logistic_mixture``
    :param n_mixtures: logistic components per pixel (``logistic_mixture`` only)
    :param size: Atari frames are downsampled to ``size x size``
    :param bits: Atari grey levels kept (3 bits -> 8 levels)
    :param binary_mode: MinAtar channels ``bits`` (lossless) or ``argmax`` (collapsed)
    :param device: torch device of the density model: ``cpu``, ``mps``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA if
        available)
    :param seed: seed of the density model's initialization (`agents.pipeline.train` passes the run seed unless set)
    """

    beta: float = 0.05
    c: float = 0.1
    lr: float = 1e-3
    norm: str = "wn"
    arch: str = "gated"
    hidden_channels: int = 16
    n_layers: int = 3
    kernel_size: int = 3
    output: str = "softmax"
    n_mixtures: int = 5
    size: int = 42
    bits: int = 3
    binary_mode: str = "bits"
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        # every error names "exploration.<field>": the experiment config's loader adds the file
        for name in ("beta", "c", "lr"):
            object.__setattr__(self, name, check_positive(getattr(self, name), f"exploration.{name}"))
        for name in ("hidden_channels", "n_layers", "kernel_size", "n_mixtures", "size", "bits", "seed"):
            minimum = 0 if name == "seed" else 1
            object.__setattr__(self, name, check_int(getattr(self, name), f"exploration.{name}", minimum))
        check_device(self.device, "exploration.device")
        if self.kernel_size % 2 == 0:
            raise ConfigError("", "exploration.kernel_size", f"must be odd, got {self.kernel_size}")
        object.__setattr__(self, "norm", check_pixelcnn_norm(self.norm, "exploration.norm"))
        for name, allowed in (("arch", ARCHS), ("output", OUTPUTS), ("binary_mode", BINARY_MODES)):
            check_choice(getattr(self, name), f"exploration.{name}", allowed)

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> PseudoCountConfig:
        """Build from a mapping, rejecting unknown keys by name (``kind`` is accepted and ignored)."""
        check_options_keys(options, {f.name for f in dataclasses.fields(cls)})
        return cls(**{k: v for k, v in options.items() if k != "kind"})


def pseudo_count(prediction_gain: np.ndarray, n: np.ndarray | float, c: float) -> np.ndarray:
    """``N = 1 / (exp(c n^-1/2 max(PG, 0)) - 1)``; ``inf`` where the gain is not positive.

    :param prediction_gain: ``PG`` in nats
    :param n: number of frames the density model has been trained on (>= 1)
    :param c: decay constant
    """
    scaled = c * np.asarray(n, dtype=np.float64) ** -0.5 * np.maximum(prediction_gain, 0.0)
    with np.errstate(divide="ignore"):
        return 1.0 / np.expm1(scaled)


def pseudo_count_bonus(count: np.ndarray, beta: float) -> np.ndarray:
    """``beta / sqrt(N + 0.01)`` (0 for an infinite count)."""
    return beta / np.sqrt(count + COUNT_OFFSET)


class VisitCounter:
    """Exact visit counts of observations, keyed by their bytes (shape and dtype are fixed per env)."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}

    def visit(self, frame: np.ndarray) -> int:
        """Count one visit of ``frame`` and return its count including this visit."""
        key = np.ascontiguousarray(frame).tobytes()
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        return count

    def __len__(self) -> int:
        return len(self.counts)


def transition_frames(obs: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
    """The frames the transitions of one ``VecEnv`` step led to: ``obs``, with the terminal observation where an
    episode ended (not the first frame of the next episode)."""
    frames = np.array(obs, copy=True)
    for i in np.flatnonzero(dones):
        if "terminal_observation" in infos[i]:
            frames[i] = infos[i]["terminal_observation"]
    return frames


class BonusReward(VecEnvWrapper):
    """What the exploration-bonus wrappers share: at each step, :meth:`observe` the new frame of every env (the
    terminal frame where an episode ended; reset frames carry no transition to reward), add its ``bonus`` to the
    reward and put its statistics into ``info[info_key]``."""

    #: the ``info`` key of the per-step statistics
    info_key: ClassVar[str]

    def observe(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Statistics of each frame of ``frames`` (one per env), including its ``bonus``."""
        raise NotImplementedError

    def reset(self) -> VecEnvObs:
        """Reset ``venv`` (reset frames are not observed)."""
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        """Step ``venv``, observe the new frames and add their bonus to the rewards."""
        obs, rewards, dones, infos = self.venv.step_wait()
        stats = self.observe(transition_frames(obs, dones, infos))
        for i, info in enumerate(infos):
            info[self.info_key] = {key: float(values[i]) for key, values in stats.items()}
        return obs, (rewards + stats["bonus"]).astype(np.float32), dones, infos


class CountReward(BonusReward):
    """Adds the exact visit-count bonus ``beta / sqrt(N + 0.01)`` to the rewards of ``venv``.

    ``N`` counts the visits of the new frame of each env (the terminal frame where an episode ended), this visit
    included, as the pseudo-count's model is trained on the frame before its count is read. Reset frames are
    not counted. For small discrete observation sets (Deep Sea, grid worlds), where counting is exact and cheap.

    :param venv: any env with array observations
    :param config: the bonus scale
    """

    info_key = COUNT_INFO_KEY

    def __init__(self, venv: VecEnv, config: CountConfig | None = None):
        super().__init__(venv)
        self.config = config or CountConfig()
        self.counter = VisitCounter()

    def observe(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Count each frame of ``frames`` in turn and return ``visit_count`` and ``bonus`` per frame."""
        counts = np.array([self.counter.visit(frame) for frame in frames], dtype=np.float64)
        return {"visit_count": counts, "bonus": pseudo_count_bonus(counts, self.config.beta)}

    def state_dict(self) -> dict[str, Any]:
        """The counts (for checkpoints: SB3 saves only the agent)."""
        return {"counts": dict(self.counter.counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.counter.counts = dict(state["counts"])


class PseudoCountReward(BonusReward):
    """Adds the PixelCNN pseudo-count bonus to the rewards of ``venv`` (see the module docstring).

    :param venv: an env with channel-first ``uint8`` image observations (Atari or MinAtar)
    :param config: the bonus and density-model settings
    """

    info_key = INFO_KEY

    def __init__(self, venv: VecEnv, config: PseudoCountConfig | None = None):
        super().__init__(venv)
        self.config = config or PseudoCountConfig()
        space = venv.observation_space
        if space.dtype != np.uint8 or len(space.shape) != 3:
            raise ValueError(f"pseudo-count exploration needs channel-first uint8 image observations, got {space}")
        cfg = self.config
        self.encoder = frame_encoder_for(
            space.shape, int(np.max(space.high)), size=cfg.size, bits=cfg.bits, binary_mode=cfg.binary_mode
        )
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(auto if cfg.device == "auto" else cfg.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.density = PixelCNN(
                levels=self.encoder.levels,
                image_size=self.encoder.image_size,
                hidden_channels=cfg.hidden_channels,
                n_layers=cfg.n_layers,
                kernel_size=cfg.kernel_size,
                arch=cfg.arch,
                norm=cfg.norm,
                output=cfg.output,
                n_mixtures=cfg.n_mixtures,
            ).to(self.device)
        self.optimizer = torch.optim.Adam(self.density.parameters(), lr=cfg.lr)
        self.n_updates = 0
        #: exact counts beside the pseudo-counts, to measure how well the density model counts
        self.counter = VisitCounter()
        self._initialized = cfg.norm != "wn"
        #: train mode would score each frame with a model that sees the frame's later pixels (batch norm)
        self.scores_in_eval_mode = NORMS[cfg.norm].batch_dependent

    @torch.no_grad()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """``log rho(x)`` in nats per frame under the current model, from a causal evaluation (eval mode).

        :param frames: encoded frames ``(N, 1, H, W)`` on the density model's device
        """
        was_training = self.density.training
        self.density.eval()
        try:
            return self.density.log_prob(frames)
        finally:
            self.density.train(was_training)

    def _data_init(self, frames: torch.Tensor) -> None:
        # WN's data-dependent init needs two samples; a lone frame still gives statistics over its pixels
        batch = frames if len(frames) >= 2 else frames.repeat(2, 1, 1, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.density.data_init_(batch)
        self._initialized = True

    def observe(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Train the density model on each frame of ``obs`` in turn and return the per-frame statistics.

        :param obs: a batch of raw observations ``(N, C, H, W)``
        :return: arrays of length ``N``: ``prediction_gain`` (nats), ``pseudo_count``, ``bonus``,
            ``bits_per_dim`` (of each frame before its update), all from causal evaluations (:meth:`score`); and
            ``visit_count``, the exact count of the raw observation including this visit
        """
        visits = np.array([self.counter.visit(frame) for frame in obs], dtype=np.float64)
        frames = self.encoder(obs).to(self.device)
        if not self._initialized:
            self._data_init(frames)
        self.density.train()
        h, w = frames.shape[-2:]
        gains = np.empty(len(frames))
        bpd = np.empty(len(frames))
        counts = np.empty(len(frames))
        for k in range(len(frames)):
            x = frames[k : k + 1]
            # scored before the train-mode forward pass, which moves batch norm's running statistics
            causal_log_p = self.score(x) if self.scores_in_eval_mode else None
            log_p = self.density.log_prob(x)
            if causal_log_p is None:
                causal_log_p = log_p.detach()
            self.optimizer.zero_grad(set_to_none=True)
            # per-dim scale keeps the step size independent of the frame size
            (-log_p.sum() / (h * w)).backward()
            self.optimizer.step()
            self.n_updates += 1
            log_p_after = self.score(x)
            gains[k] = float(log_p_after - causal_log_p)
            bpd[k] = -float(causal_log_p) / (math.log(2.0) * h * w)
            counts[k] = pseudo_count(gains[k], self.n_updates, self.config.c)
        return {
            "prediction_gain": gains,
            "pseudo_count": counts,
            "bonus": pseudo_count_bonus(counts, self.config.beta),
            "bits_per_dim": bpd,
            "visit_count": visits,
        }

    def state_dict(self) -> dict[str, Any]:
        """The density model, its optimizer and update count (for checkpoints: SB3 saves only the agent)."""
        # copies: the optimizer's state dict holds its live moment tensors
        return {
            "density": copy.deepcopy(self.density.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "n_updates": self.n_updates,
            "initialized": self._initialized,
            "counts": dict(self.counter.counts),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (same config)."""
        self.density.load_state_dict(state["density"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_updates = int(state["n_updates"])
        self._initialized = bool(state["initialized"])
        self.counter.counts = dict(state.get("counts", {}))  # absent in checkpoints from before the counts


def exploration_config(options: Mapping[str, Any]) -> CountConfig | PseudoCountConfig:
    """The validated settings of an ``exploration:`` block, by its ``kind``.

    :param options: ``{"kind": "count" | "pseudocount", ...}``
    :raises ConfigError: an unknown kind (listing :data:`EXPLORATION_KINDS`), an unknown key or a bad value
    """
    kind = check_choice(options.get("kind"), "exploration.kind", EXPLORATION_KINDS)
    return (CountConfig if kind == "count" else PseudoCountConfig).from_dict(options)


def wrap_exploration(venv: VecEnv, options: Mapping[str, Any]) -> VecEnv:
    """Wrap ``venv`` with the exploration bonus described by ``options`` (an experiment's ``exploration:``).

    :param venv: the training env
    :param options: ``{"kind": "count", "beta": ...}`` (:class:`CountConfig`) or ``{"kind": "pseudocount", ...}``
        (:class:`PseudoCountConfig`)
    :return: the wrapped env
    """
    config = exploration_config(options)
    if isinstance(config, CountConfig):
        return CountReward(venv, config)
    return PseudoCountReward(venv, config)


class ExplorationLogger(BaseCallback):
    """Records the means of the bonus statistics found in the step infos, under ``exploration/``.

    Tags: ``exploration/bonus``, ``exploration/visit_count`` and ``exploration/distinct_fraction`` (share of
    frames seen for the first time), and for the pseudo-count ``exploration/prediction_gain``,
    ``exploration/density_bits_per_dim``, ``exploration/pseudo_count`` (mean over finite counts) and
    ``exploration/nonpositive_gain_fraction``. Averaged over all steps between two logger dumps. Does nothing for
    envs without a bonus wrapper.
    """

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            stats = info.get(INFO_KEY, info.get(COUNT_INFO_KEY))
            if stats is None:
                continue
            self.logger.record_mean("exploration/bonus", stats["bonus"])
            self.logger.record_mean("exploration/visit_count", stats["visit_count"])
            self.logger.record_mean("exploration/distinct_fraction", float(stats["visit_count"] == 1))
            if "pseudo_count" not in stats:
                continue
            self.logger.record_mean("exploration/prediction_gain", stats["prediction_gain"])
            self.logger.record_mean("exploration/density_bits_per_dim", stats["bits_per_dim"])
            finite = math.isfinite(stats["pseudo_count"])
            self.logger.record_mean("exploration/nonpositive_gain_fraction", float(not finite))
            if finite:
                self.logger.record_mean("exploration/pseudo_count", stats["pseudo_count"])
        return True


#: the name the training pipeline imports (it logs both kinds)
PseudoCountLogger = ExplorationLogger
