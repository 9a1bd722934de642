"""Field validators and the one error type for every config and option check of the project.

Each ``check_*`` takes the value and the dotted path of its field (``"train.total_timesteps"``,
``"exploration.beta"``, ``"n_envs"``), returns the value converted to its type, or raises :class:`ConfigError`
naming the field, the bad value and what is allowed. ``source`` (a file name, ``"<command line>"``) is
optional: a parser that knows where the data came from passes it; a constructor leaves it empty and a caller
higher up may add it with :meth:`ConfigError.with_source`.

Kept in ``rlnorm`` (the bottom of the import stack) so the experiment configs (``agents``), the env factory
(``envs``) and the library itself all raise the same error in the same words.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

#: Torch devices a config may name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``mps``, ``cuda``, ``cuda:N``.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """A config or option value is invalid. The message is one line: ``<source>: <field>: <problem>``
    (``<field>: <problem>`` without a source).

    :param source: where the data came from (a file, ``"<command line>"``); empty when unknown
    :param field_path: the dotted field, e.g. ``"train.total_timesteps"`` or ``"norms[1]"``
    :param problem: what is wrong, with the bad value and the allowed ones
    """

    def __init__(self, source: str, field_path: str, problem: str) -> None:
        self.source = source
        self.field = field_path
        self.problem = problem
        where = f"{source}: {field_path}" if source else field_path
        super().__init__(f"{where}: {problem}".replace("\n", " "))

    def with_source(self, source: str) -> ConfigError:
        """The same error attributed to ``source`` (a parser re-raising what a constructor found)."""
        return ConfigError(source, self.field, self.problem)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str]]:
        # the default pickles only the message; process pools send errors back pickled
        return type(self), (self.source, self.field, self.problem)


def _shown(value: Any) -> str:
    return f"{value!r:.60}"


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _bounds(minimum: float | None, maximum: float | None, *, exclusive_minimum: bool = False) -> str:
    if minimum is not None and maximum is not None and not exclusive_minimum:
        return f" in [{minimum}, {maximum}]"
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
    if maximum is not None:
        parts.append(f"<= {maximum}")
    return " " + " and ".join(parts) if parts else ""


def check_int(
    value: Any, field: str, minimum: int | None = None, *, maximum: int | None = None, source: str = ""
) -> int:
    """Return ``value`` as an int within the bounds, or raise.

    A float with a whole value is accepted (``1e4`` -> ``10000``: YAML and command lines write large counts
    that way); any other float, a bool or a string is refused.

    :param value: the candidate
    :param field: the dotted field named in the error
    :param minimum: the smallest allowed value (``None``: no bound)
    :param maximum: the largest allowed value (``None``: no bound)
    :param source: where the value came from, for the error
    :return: the integer
    """
    expected = f"an integer{_bounds(minimum, maximum)}"
    number = _number(value)
    if number is None:
        raise ConfigError(source, field, f"must be {expected}, got {_shown(value)}")
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(number) or not number.is_integer():
            raise ConfigError(source, field, f"must be {expected}, got {_shown(value)} (not a whole number)")
        value = int(number)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(source, field, f"must be {expected}, got {value}")
    return int(value)


def check_float(
    value: Any,
    field: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    source: str = "",
) -> float:
    """Return ``value`` as a finite float within the bounds, or raise.

    :param value: the candidate (an int or a float; not a bool)
    :param field: the dotted field named in the error
    :param minimum: the smallest allowed value (``None``: no bound)
    :param maximum: the largest allowed value (``None``: no bound)
    :param exclusive_minimum: ``value`` must be strictly above ``minimum``
    :param source: where the value came from, for the error
    :return: the float
    """
    number = _number(value)
    inside = number is not None and math.isfinite(number)
    if inside and minimum is not None:
        inside = number > minimum if exclusive_minimum else number >= minimum
    if inside and maximum is not None:
        inside = number <= maximum
    if not inside:
        bounds = _bounds(minimum, maximum, exclusive_minimum=exclusive_minimum)
        raise ConfigError(source, field, f"must be a finite number{bounds}, got {_shown(value)}")
    return float(number)


def check_positive(value: Any, field: str, *, source: str = "") -> float:
    """Return ``value`` as a finite float ``> 0``, or raise (see :func:`check_float`)."""
    return check_float(value, field, minimum=0, exclusive_minimum=True, source=source)


def check_non_negative(value: Any, field: str, *, source: str = "") -> float:
    """Return ``value`` as a finite float ``>= 0``, or raise (see :func:`check_float`)."""
    return check_float(value, field, minimum=0, source=source)


def check_probability(value: Any, field: str, *, source: str = "") -> float:
    """Return ``value`` as a float in ``[0, 1]``, or raise.

    :param value: the candidate probability
    :param field: the dotted field named in the error
    :param source: where the value came from, for the error
    """
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigError(source, field, f"must be a probability in [0, 1], got {_shown(value)}")
    return number


def check_bool(value: Any, field: str, *, source: str = "") -> bool:
    """Return ``value`` if it is a bool, or raise.

    :param value: the candidate flag
    :param field: the dotted field named in the error
    :param source: where the value came from, for the error
    """
    if not isinstance(value, bool):
        raise ConfigError(source, field, f"must be true or false, got {_shown(value)}")
    return value


def check_str(value: Any, field: str, *, source: str = "") -> str:
    """Return ``value`` if it is a non-empty string, or raise.

    :param value: the candidate
    :param field: the dotted field named in the error
    :param source: where the value came from, for the error
    """
    if not isinstance(value, str) or not value:
        raise ConfigError(source, field, f"must be a non-empty string, got {_shown(value)}")
    return value


def check_choice(value: Any, field: str, allowed: Iterable[Any], *, source: str = "") -> Any:
    """Return ``value`` if it is one of ``allowed``, or raise listing them (and the closest one).

    :param value: the candidate
    :param field: the dotted field named in the error
    :param allowed: the allowed values, in the order the error lists them
    :param source: where the value came from, for the error
    """
    allowed = tuple(allowed)
    # same type as well as equal: True must not pass for 1, nor 1 for "1"
    if any(type(value) is type(a) and value == a for a in allowed):
        return value
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(source, field, f"must be one of {', '.join(map(str, allowed))}; got {_shown(value)}{hint}")


def check_device(value: Any, field: str, *, source: str = "") -> str:
    """Return ``value`` if it names a torch device as configs write it (:data:`DEVICE_PATTERN`), or raise.

    :param value: the candidate, e.g. ``"cuda:1"``
    :param field: the dotted field named in the error
    :param source: where the value came from, for the error
    """
    if not isinstance(value, str) or not DEVICE_PATTERN.match(value):
        raise ConfigError(source, field, f"must be auto, cpu, mps, cuda or cuda:N; got {_shown(value)}")
    return value


def check_mapping(value: Any, field: str, *, source: str = "") -> Mapping[str, Any]:
    """Return ``value`` if it is a mapping with string keys, or raise.

    :param value: the candidate
    :param field: the dotted field named in the error
    :param source: where the value came from, for the error
    """
    if not isinstance(value, Mapping):
        raise ConfigError(source, field, f"must be a mapping, got {type(value).__name__} {_shown(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(source, f"{field}.{key!r}", "keys must be strings")
    return value


def check_keys(
    data: Mapping[str, Any], field: str, allowed: Collection[str], *, required: Iterable[str] = (), source: str = ""
) -> None:
    """Raise on the first key of ``data`` not in ``allowed`` (suggesting the closest) or a missing ``required`` one.

    :param data: the mapping
    :param field: its dotted path (``""`` at the top level)
    :param allowed: the valid keys, in the order the error lists them
    :param required: keys that must be present
    :param source: where the data came from, for the error
    """
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(allowed)}"
            raise ConfigError(source, join_field(field, key), f"unknown key; {hint}")
    for key in required:
        if key not in data:
            raise ConfigError(source, join_field(field, key), "missing (required)")


def check_list(value: Any, field: str, *, unique: bool = False, source: str = "") -> list[Any]:
    """Return ``value`` as a list if it is a non-empty sequence (not a string), or raise.

    :param value: the candidate
    :param field: the dotted field named in the error
    :param unique: also refuse a repeated item, naming its index
    :param source: where the value came from, for the error
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(source, field, f"must be a list, got {_shown(value)}")
    if not value:
        raise ConfigError(source, field, "must not be empty")
    items = list(value)
    if unique:
        for i, item in enumerate(items):
            if item in items[:i]:
                raise ConfigError(source, f"{field}[{i}]", f"duplicate value {item!r}")
    return items


def join_field(path: str, key: str) -> str:
    """``path.key`` (just ``key`` at the top level, where ``path`` is empty)."""
    return f"{path}.{key}" if path else key
