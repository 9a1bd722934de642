"""Norm-aware actor-critic policies for PPO, A2C and TRPO (MaskablePPO: :mod:`agents.policies.maskable`).

``import agents`` registers the aliases (:func:`agents.policies.register_policies`), after which a policy is
chosen by name::

    PPO("WnCnnPolicy", env)                     # weight norm in the CNN (and MLP) layers
    A2C("LnMlpPolicy", "CartPole-v1")           # layer norm in the hidden layers
    TRPO("BnMultiInputPolicy", dict_env)        # batch norm (running statistics during rollouts)
    PPO("NormCnnPolicy", env, policy_kwargs=dict(norm="gn", wn_data_init=False))
    PPO("NormMlpPolicy", env, policy_kwargs=dict(actor_norm="none", critic_norm="ln"))

Alias names are ``<Norm><Network>Policy`` with ``<Norm>`` in :data:`~agents.policies.options.ALIAS_NORMS` --
exactly ``Wn``, ``WnMobn``, ``Bn``, ``Ln``, ``Gn``, ``In``, ``Sn``, ``Brn``, ``Rms`` (only the first letter of each
part upper case) -- and ``<Network>`` one of ``Mlp``, ``Cnn``, ``MultiInput``; ``NormMlpPolicy``,
``NormCnnPolicy``, ``NormMultiInputPolicy`` take the norm from ``policy_kwargs`` (default ``"none"``: the same
network as SB3's, built by this code, for fair comparisons). A named policy is what its name says: a
``norm``, ``actor_norm`` or ``critic_norm`` that differs from it is an error. The same names exist for every
algorithm (:func:`agents.policies.register_policies`).

Policy kwargs added to SB3's:

* ``norm`` -- any of :data:`rlnorm.layers.LAYER_NORMS`; applied to every hidden layer (CNN convolutions, the
  CNN's linear layer, the MLP layers). The output heads (action logits, value) stay plain linear layers.
  Fully connected layers use layer norm where ``norm="in"`` (instance norm needs spatial inputs), so
  ``InMlpPolicy`` is layer norm.
* ``actor_norm`` / ``critic_norm`` -- the norm of the policy / value MLP layers (default ``norm``).
* ``norm_kwargs`` -- options of the norm (``momentum``, ``num_groups``, ...).
* ``wn_data_init`` -- WN data-dependent init (Salimans & Kingma, 2016) on the first training batch (the first
  minibatch of the first rollout, before the first gradient step); recorded in the state dict.

BatchNorm: SB3 puts the policy in eval mode for rollouts and ``predict`` and in train mode for updates, so
actions are drawn with running statistics and gradients use batch statistics; the running statistics are
buffers, saved and restored with the model.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from agents.policies.base import NormPolicyMixin, define_aliases
from agents.policies.extractors import NormCombinedExtractor, NormMlpExtractor
from agents.policies.options import DataInitFlag, RolloutWeightCache, data_init_on_batch, orthogonal_init_weights


class _LatentTrunk(nn.Module):
    """Observation -> latent features of an actor-critic policy (every layer WN data init should see)."""

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.policy.extract_features(obs)
        if self.policy.share_features_extractor:
            return self.policy.mlp_extractor(features)
        pi_features, vf_features = features
        mlp = self.policy.mlp_extractor
        return mlp.forward_actor(pi_features), mlp.forward_critic(vf_features)


class NormActorCriticMixin(DataInitFlag, RolloutWeightCache, NormPolicyMixin):
    """What makes an SB3 actor-critic policy class (``ActorCriticPolicy``, sb3-contrib's
    ``MaskableActorCriticPolicy``) norm-aware; put it first in the bases.

    Takes every argument of the parent class plus the ones below. Orthogonal init (``ortho_init``) sets the
    *effective* weights, so it is also correct for weight-normalized layers.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`; ``None`` takes the class default
        (``"none"`` here, the norm of the name for aliases such as ``WnMlpPolicy``)
    :param norm_kwargs: options of the normalization (e.g. ``momentum``, ``num_groups``)
    :param actor_norm: norm of the policy MLP layers (default ``norm``)
    :param critic_norm: norm of the value MLP layers (default ``norm``); the features extractor has ``norm``
    :param wn_data_init: data-dependent init of the WN layers on the first training batch
        (needs ``norm`` ``"wn"`` or ``"wn+mobn"``; the heads keep their init)
    :param head_norm: ``"none"``, ``"wn"`` or ``"cosine"``: the action and value output layers
        (:mod:`agents.policies.heads`)
    :param head_kwargs: options of the cosine head (``scale``, ``learn_scale``)
    :param features_extractor_class: ``None`` takes the class default (flatten; a CNN chosen from the image
        size for Cnn policies; :class:`NormCombinedExtractor` for MultiInput policies)
    :param features_extractor_kwargs: kwargs of the extractor; the policy's ``norm`` is added for the norm-aware
        extractors unless given here
    :param net_arch: as SB3 (default ``[]`` behind a CNN, ``dict(pi=[64, 64], vf=[64, 64])`` otherwise)
    :param kwargs: the other arguments of the parent class
    """

    init_weights = staticmethod(orthogonal_init_weights)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        *,
        norm: str | None = None,
        norm_kwargs: dict[str, Any] | None = None,
        actor_norm: str | None = None,
        critic_norm: str | None = None,
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
            actor_norm=actor_norm,
            critic_norm=critic_norm,
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
            net_arch,
            activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            **kwargs,
        )
        self._register_data_init_flag()

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = NormMlpExtractor(
            self.features_dim,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            norm=self.norm,
            norm_kwargs=self.norm_kwargs,
            device=self.device,
            actor_norm=self.actor_norm,
            critic_norm=self.critic_norm,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self._normalize_heads(["action_net", "value_net"], lr_schedule)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self._norm_constructor_parameters(), wn_data_init=self.wn_data_init)
        return data

    def _maybe_data_init(self, obs: PyTorchObs) -> None:
        """Run the WN data-dependent init on ``obs`` if it is pending and this is a training batch."""
        if not (self.training and self.data_init_pending):
            return
        self._set_data_init_done(True)  # first, since the init runs this policy's forward again
        if not data_init_on_batch(_LatentTrunk(self), obs):
            self._set_data_init_done(False)  # a single sample: wait for a real batch

    def extract_features(  # type: ignore[override]
        self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        self._maybe_data_init(obs)
        return super().extract_features(obs, features_extractor)

    def get_distribution(self, obs: PyTorchObs, *args: Any, **kwargs: Any) -> Distribution:
        self._maybe_data_init(obs)
        return super().get_distribution(obs, *args, **kwargs)

    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        self._maybe_data_init(obs)
        return super().predict_values(obs)


class NormActorCriticPolicy(NormActorCriticMixin, ActorCriticPolicy):
    """SB3's :class:`ActorCriticPolicy` (PPO, A2C, TRPO) whose hidden layers are normalized by ``norm``.

    Options: :class:`NormActorCriticMixin`.
    """


class NormActorCriticCnnPolicy(NormActorCriticPolicy):
    """:class:`NormActorCriticPolicy` for channel-first images: :class:`~agents.policies.extractors.NormNatureCNN` for
    images of at least 36x36 (Atari), :class:`~agents.policies.extractors.NormSmallCNN` below (MinAtar)."""

    default_extractor = None


class NormMultiInputActorCriticPolicy(NormActorCriticPolicy):
    """:class:`NormActorCriticPolicy` for ``Dict`` observations (normalized CNN for the image keys)."""

    default_extractor = NormCombinedExtractor


ACTOR_CRITIC_FAMILIES: dict[str, type[ActorCriticPolicy]] = {
    "Mlp": NormActorCriticPolicy,
    "Cnn": NormActorCriticCnnPolicy,
    "MultiInput": NormMultiInputActorCriticPolicy,
}
_ALIASES = define_aliases(globals(), ACTOR_CRITIC_FAMILIES, "Actor-critic policy (PPO, A2C, TRPO)")


def actor_critic_aliases() -> dict[str, type[ActorCriticPolicy]]:
    """Every PPO/A2C/TRPO alias name -> policy class (``NormMlpPolicy``, ``WnCnnPolicy``, ...)."""
    return dict(_ALIASES)
