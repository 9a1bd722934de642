"""Norm-aware DQN policies: the Q-network and its target network built with normalized hidden layers.

Same alias names as the actor-critic policies (``WnCnnPolicy``, ``BnMlpPolicy``, ... see
:mod:`agents.policies.actor_critic`).

BatchNorm: SB3's DQN keeps the target network in eval mode for its whole life (its running statistics are
copied from the online network at each target update), rollouts use the online network in eval mode and
gradient steps in train mode.

``wn_data_init=True``: the data-dependent init runs on the first replay batch, at the first forward pass of a
gradient step (the target network's, which comes first in ``DQN.train``), and the target network is then made
an exact copy, so both networks start from the data-initialized weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from agents.policies.extractors import NormCombinedExtractor, cnn_class_for, norm_mlp
from agents.policies.options import (
    DataInitFlag,
    RolloutWeightCache,
    check_policy_norm,
    data_init_on_batch,
    extractor_with_norm,
    norm_aliases,
)


class NormQNetwork(QNetwork):
    """SB3's :class:`QNetwork` with normalized hidden layers (the output layer stays plain).

    :param norm: normalization of the hidden layers, one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param args: :class:`QNetwork` positional arguments
    :param kwargs: :class:`QNetwork` keyword arguments
    """

    def __init__(
        self, *args: Any, norm: str = "none", norm_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        hidden = norm_mlp(self.features_dim, self.net_arch, self.activation_fn, norm, norm_kwargs)
        last = self.net_arch[-1] if self.net_arch else self.features_dim
        self.q_net = nn.Sequential(*hidden, nn.Linear(last, int(self.action_space.n)))
        self.norm, self.norm_kwargs = norm, norm_kwargs
        #: called with each observation batch before the forward pass (the policy's data init)
        self.before_forward: Callable[[PyTorchObs], None] | None = None

    def forward(self, obs: PyTorchObs) -> torch.Tensor:
        if self.before_forward is not None:
            self.before_forward(obs)
        return super().forward(obs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(norm=self.norm, norm_kwargs=self.norm_kwargs)
        return data


class NormDQNPolicy(DataInitFlag, RolloutWeightCache, DQNPolicy):
    """SB3's :class:`DQNPolicy` whose online and target Q-networks have normalized hidden layers.

    Takes every argument of :class:`DQNPolicy` plus the ones below.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`; ``None`` takes the class default
    :param norm_kwargs: options of the normalization
    :param wn_data_init: data-dependent init of the WN layers on the first replay batch
        (needs ``norm`` ``"wn"`` or ``"wn+mobn"``)
    :param features_extractor_class: ``None`` takes the class default (flatten; a CNN chosen from the image
        size for Cnn policies; :class:`NormCombinedExtractor` for MultiInput policies)
    :param features_extractor_kwargs: kwargs of the extractor; the policy's ``norm`` is added for the norm-aware
        extractors unless given here
    :param net_arch: hidden layers of the Q head (default ``[]`` behind a CNN, ``[64, 64]`` otherwise)
    :param kwargs: the other :class:`DQNPolicy` arguments
    """

    default_norm: ClassVar[str] = "none"
    default_extractor: ClassVar[type[BaseFeaturesExtractor] | None] = FlattenExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        *,
        norm: str | None = None,
        norm_kwargs: dict[str, Any] | None = None,
        wn_data_init: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        norm = check_policy_norm(self.default_norm if norm is None else norm, wn_data_init)
        if features_extractor_class is None:
            features_extractor_class = self.default_extractor or cnn_class_for(observation_space)
            if self.default_extractor is None and net_arch is None:
                net_arch = []  # SB3's DQN CnnPolicy default
        features_extractor_class, features_extractor_kwargs = extractor_with_norm(
            features_extractor_class, features_extractor_kwargs, norm, norm_kwargs
        )
        # read by make_q_net, which the parent constructor calls
        self.norm, self.norm_kwargs, self.wn_data_init = norm, norm_kwargs, wn_data_init
        self._data_init_done = False
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            **kwargs,
        )

    def _weight_cache_scope(self) -> nn.Module:
        # the target network is written through `.data` (SB3's polyak_update), which the cache cannot see
        return self.q_net

    def make_q_net(self) -> NormQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        q_net = NormQNetwork(**net_args, norm=self.norm, norm_kwargs=self.norm_kwargs).to(self.device)
        q_net.before_forward = self._maybe_data_init
        return q_net

    def _maybe_data_init(self, obs: PyTorchObs) -> None:
        # SB3 toggles only `self.training` (and the online network) with set_training_mode
        if not (self.training and self.data_init_pending):
            return
        self._data_init_done = True  # first, since the init runs the Q-network's forward again
        if not data_init_on_batch(self.q_net, obs):
            self._data_init_done = False  # a single sample: wait for a real batch
            return
        self.q_net_target.load_state_dict(self.q_net.state_dict())

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(norm=self.norm, norm_kwargs=self.norm_kwargs, wn_data_init=self.wn_data_init)
        return data


class NormDQNCnnPolicy(NormDQNPolicy):
    """:class:`NormDQNPolicy` for channel-first images (Nature CNN from 36x36 up, the MinAtar CNN below)."""

    default_extractor = None


class NormDQNMultiInputPolicy(NormDQNPolicy):
    """:class:`NormDQNPolicy` for ``Dict`` observations (normalized CNN for the image keys)."""

    default_extractor = NormCombinedExtractor


# One class per alias, so that saved models name an importable class (SB3 pickles the policy class).
class WnMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with weight norm."""

    default_norm = "wn"


class WnMobnMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with weight norm and mean-only batch norm."""

    default_norm = "wn+mobn"


class BnMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with batch norm."""

    default_norm = "bn"


class LnMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with layer norm."""

    default_norm = "ln"


class GnMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with group norm."""

    default_norm = "gn"


class InMlpPolicy(NormDQNPolicy):
    """DQN MLP policy for ``norm="in"``: instance norm is undefined on vectors, so this is layer norm."""

    default_norm = "in"


class SnMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with switchable norm."""

    default_norm = "sn"


class BrnMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with batch renormalization."""

    default_norm = "brn"


class RmsMlpPolicy(NormDQNPolicy):
    """DQN MLP policy with RMS norm."""

    default_norm = "rms"


class WnCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with weight norm."""

    default_norm = "wn"


class WnMobnCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with weight norm and mean-only batch norm."""

    default_norm = "wn+mobn"


class BnCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with batch norm."""

    default_norm = "bn"


class LnCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with layer norm."""

    default_norm = "ln"


class GnCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with group norm."""

    default_norm = "gn"


class InCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with instance norm in the convolutions (layer norm in the linear layers)."""

    default_norm = "in"


class SnCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with switchable norm."""

    default_norm = "sn"


class BrnCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with batch renormalization."""

    default_norm = "brn"


class RmsCnnPolicy(NormDQNCnnPolicy):
    """DQN CNN policy with RMS norm."""

    default_norm = "rms"


def dqn_aliases() -> dict[str, type[BasePolicy]]:
    """Every DQN alias name -> policy class (``NormMlpPolicy``, ``WnCnnPolicy``, ...)."""
    generic = {
        "NormMlpPolicy": NormDQNPolicy,
        "NormCnnPolicy": NormDQNCnnPolicy,
        "NormMultiInputPolicy": NormDQNMultiInputPolicy,
    }
    return norm_aliases(globals(), generic)
