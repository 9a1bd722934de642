"""Norm-aware SAC policies: ``SAC("WnMlpPolicy", env)``, ``SAC("NormMlpPolicy", env, policy_kwargs={...})``.

Options and BN/cache behaviour: :mod:`agents.policies.continuous`.
"""

from __future__ import annotations

from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.sac.policies import Actor, SACPolicy

from agents.policies.base import define_aliases
from agents.policies.continuous import NormActorMixin, NormCriticMixin, NormOffPolicyMixin
from agents.policies.extractors import NormCombinedExtractor


class NormSACActor(NormActorMixin, Actor):
    """SB3's SAC :class:`Actor` with normalized hidden layers."""


class NormContinuousCritic(NormCriticMixin, ContinuousCritic):
    """SB3's :class:`ContinuousCritic` (SAC, TD3, DDPG) with normalized Q-networks."""


class NormSACPolicy(NormOffPolicyMixin, SACPolicy):
    """SB3's :class:`SACPolicy` with normalized actor and critics (options: :class:`NormOffPolicyMixin`)."""

    actor_class, critic_class = NormSACActor, NormContinuousCritic


class NormSACCnnPolicy(NormSACPolicy):
    """:class:`NormSACPolicy` for channel-first images."""

    default_extractor = None


class NormSACMultiInputPolicy(NormSACPolicy):
    """:class:`NormSACPolicy` for ``Dict`` observations."""

    default_extractor = NormCombinedExtractor


_ALIASES = define_aliases(
    globals(), {"Mlp": NormSACPolicy, "Cnn": NormSACCnnPolicy, "MultiInput": NormSACMultiInputPolicy}, "SAC policy"
)


def sac_aliases() -> dict[str, type[BasePolicy]]:
    """Every SAC alias name -> policy class."""
    return dict(_ALIASES)
