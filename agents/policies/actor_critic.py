"""Norm-aware actor-critic policies for PPO and A2C.

``import agents`` registers the aliases (:func:`agents.policies.register_policies`), after which a policy is
chosen by name::

    PPO("WnCnnPolicy", env)                     # weight norm in the CNN (and MLP) layers
    A2C("LnMlpPolicy", "CartPole-v1")           # layer norm in the hidden layers
    DQN("BnCnnPolicy", atari_env)               # batch norm (running statistics during rollouts)
    PPO("NormCnnPolicy", env, policy_kwargs=dict(norm="gn", wn_data_init=False))

Alias names are ``<Norm><Kind>Policy`` with ``<Norm>`` in :data:`ALIAS_NORMS` -- exactly ``Wn``, ``WnMobn``,
``Bn``, ``Ln``, ``Gn``, ``In``, ``Sn``, ``Brn``, ``Rms`` (only the first letter of each part upper case) -- and
``<Kind>`` one of ``Cnn``, ``Mlp``; ``NormCnnPolicy``, ``NormMlpPolicy``, ``NormMultiInputPolicy`` take
the norm from ``policy_kwargs`` (default ``"none"``: the same network as SB3's, built by this code, for fair
comparisons). The same names exist for PPO, A2C (classes here) and DQN (classes in :mod:`agents.policies.dqn`).

Policy kwargs added to SB3's:

* ``norm`` -- any of :data:`rlnorm.layers.LAYER_NORMS`; applied to every hidden layer (CNN convolutions, the
  CNN's linear layer, the MLP layers). The output heads (action logits, value) stay plain linear layers.
  Fully connected layers use layer norm where ``norm="in"`` (instance norm needs spatial inputs).
* ``norm_kwargs`` -- options of the norm (``momentum``, ``num_groups``, ...).
* ``wn_data_init`` -- WN data-dependent init (Salimans & Kingma, 2016) on the first training batch (the first
  minibatch of the first rollout, before the first gradient step); recorded in the state dict.

BatchNorm: SB3 puts the policy in eval mode for rollouts and ``predict`` and in train mode for updates, so
actions are drawn with running statistics and gradients use batch statistics; the running statistics are
buffers, saved and restored with the model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from agents.policies.extractors import NormCombinedExtractor, NormMlpExtractor, cnn_class_for
from agents.policies.options import (
    DataInitFlag,
    RolloutWeightCache,
    check_policy_norm,
    data_init_on_batch,
    extractor_with_norm,
    norm_aliases,
    orthogonal_init_weights,
)


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


class NormActorCriticPolicy(DataInitFlag, RolloutWeightCache, ActorCriticPolicy):
    """SB3's :class:`ActorCriticPolicy` whose hidden layers are normalized by ``norm``.

    Takes every argument of :class:`ActorCriticPolicy` plus the ones below. Orthogonal init (``ortho_init``)
    sets the *effective* weights, so it is also correct for weight-normalized layers.

    :param norm: one of :data:`rlnorm.layers.LAYER_NORMS`; ``None`` takes the class default
        (``"none"`` here, the norm of the name for aliases such as ``WnMlpPolicy``)
    :param norm_kwargs: options of the normalization (e.g. ``momentum``, ``num_groups``)
    :param wn_data_init: data-dependent init of the WN layers on the first training batch
        (needs ``norm`` ``"wn"`` or ``"wn+mobn"``)
    :param features_extractor_class: ``None`` takes the class default (flatten; a CNN chosen from the image
        size for Cnn policies; :class:`NormCombinedExtractor` for MultiInput policies)
    :param features_extractor_kwargs: kwargs of the extractor; the policy's ``norm`` is added for the norm-aware
        extractors unless given here
    :param net_arch: as SB3 (default ``[]`` behind a CNN, ``dict(pi=[64, 64], vf=[64, 64])`` otherwise)
    :param kwargs: the other :class:`ActorCriticPolicy` arguments
    """

    #: norm used when the ``norm`` kwarg is not given
    default_norm: ClassVar[str] = "none"
    #: extractor used when ``features_extractor_class`` is not given (``None``: CNN chosen by image size)
    default_extractor: ClassVar[type[BaseFeaturesExtractor] | None] = FlattenExtractor

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
        wn_data_init: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        norm = check_policy_norm(self.default_norm if norm is None else norm, wn_data_init)
        if features_extractor_class is None:
            features_extractor_class = self.default_extractor or cnn_class_for(observation_space)
            if self.default_extractor is None and net_arch is None:
                net_arch = []  # SB3's CnnPolicy default: the heads sit directly on the CNN features
        features_extractor_class, features_extractor_kwargs = extractor_with_norm(
            features_extractor_class, features_extractor_kwargs, norm, norm_kwargs
        )
        # read by _build_mlp_extractor, which the parent constructor calls
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

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = NormMlpExtractor(
            self.features_dim,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            norm=self.norm,
            norm_kwargs=self.norm_kwargs,
            device=self.device,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(norm=self.norm, norm_kwargs=self.norm_kwargs, wn_data_init=self.wn_data_init)
        return data

    def _maybe_data_init(self, obs: PyTorchObs) -> None:
        """Run the WN data-dependent init on ``obs`` if it is pending and this is a training batch."""
        if not (self.training and self.data_init_pending):
            return
        self._data_init_done = True  # first, since the init runs this policy's forward again
        if not data_init_on_batch(_LatentTrunk(self), obs):
            self._data_init_done = False  # a single sample: wait for a real batch

    def extract_features(  # type: ignore[override]
        self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        self._maybe_data_init(obs)
        return super().extract_features(obs, features_extractor)

    def get_distribution(self, obs: PyTorchObs) -> Distribution:
        self._maybe_data_init(obs)
        return super().get_distribution(obs)

    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        self._maybe_data_init(obs)
        return super().predict_values(obs)


class NormActorCriticCnnPolicy(NormActorCriticPolicy):
    """:class:`NormActorCriticPolicy` for channel-first images: :class:`~agents.policies.extractors.NormNatureCNN` for
    images of at least 36x36 (Atari), :class:`~agents.policies.extractors.NormSmallCNN` below (MinAtar)."""

    default_extractor = None


class NormMultiInputActorCriticPolicy(NormActorCriticPolicy):
    """:class:`NormActorCriticPolicy` for ``Dict`` observations (normalized CNN for the image keys)."""

    default_extractor = NormCombinedExtractor


# One class per alias, so that saved models name an importable class (SB3 pickles the policy class).
class WnMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with weight norm."""

    default_norm = "wn"


class WnMobnMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with weight norm and mean-only batch norm."""

    default_norm = "wn+mobn"


class BnMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with batch norm."""

    default_norm = "bn"


class LnMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with layer norm."""

    default_norm = "ln"


class GnMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with group norm."""

    default_norm = "gn"


class InMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy for ``norm="in"``: instance norm is undefined on vectors, so this is layer norm."""

    default_norm = "in"


class SnMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with switchable norm."""

    default_norm = "sn"


class BrnMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with batch renormalization."""

    default_norm = "brn"


class RmsMlpPolicy(NormActorCriticPolicy):
    """Actor-critic MLP policy with RMS norm."""

    default_norm = "rms"


class WnCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with weight norm."""

    default_norm = "wn"


class WnMobnCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with weight norm and mean-only batch norm."""

    default_norm = "wn+mobn"


class BnCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with batch norm."""

    default_norm = "bn"


class LnCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with layer norm."""

    default_norm = "ln"


class GnCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with group norm."""

    default_norm = "gn"


class InCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with instance norm in the convolutions (layer norm in the linear layer)."""

    default_norm = "in"


class SnCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with switchable norm."""

    default_norm = "sn"


class BrnCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with batch renormalization."""

    default_norm = "brn"


class RmsCnnPolicy(NormActorCriticCnnPolicy):
    """Actor-critic CNN policy with RMS norm."""

    default_norm = "rms"


def actor_critic_aliases() -> dict[str, type[ActorCriticPolicy]]:
    """Every PPO/A2C alias name -> policy class (``NormMlpPolicy``, ``WnCnnPolicy``, ...)."""
    generic = {
        "NormMlpPolicy": NormActorCriticPolicy,
        "NormCnnPolicy": NormActorCriticCnnPolicy,
        "NormMultiInputPolicy": NormMultiInputActorCriticPolicy,
    }
    return norm_aliases(globals(), generic)
