"""Spiking transformers (SpikeLM) built from SpikingJelly multi-step containers."""
