"""Environments for rlnorm: Atari (ale-py, real ROMs), MinAtar, masked-velocity POMDPs, Deep Sea and noise wrappers.

``import envs`` registers the ALE ids, the ``...NoVel`` POMDP ids and ``DeepSea-v0`` with gymnasium. Build
environments with :func:`make_env`; perturb an existing ``VecEnv`` with :func:`add_noise`.
"""

from envs.atari import AleVecEnv, AtariConfig, make_atari_env_single
from envs.deep_sea import DEEP_SEA_ID, DeepSeaEnv, register_deep_sea
from envs.factory import BACKENDS, make_env
from envs.minatar import MINATAR_GAMES, MinAtarConfig, MinAtarVecEnv, make_minatar_env_single
from envs.noise import NOISE_OPTIONS, add_noise, noise_config
from envs.pomdp import POMDP_ENVS, register_pomdp_envs

register_pomdp_envs()
register_deep_sea()

__all__ = [
    "BACKENDS",
    "DEEP_SEA_ID",
    "MINATAR_GAMES",
    "NOISE_OPTIONS",
    "POMDP_ENVS",
    "AleVecEnv",
    "AtariConfig",
    "DeepSeaEnv",
    "MinAtarConfig",
    "MinAtarVecEnv",
    "add_noise",
    "make_atari_env_single",
    "make_env",
    "make_minatar_env_single",
    "noise_config",
]
