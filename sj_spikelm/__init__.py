"""Spiking transformers (SpikeLM) built from SpikingJelly multi-step containers."""
from . import compat  # noqa: F401  (first: keeps transformers importable, see compat.py)
