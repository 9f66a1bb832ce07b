"""Argument checks shared by every neuron: a bad value raises an error naming the argument
and the values it accepts; nothing is silently coerced."""
from __future__ import annotations

import math
from numbers import Real
from typing import Sequence


def check_choice(name: str, value, choices: Sequence):
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    if isinstance(value, str) and value in choices:
        return value
    if not isinstance(value, str) and any(value is c or value == c for c in choices):
        return value
    accepted = ", ".join(repr(c) for c in choices)
    raise ValueError(f"{name}={value!r} is not accepted; choose one of {accepted}")


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be a bool (True or False)")
    return value


def check_real(name: str, value, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False) -> float:
    """Return ``float(value)`` for a finite real in ``[low, high]`` (``(low, high]`` when
    ``low_open``); bools and non-numbers raise ``TypeError``, out-of-range values ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}={value!r} must be a real number")
    value = float(value)
    lower_ok = value > low if low_open else value >= low
    if not (math.isfinite(value) and lower_ok and value <= high):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name}={value!r} is out of range; accepted: {bracket}{low}, {high}]")
    return value


def check_positive_int(name: str, value) -> int:
    """Return ``value`` if it is an int >= 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} must be an int")
    if value < 1:
        raise ValueError(f"{name}={value!r} is out of range; accepted: an int >= 1")
    return value
