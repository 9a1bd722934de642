"""Which SB3 algorithm class and which policy one arm of an experiment uses.

Every arm of a comparison uses the *same* norm-aware policy class with a different ``norm`` kwarg, so the
``none`` arm has exactly the architecture of the normalized ones (``NormCnnPolicy`` with ``norm="none"``,
not SB3's ``CnnPolicy``). Recurrent arms pick the LSTM flavour by norm instead (``agents.policies.recurrent``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm


def algo_class(name: str, hyperparams: Mapping[str, Any] | None = None) -> type[BaseAlgorithm]:
    """The algorithm class of a config's ``algo``.

    :param name: an algorithm of :func:`agents.policies.algorithm_aliases`: ``PPO``, ``A2C``, ``DQN``, ``SAC``,
        ``TD3``, ``DDPG`` (SB3), ``RecurrentPPO``, ``QRDQN``, ``TQC``, ``TRPO``, ``MaskablePPO``, ``CrossQ``
        (sb3-contrib)
    :param hyperparams: the run's algorithm arguments; DQN with ``mixed_return`` among them is
        :class:`agents.mixed_return.MixedReturnDQN` (see :data:`ALGO_EXTRA_ARGS`)
    """
    from agents.policies import algorithm_aliases

    classes = {algo: cls for algo, (cls, _) in algorithm_aliases().items()}
    if name not in classes:
        raise ValueError(f"algo: must be one of {', '.join(classes)}; got {name!r}")
    if name in ALGO_EXTRA_ARGS and set(hyperparams or ()) & set(ALGO_EXTRA_ARGS[name]):
        from agents.mixed_return import MixedReturnDQN

        return MixedReturnDQN
    return classes[name]


#: algorithm arguments of the project's own algorithm subclasses, with their defaults: algo -> {name: default}
ALGO_EXTRA_ARGS: dict[str, dict[str, Any]] = {"DQN": {"mixed_return": 0.0}}


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
    if algo == "RecurrentPPO":
        from agents.policies.recurrent import recurrent_policy_for

        return recurrent_policy_for(network, norm)
    from agents.policies import algorithm_aliases

    algo_class(algo)  # names the allowed algorithms when `algo` is not one
    name = f"Norm{'Cnn' if network == 'cnn' else 'Mlp'}Policy"
    aliases = algorithm_aliases()[algo][1]
    if name not in aliases:
        raise ValueError(f"network: {algo} has no {network} policy (its policies: {', '.join(aliases)})")
    return aliases[name], {"norm": norm}
