"""What the norm-aware value-based policies (DQN, QR-DQN) share: a normalized value network and its policy.

BatchNorm: SB3 keeps the target network in eval mode for its whole life (its running statistics are copied
from the online network at each target update), rollouts use the online network in eval mode and gradient
steps in train mode. The WN inference cache covers the online network only.

``wn_data_init=True``: the data-dependent init runs on the first replay batch, at the first forward pass of a
gradient step (the target network's, which comes first in ``train``), and the target network is then made an
exact copy, so both networks start from the data-initialized weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from agents.policies.base import NormPolicyMixin
from agents.policies.extractors import norm_mlp
from agents.policies.heads import normalized_head
from agents.policies.options import DataInitFlag, RolloutWeightCache, data_init_on_batch


class NormValueNetMixin:
    """Put first in the bases of an SB3 value network (``QNetwork``, ``QuantileNetwork``): its MLP
    (:attr:`net_attr`) is rebuilt with normalized hidden layers; the output layer stays plain.

    :param norm: normalization of the hidden layers, one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param head_norm: the output layer, one of :data:`agents.policies.heads.HEAD_NORMS`
    :param head_kwargs: options of the cosine head
    :param args: the parent's positional arguments
    :param kwargs: the parent's keyword arguments
    """

    #: the attribute holding the ``nn.Sequential`` MLP
    net_attr: ClassVar[str]

    features_dim: int
    net_arch: list[int]
    activation_fn: type[nn.Module]

    def __init__(
        self,
        *args: Any,
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        head_norm: str = "none",
        head_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        out_features = getattr(self, self.net_attr)[-1].out_features
        hidden = norm_mlp(self.features_dim, self.net_arch, self.activation_fn, norm, norm_kwargs)
        last = self.net_arch[-1] if self.net_arch else self.features_dim
        head = normalized_head(nn.Linear(last, out_features), head_norm, head_kwargs)
        setattr(self, self.net_attr, nn.Sequential(*hidden, head))
        self.norm, self.norm_kwargs, self.head_norm, self.head_kwargs = norm, norm_kwargs, head_norm, head_kwargs
        #: called with each observation batch before the forward pass (the policy's data init); not pickled
        self.before_forward: Callable[[PyTorchObs], None] | None = None

    def forward(self, obs: PyTorchObs) -> torch.Tensor:
        if self.before_forward is not None:
            self.before_forward(obs)
        return super().forward(obs)  # type: ignore[misc]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(
            norm=self.norm, norm_kwargs=self.norm_kwargs, head_norm=self.head_norm, head_kwargs=self.head_kwargs
        )
        return data

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["before_forward"] = None  # a bound method of the policy: the policy reconnects it
        return state


class NormValuePolicyMixin(DataInitFlag, RolloutWeightCache, NormPolicyMixin):
    """Put first in the bases of an SB3 value-based policy (``DQNPolicy``, ``QRDQNPolicy``).

    Takes every argument of the parent class plus the ones below.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`; ``None`` takes the class default
    :param norm_kwargs: options of the normalization
    :param wn_data_init: data-dependent init of the WN layers on the first replay batch
        (needs ``norm`` ``"wn"`` or ``"wn+mobn"``)
    :param head_norm: ``"none"``, ``"wn"`` or ``"cosine"``: the output layer (:mod:`agents.policies.heads`)
    :param head_kwargs: options of the cosine head (``scale``, ``learn_scale``)
    :param features_extractor_class: ``None`` takes the class default (flatten; a CNN chosen from the image
        size for Cnn policies; :class:`NormCombinedExtractor` for MultiInput policies)
    :param features_extractor_kwargs: kwargs of the extractor; the policy's ``norm`` is added for the norm-aware
        extractors unless given here
    :param net_arch: hidden layers of the value head (default ``[]`` behind a CNN, ``[64, 64]`` otherwise)
    :param kwargs: the other arguments of the parent class
    """

    #: the norm-aware network class
    network_class: ClassVar[type[BasePolicy]]
    #: attribute names of the online and the target network
    online_attr: ClassVar[str]
    target_attr: ClassVar[str]

    net_args: dict[str, Any]

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
        head_norm: str = "none",
        head_kwargs: dict[str, Any] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        net_arch, features_extractor_class, features_extractor_kwargs = self._setup_norms(
            observation_space,
            norm=norm,
            norm_kwargs=norm_kwargs,
            wn_data_init=wn_data_init,
            head_norm=head_norm,
            head_kwargs=head_kwargs,
            net_arch=net_arch,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
        )
        self.wn_data_init = wn_data_init
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            **kwargs,
        )
        self._register_data_init_flag()

    def _weight_cache_scopes(self) -> list[nn.Module]:
        # the target network is written by SB3's polyak_update: kept out of the cache all the same
        return [getattr(self, self.online_attr)]

    def _make_norm_net(self) -> BasePolicy:
        """A fresh online or target network (each with its own features extractor, as SB3)."""
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        net = self.network_class(
            **net_args,
            norm=self.norm,
            norm_kwargs=self.norm_kwargs,
            head_norm=self.head_norm,
            head_kwargs=self.head_kwargs,
        ).to(self.device)
        net.before_forward = self._maybe_data_init
        return net

    def _maybe_data_init(self, obs: PyTorchObs) -> None:
        # SB3 toggles only `self.training` (and the online network) with set_training_mode
        if not (self.training and self.data_init_pending):
            return
        self._set_data_init_done(True)  # first, since the init runs the network's forward again
        online = getattr(self, self.online_attr)
        if not data_init_on_batch(online, obs):
            self._set_data_init_done(False)  # a single sample: wait for a real batch
            return
        getattr(self, self.target_attr).load_state_dict(online.state_dict())

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            norm=self.norm,
            norm_kwargs=self.norm_kwargs,
            wn_data_init=self.wn_data_init,
            head_norm=self.head_norm,
            head_kwargs=self.head_kwargs,
        )
        return data

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for attr in (self.online_attr, self.target_attr):
            net = self.__dict__["_modules"].get(attr)
            if net is not None:
                net.before_forward = self._maybe_data_init
