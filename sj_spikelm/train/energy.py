"""The energy estimate of a job's evaluation (``EnergyCallback``): mJ per sequence on a fixed
batch of evaluation rows (and, for a causal BiSpikCLM-family model, its "% of the ANN's cost")."""
from __future__ import annotations

import logging

log = logging.getLogger("sj_spikelm")


def _model_inputs(model, collator, rows, keep_labels=False):
    """The evaluation ``rows`` padded by ``collator`` on the model's device (labels dropped unless
    ``keep_labels``)."""
    device = next(model.parameters()).device
    rows = list(rows) if keep_labels else [{k: v for k, v in row.items() if k != "labels"} for row in rows]
    return {k: v.to(device) for k, v in collator(rows).items()}


def _unavailable(err):
    """``(None, reason)`` of an estimate that failed: a failed estimate must not lose the run."""
    log.warning("energy estimate failed: %s: %s", type(err).__name__, err)
    return None, f"{type(err).__name__}: {err}"


def energy_per_sequence(model, collator, rows):
    """``(mJ per sequence, None)`` from ``sj_spikelm.energy.estimate_energy`` (Appendix A.3) on
    the evaluation ``rows`` (a ``datasets.Dataset`` of model inputs, padded by ``collator``), or
    ``(None, reason)`` if the estimate fails. A Hugging Face BERT (the ANN) is counted as its
    SpikeLM twin with ``neuron='ann'``, ``T=1`` (``from_ann``): all MACs, which depend on shapes
    and token counts only, not on the weights. A BiSpikCLM-family model is counted as itself; a
    spiking encoder-decoder on the rows' (source, target) pairs (``estimate_seq2seq_energy``)."""
    import sj_spikelm as sl
    from sj_spikelm.energy import estimate_energy, estimate_seq2seq_energy
    from sj_spikelm.models.bispikclm.modeling_bispikclm import BiSpikCLMPreTrainedModel

    try:
        if isinstance(model, sl.SpikeLMForConditionalGeneration):  # the target counts: keep labels
            batch = _model_inputs(model, collator, rows, keep_labels=True)
            return float(estimate_seq2seq_energy(model, batch).total_mj), None
        batch = _model_inputs(model, collator, rows)
        if not isinstance(model, (sl.SpikeLMPreTrainedModel, BiSpikCLMPreTrainedModel)):
            model = sl.from_ann(model, neuron="ann", T=1).to(next(model.parameters()).device)
        return float(estimate_energy(model, batch).total_mj), None
    except Exception as err:  # noqa: BLE001 - reported, not raised
        return _unavailable(err)


def causal_energy(model, collator, rows):
    """``({"energy_mj_per_sequence", "energy_percent_of_ann", "energy_percent_of_ann_per_layer"},
    None)`` for a BiSpikCLM-family model on the evaluation ``rows``: its estimate and the paper's
    "% of the ANN's cost", ``100 E_model / E_ANN twin`` in total and per layer
    (:func:`sj_spikelm.energy.compare_to_ann`), or ``(None, reason)`` if it fails."""
    from sj_spikelm.energy import compare_to_ann

    try:
        c = compare_to_ann(model, _model_inputs(model, collator, rows))
        return {"energy_mj_per_sequence": float(c.model.total_mj),
                "energy_percent_of_ann": c.percent_of_ann(),
                "energy_percent_of_ann_per_layer": {k: r["percent"] for k, r in c.per_layer().items()}}, None
    except Exception as err:  # noqa: BLE001 - reported, not raised
        return _unavailable(err)
