"""The forms of the LN-LSTM: which projections it layer-normalizes and how it starts (docs/recurrent_learning.md).

Kept apart from :mod:`rlnorm.rnn.ln_lstm` so its TorchScript twin (:mod:`rlnorm.rnn.scripting`) reads the same
table without importing the eager module.
"""

from __future__ import annotations

#: ``form`` -> (LN of the input projection, LN of the cell state); the recurrent projection is always normalized.
#: The order is the code stored in the state dict (``form_code``): append new forms, never reorder.
FORMS: dict[str, tuple[bool, bool]] = {
    "ba2016": (True, True),
    "recurrent": (False, False),
    "recurrent+cell": (False, True),
}
#: the form of new modules
DEFAULT_FORM = "recurrent+cell"
#: initial gain of ``LN(W_hh h)`` by form: Ba et al.'s 1, else 0.1 so that the recurrence starts contracting
RECURRENT_GAIN = {"ba2016": 1.0, "recurrent": 0.1, "recurrent+cell": 0.1}
#: initial forget-gate bias by form: 1 (common practice) in Ba et al.'s, else 0 as ``nn.LSTM`` (short memory at
#: init: a velocity is a difference of recent positions, not an integral)
FORGET_BIAS = {"ba2016": 1.0, "recurrent": 0.0, "recurrent+cell": 0.0}
#: the form of state dicts saved before ``form`` existed (rlnorm < 0.2): all of them are Ba et al.'s
LEGACY_FORM = "ba2016"


def check_form(form: str) -> str:
    """Validate a ``form`` argument.

    :param form: a name of :data:`FORMS`
    :return: ``form``
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}; got {form!r}")
    return form
