"""Environments for rlnorm: Atari (ale-py, real ROMs), MinAtar, masked-velocity POMDPs and noise wrappers.

``import envs`` registers the ALE ids and the ``...NoVel`` POMDP ids with gymnasium. Build environments with
:func:`make_env`; perturb an existing ``VecEnv`` with :func:`add_noise`.
"""

from envs.atari import AleVecEnv, AtariConfig, make_atari_env_single
from envs.factory import BACKENDS, make_env
from envs.minatar import MINATAR_GAMES, MinAtarConfig, MinAtarVecEnv, make_minatar_env_single
from envs.noise import NOISE_OPTIONS, add_noise, noise_config
from envs.pomdp import POMDP_ENVS, register_pomdp_envs

register_pomdp_envs()

__all__ = [
    "BACKENDS",
    "MINATAR_GAMES",
    "NOISE_OPTIONS",
    "POMDP_ENVS",
    "AleVecEnv",
    "AtariConfig",
    "MinAtarConfig",
    "MinAtarVecEnv",
    "add_noise",
    "make_atari_env_single",
    "make_env",
    "make_minatar_env_single",
    "noise_config",
]
