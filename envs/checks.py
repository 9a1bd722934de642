"""Parameter validation of the env factory and the wrappers: the project's field validators, re-exported.

They live in :mod:`rlnorm.validation` so that envs, the experiment configs and the library raise the same
:class:`~rlnorm.validation.ConfigError` (a ``ValueError``) in the same words: ``<field>: <problem>``, naming
the bad value and the allowed ones.
"""

from rlnorm.validation import (
    ConfigError,
    check_bool,
    check_choice,
    check_int,
    check_non_negative,
    check_probability,
)

__all__ = ["ConfigError", "check_bool", "check_choice", "check_int", "check_non_negative", "check_probability"]
