"""Parameter validation shared by the env factory and the wrappers: errors name the field and the allowed values."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def check_probability(value: Any, field: str) -> float:
    """Return ``value`` as a float in ``[0, 1]`` or raise.

    :param value: the candidate probability
    :param field: the option name used in the error message
    :return: the probability as a float
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{field} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_non_negative(value: Any, field: str) -> float:
    """Return ``value`` as a finite float ``>= 0`` or raise.

    :param value: the candidate value (e.g. a noise standard deviation)
    :param field: the option name used in the error message
    :return: the value as a float
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(float(value))
        or float(value) < 0.0
    ):
        raise ValueError(f"{field} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_int(value: Any, field: str, minimum: int) -> int:
    """Return ``value`` as an int ``>= minimum`` or raise.

    :param value: the candidate integer
    :param field: the option name used in the error message
    :param minimum: the smallest allowed value
    :return: the integer
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_bool(value: Any, field: str) -> bool:
    """Return ``value`` if it is a bool or raise.

    :param value: the candidate flag
    :param field: the option name used in the error message
    :return: the flag
    """
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false, got {value!r}")
    return value


def check_choice(value: Any, field: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed`` or raise.

    :param value: the candidate choice
    :param field: the option name used in the error message
    :param allowed: the allowed values
    :return: the choice
    """
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value
