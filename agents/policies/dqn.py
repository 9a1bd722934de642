"""Norm-aware DQN policies: the Q-network and its target network built with normalized hidden layers.

Same alias names as the actor-critic policies (``WnCnnPolicy``, ``BnMlpPolicy``, ``LnMultiInputPolicy``, ... see
:mod:`agents.policies.actor_critic`); the shared behaviour (BN modes, WN data init) is in
:mod:`agents.policies.value_based`.
"""

from __future__ import annotations

from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork

from agents.policies.base import define_aliases
from agents.policies.extractors import NormCombinedExtractor
from agents.policies.value_based import NormValueNetMixin, NormValuePolicyMixin


class NormQNetwork(NormValueNetMixin, QNetwork):
    """SB3's :class:`QNetwork` with normalized hidden layers (options: :class:`NormValueNetMixin`)."""

    net_attr = "q_net"


class NormDQNPolicy(NormValuePolicyMixin, DQNPolicy):
    """SB3's :class:`DQNPolicy` whose online and target Q-networks have normalized hidden layers.

    Options: :class:`~agents.policies.value_based.NormValuePolicyMixin`.
    """

    network_class = NormQNetwork
    online_attr, target_attr = "q_net", "q_net_target"

    def make_q_net(self) -> NormQNetwork:
        return self._make_norm_net()


class NormDQNCnnPolicy(NormDQNPolicy):
    """:class:`NormDQNPolicy` for channel-first images (Nature CNN from 36x36 up, the MinAtar CNN below)."""

    default_extractor = None


class NormDQNMultiInputPolicy(NormDQNPolicy):
    """:class:`NormDQNPolicy` for ``Dict`` observations (normalized CNN for the image keys)."""

    default_extractor = NormCombinedExtractor


_ALIASES = define_aliases(
    globals(), {"Mlp": NormDQNPolicy, "Cnn": NormDQNCnnPolicy, "MultiInput": NormDQNMultiInputPolicy}, "DQN policy"
)


def dqn_aliases() -> dict[str, type[BasePolicy]]:
    """Every DQN alias name -> policy class (``NormMlpPolicy``, ``WnCnnPolicy``, ...)."""
    return dict(_ALIASES)
