"""Norm-aware QR-DQN (sb3-contrib) policies: quantile network and target with normalized hidden layers.

Same alias names and options as DQN (:mod:`agents.policies.dqn`, :mod:`agents.policies.value_based`).
"""

from __future__ import annotations

from sb3_contrib.qrdqn.policies import QRDQNPolicy, QuantileNetwork
from stable_baselines3.common.policies import BasePolicy

from agents.policies.base import define_aliases
from agents.policies.extractors import NormCombinedExtractor
from agents.policies.value_based import NormValueNetMixin, NormValuePolicyMixin


class NormQuantileNetwork(NormValueNetMixin, QuantileNetwork):
    """sb3-contrib's :class:`QuantileNetwork` with normalized hidden layers."""

    net_attr = "quantile_net"


class NormQRDQNPolicy(NormValuePolicyMixin, QRDQNPolicy):
    """sb3-contrib's :class:`QRDQNPolicy` whose online and target quantile networks are normalized."""

    network_class = NormQuantileNetwork
    online_attr, target_attr = "quantile_net", "quantile_net_target"

    def make_quantile_net(self) -> NormQuantileNetwork:
        return self._make_norm_net()


class NormQRDQNCnnPolicy(NormQRDQNPolicy):
    """:class:`NormQRDQNPolicy` for channel-first images."""

    default_extractor = None


class NormQRDQNMultiInputPolicy(NormQRDQNPolicy):
    """:class:`NormQRDQNPolicy` for ``Dict`` observations."""

    default_extractor = NormCombinedExtractor


_ALIASES = define_aliases(
    globals(),
    {"Mlp": NormQRDQNPolicy, "Cnn": NormQRDQNCnnPolicy, "MultiInput": NormQRDQNMultiInputPolicy},
    "QR-DQN policy",
)


def qrdqn_aliases() -> dict[str, type[BasePolicy]]:
    """Every QR-DQN alias name -> policy class."""
    return dict(_ALIASES)
