"""Checks of plain argument values (counts, seeds, probabilities): a one-line
:class:`~smoothcert.errors.SmoothCertError` naming the option for a bad value, else the value.

They are the one place these checks live: the library's entry points (:mod:`smoothcert.jobs`)
run them on their arguments before anything is loaded or written, and the CLI's commands that
have no library job (``radius``, ``train``) call them directly. The ``name`` of a check is the
option as the command line spells it (``--N``); the library documents which keyword that is
(``n``). This module imports neither torch nor scipy (``smoothcert radius`` uses it).
"""

from __future__ import annotations

import math
import operator

from .errors import SmoothCertError

#: the most samples a run accepts (--N, --N0, --cert-samples): 2^40 = 1.1e12 samples take days
#: per input at any speed, and counts stay exact in float64 (a larger N never ends)
MAX_SAMPLES = 2**40
#: seeds are integers in [0, MAX_SEED) (numpy and torch generators take 64 bits)
MAX_SEED = 2**63


def _integer(value):
    """``value`` as an int when it is an integer (bool is not), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """An integer ``>= minimum``."""
    number = _integer(value)
    if number is None or number < minimum:
        shown = value if number is not None or value is None else repr(value)
        raise SmoothCertError(f"{name} must be an integer >= {minimum}, got {shown}")
    return number


def check_samples(name: str, value, minimum: int = 1) -> int:
    """A number of samples: ``minimum <= value <= MAX_SAMPLES`` (2^40)."""
    value = check_positive_int(name, value, minimum)
    if value > MAX_SAMPLES:
        raise SmoothCertError(
            f"{name} must be at most 2^40 = {MAX_SAMPLES} (a run with more "
            f"samples would not end), got {value}"
        )
    return value


def check_seed(value, name: str = "--seed") -> int:
    """An integer in [0, 2^63)."""
    number = _integer(value)
    if number is None or not 0 <= number < MAX_SEED:
        shown = value if number is not None or value is None else repr(value)
        raise SmoothCertError(f"{name} must be an integer in [0, 2^63), got {shown}")
    return number


def check_alpha(value, name: str = "--alpha") -> float:
    """A probability strictly between 0 and 1 (a failure probability)."""
    try:
        number = None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not (math.isfinite(number) and 0 < number < 1):
        shown = value if number is not None else repr(value)
        raise SmoothCertError(f"{name} must lie strictly between 0 and 1, got {shown}")
    return number
