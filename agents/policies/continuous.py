"""What the norm-aware off-policy actor-critic policies (SAC, TD3/DDPG, TQC, CrossQ) share.

* :class:`NormActorMixin` -- an SB3 actor whose hidden layers are rebuilt normalized (``latent_pi`` of the
  SAC/TQC/CrossQ actors, the MLP of the TD3 actor); its heads stay plain.
* :class:`NormCriticMixin` -- an SB3 critic (``ContinuousCritic``, TQC's ``Critic``, ``CrossQCritic``) whose
  Q-networks are rebuilt normalized.
* :class:`NormOffPolicyMixin` -- the policy: ``norm`` for both, ``actor_norm`` / ``critic_norm`` overrides
  (the literature normalizes critics first), each network's own features extractor built with its norm.

BatchNorm: SB3 puts actor and critic in train mode for updates and in eval mode for acting; target networks
stay in eval mode and receive the ``running_*`` statistics at each target update (SB3 copies every buffer whose
name contains ``running_``, which covers rlnorm's BN/BRN/SN and mean-only BN). The WN inference cache covers the
actor and the critic, never the targets (polyak updates write them).
"""

from __future__ import annotations

from typing import Any, ClassVar

from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents.policies.base import NormPolicyMixin, extractor_kwargs_for
from agents.policies.extractors import norm_mlp
from agents.policies.heads import normalize_heads_
from agents.policies.options import RolloutWeightCache, state_without_graph


class NormActorMixin:
    """Put first in the bases of an SB3 actor: its hidden layers are rebuilt with ``norm``.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param head_norm: the output layers (``mu``, ``log_std``), one of :data:`agents.policies.heads.HEAD_NORMS`
    :param head_kwargs: options of the cosine head
    :param args: the parent's positional arguments
    :param kwargs: the parent's keyword arguments
    """

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
        self.norm, self.norm_kwargs, self.head_norm, self.head_kwargs = norm, norm_kwargs, head_norm, head_kwargs
        self._rebuild_hidden()
        normalize_heads_(self, ["mu", "log_std"], head_norm, head_kwargs)

    def _hidden(self) -> list[nn.Module]:
        return norm_mlp(self.features_dim, self.net_arch, self.activation_fn, self.norm, self.norm_kwargs)

    def _rebuild_hidden(self) -> None:
        """Replace the parent's hidden layers (``latent_pi`` by default) by normalized ones."""
        self.latent_pi = nn.Sequential(*self._hidden())

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(
            norm=self.norm, norm_kwargs=self.norm_kwargs, head_norm=self.head_norm, head_kwargs=self.head_kwargs
        )
        return data

    def __getstate__(self) -> dict[str, Any]:
        return state_without_graph(self)


class NormCriticMixin:
    """Put first in the bases of an SB3 critic: each Q-network (``qf0``, ``qf1``, ...) is rebuilt with ``norm``.

    Unlike SB3's critics it records every constructor argument, so it also round-trips through
    ``BaseModel.save`` / ``load`` on its own.

    :param net_arch: hidden layers of each Q-network
    :param features_extractor: the (possibly shared) features extractor
    :param features_dim: its number of features
    :param activation_fn: activation function
    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`
    :param norm_kwargs: options of the normalization
    :param head_norm: the output layer of each Q-network, one of :data:`agents.policies.heads.HEAD_NORMS`
    :param head_kwargs: options of the cosine head
    :param kwargs: the parent's other keyword arguments (``n_critics``, ``n_quantiles``, ...)
    """

    q_networks: list[nn.Module]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        *,
        norm: str = "none",
        norm_kwargs: dict[str, Any] | None = None,
        head_norm: str = "none",
        head_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            net_arch=net_arch,
            features_extractor=features_extractor,
            features_dim=features_dim,
            activation_fn=activation_fn,
            **kwargs,
        )
        self.net_arch, self.features_dim, self.activation_fn = net_arch, features_dim, activation_fn
        self.norm, self.norm_kwargs, self._critic_kwargs = norm, norm_kwargs, kwargs
        self.head_norm, self.head_kwargs = head_norm, head_kwargs
        self._rebuild_q_networks()
        normalize_heads_(self, [f"qf{i}" for i in range(len(self.q_networks))], head_norm, head_kwargs)

    def _rebuild_q_networks(self) -> None:
        """Replace each Q-network by a normalized one with the same output size."""
        in_dim = self.features_dim + get_action_dim(self.action_space)
        last = self.net_arch[-1] if self.net_arch else in_dim
        networks = []
        for idx, old in enumerate(self.q_networks):
            out = [m for m in old.modules() if isinstance(m, nn.Linear)][-1].out_features
            hidden = norm_mlp(in_dim, self.net_arch, self.activation_fn, self.norm, self.norm_kwargs)
            q_net = nn.Sequential(*hidden, nn.Linear(last, out))
            self.add_module(f"qf{idx}", q_net)
            networks.append(q_net)
        self.q_networks = networks

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(
            self._critic_kwargs,
            net_arch=self.net_arch,
            features_extractor=self.features_extractor,
            features_dim=self.features_dim,
            activation_fn=self.activation_fn,
            norm=self.norm,
            norm_kwargs=self.norm_kwargs,
            head_norm=self.head_norm,
            head_kwargs=self.head_kwargs,
        )
        return data


class NormOffPolicyMixin(RolloutWeightCache, NormPolicyMixin):
    """Put first in the bases of an SB3 off-policy actor-critic policy (``SACPolicy``, ``TD3Policy``, ...).

    Takes every argument of the parent class plus the ones below.

    :param norm: norm of the actor and the critics, one of :data:`rlnorm.layers.LAYER_NORMS`; ``None`` takes
        the class default (the norm of the name for aliases)
    :param actor_norm: norm of the actor (its features extractor and hidden layers), default ``norm``
    :param critic_norm: norm of the critics (their features extractor and hidden layers), default ``norm``
    :param norm_kwargs: options of the normalization
    :param head_norm: ``"none"``, ``"wn"`` or ``"cosine"``: the output layers of actor and critics
        (:mod:`agents.policies.heads`)
    :param head_kwargs: options of the cosine head (``scale``, ``learn_scale``)
    :param features_extractor_class: ``None`` takes the class default (flatten; a CNN chosen from the image
        size for Cnn policies; :class:`NormCombinedExtractor` for MultiInput policies)
    :param features_extractor_kwargs: kwargs of the extractor; each network's norm is added for the norm-aware
        extractors unless given here
    :param kwargs: the other arguments of the parent class
    """

    #: the norm-aware actor and critic classes of the family
    actor_class: ClassVar[type[nn.Module]]
    critic_class: ClassVar[type[nn.Module]]
    #: SB3's off-policy Cnn policies keep their hidden layers behind the CNN
    empty_net_arch_behind_cnn = False

    actor_kwargs: dict[str, Any]
    critic_kwargs: dict[str, Any]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        *,
        norm: str | None = None,
        actor_norm: str | None = None,
        critic_norm: str | None = None,
        norm_kwargs: dict[str, Any] | None = None,
        head_norm: str = "none",
        head_kwargs: dict[str, Any] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._user_extractor_kwargs = dict(features_extractor_kwargs or {})
        net_arch, features_extractor_class, features_extractor_kwargs = self._setup_norms(
            observation_space,
            norm=norm,
            norm_kwargs=norm_kwargs,
            actor_norm=actor_norm,
            critic_norm=critic_norm,
            head_norm=head_norm,
            head_kwargs=head_kwargs,
            net_arch=net_arch,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
        )
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

    def _norm_extractor(self, norm: str) -> BaseFeaturesExtractor:
        """A fresh features extractor for a network with ``norm``."""
        cls = self.features_extractor_class
        kwargs = extractor_kwargs_for(cls, self.features_extractor_kwargs, norm, self._user_extractor_kwargs)
        return cls(self.observation_space, **kwargs).to(self.device)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> nn.Module:
        extractor = features_extractor or self._norm_extractor(self.actor_norm)
        kwargs = self._update_features_extractor(self.actor_kwargs, extractor)
        return self.actor_class(**kwargs, norm=self.actor_norm, **self._net_options()).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> nn.Module:
        extractor = features_extractor or self._norm_extractor(self.critic_norm)
        kwargs = self._update_features_extractor(self.critic_kwargs, extractor)
        return self.critic_class(**kwargs, norm=self.critic_norm, **self._net_options()).to(self.device)

    def _net_options(self) -> dict[str, Any]:
        return {"norm_kwargs": self.norm_kwargs, "head_norm": self.head_norm, "head_kwargs": self.head_kwargs}

    def _weight_cache_scopes(self) -> list[nn.Module]:
        # never the targets: SB3's polyak_update writes them between any two calls
        return [self.actor, self.critic]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self._norm_constructor_parameters())
        data["features_extractor_kwargs"] = self._user_extractor_kwargs or None
        return data
