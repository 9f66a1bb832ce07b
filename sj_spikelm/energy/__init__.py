"""Theoretical inference energy (SpikeLM Appendix A.3), per layer and per sequence, for every
family: the shared accounting (:mod:`.accounting`), the SpikeLM encoder (:mod:`.encoder`), the
BiSpikCLM family (:mod:`.causal`) and the spiking encoder-decoder (:mod:`.seq2seq`)."""
from .accounting import PRECISIONS, EnergyReport
from .causal import EnergyComparison, ann_twin_config, compare_to_ann
from .encoder import estimate_energy
from .seq2seq import estimate_seq2seq_energy

__all__ = ["EnergyComparison", "EnergyReport", "PRECISIONS", "ann_twin_config", "compare_to_ann",
           "estimate_energy", "estimate_seq2seq_energy"]
