"""Which SB3 algorithm class and which policy one arm of an experiment uses.

Every arm of a comparison uses the *same* norm-aware policy class with a different ``norm`` kwarg, so the
``none`` arm has exactly the architecture of the normalized ones (``NormCnnPolicy`` with ``norm="none"``,
not SB3's ``CnnPolicy``). Recurrent arms pick the LSTM flavour by norm instead (``agents.policies.recurrent``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm


def algo_class(name: str) -> type[BaseAlgorithm]:
    """The algorithm class of a config's ``algo``.

    :param name: ``PPO``, ``A2C``, ``DQN`` or ``RecurrentPPO``
    """
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import A2C, DQN, PPO

    classes: dict[str, type[BaseAlgorithm]] = {"PPO": PPO, "A2C": A2C, "DQN": DQN, "RecurrentPPO": RecurrentPPO}
    if name not in classes:
        raise ValueError(f"algo: must be one of {', '.join(classes)}; got {name!r}")
    return classes[name]


def network_for(observation_space: gym.Space, network: str) -> str:
    """Resolve ``network: auto`` from the observation space (channel-first images -> ``cnn``).

    :param observation_space: the env's observation space
    :param network: ``auto``, ``cnn`` or ``mlp``
    """
    if network != "auto":
        return network
    shape = getattr(observation_space, "shape", None) or ()
    return "cnn" if len(shape) == 3 else "mlp"


def policy_for(algo: str, network: str, norm: str) -> tuple[type, dict[str, Any]]:
    """The policy class and the policy kwargs that select ``norm``.

    :param algo: the config's algorithm
    :param network: ``cnn`` or ``mlp`` (already resolved, see :func:`network_for`)
    :param norm: the arm's norm
    :return: (policy class, policy kwargs to merge into the config's ``policy_kwargs``)
    """
    family = "Cnn" if network == "cnn" else "Mlp"
    if algo == "RecurrentPPO":
        from agents.policies.recurrent import recurrent_policy_for

        return recurrent_policy_for(network, norm)
    if algo == "DQN":
        from agents.policies.dqn import dqn_aliases

        return dqn_aliases()[f"Norm{family}Policy"], {"norm": norm}
    from agents.policies.actor_critic import actor_critic_aliases

    return actor_critic_aliases()[f"Norm{family}Policy"], {"norm": norm}
