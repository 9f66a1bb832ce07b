"""Argument checks shared by every neuron: a bad value raises an error naming the argument
and the values it accepts; nothing is silently coerced."""
from __future__ import annotations

import math
from numbers import Real
from typing import Sequence

import torch


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


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
"""Input dtypes every zoo neuron accepts; spikes come back in the input dtype."""


def check_neuron_input(node, x, multi_step: bool) -> None:
    """Raise unless ``x`` is a floating tensor (one of :data:`FLOAT_DTYPES`), and, for a
    multi-step input, of shape ``[T, N, *]`` with ``T >= 1``. Errors name the neuron
    (:func:`neuron_zoo.lifecycle.neuron_label`): integer input would be spiked back into its
    integer dtype (``0.5 * a`` rounds away), bool / complex input has no order or sign."""
    from .lifecycle import neuron_label

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{neuron_label(node)}: input must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        accepted = ", ".join(str(d).replace("torch.", "") for d in FLOAT_DTYPES)
        raise TypeError(f"{neuron_label(node)}: input dtype {x.dtype} is not accepted; accepted dtypes: "
                        f"{accepted} (cast the input, e.g. x.float())")
    if multi_step and x.dim() < 2:
        raise ValueError(f"{neuron_label(node)}: multi-step input must be [T, N, *], "
                         f"got shape {tuple(x.shape)}")
    if multi_step and x.shape[0] == 0:
        raise ValueError(f"{neuron_label(node)}: multi-step input has T=0 time steps (shape "
                         f"{tuple(x.shape)}); accepted: T >= 1")
