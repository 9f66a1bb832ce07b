"""WikiText-2 test perplexity of SmolLM2-135M (or any LLaMA-layout model) with the input of every
decoder linear layer spiked by GIF neurons (:func:`sj_spikelm.models.spikellm.spikify`), weights
in full precision (W-FP / A-GIF), for several settings in one process (the model is loaded and
the data tokenised once; each setting spikes a fresh copy).

A setting is ``LxT`` (``L`` levels per spike, ``T`` steps: ``T (L - 1) + 1`` levels per token),
optionally ``:t2`` (OBS: 10% of each layer's input channels at 2 steps) or ``:t4`` (5% at 4), and
``@fake`` for the quantizer path instead of the executed spikes; ``fp`` is the float model.
``--saliency random`` ranks channels at random instead of by OBS saliency (an ablation).

    nice -n 10 env OMP_NUM_THREADS=1 python -m experiments.spikellm_perplexity \\
        --settings fp 16x1 4x5 16x1@fake --seq-len 1024 --max-windows 4 --out results/spikellm.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import time

import torch

from sj_spikelm.data.wikitext import random_windows, wikitext2_ids
from sj_spikelm.models.spikellm import SpikifyConfig, obs_saliency, spikify, spiking_summary
from sj_spikelm.perplexity import perplexity
from sj_spikelm.pretrained_lm import SMOLLM2, load_causal_lm

OBS = {"t2": (0.10, 2), "t4": (0.05, 4)}
SETTING = re.compile(r"^(?P<L>\d+)x(?P<T>\d+)(:(?P<obs>t2|t4))?(@(?P<path>fake|spike))?$")


def parse_setting(text: str):
    """``None`` for ``fp``, else a :class:`SpikifyConfig` (module docstring)."""
    if text == "fp":
        return None
    m = SETTING.match(text)
    if not m:
        raise ValueError(f"setting {text!r} is not accepted; 'fp' or 'LxT[:t2|:t4][@fake]', e.g. '16x1:t2'")
    fraction, salient = OBS[m["obs"]] if m["obs"] else (0.0, 1)
    return SpikifyConfig(levels=int(m["L"]), steps=int(m["T"]), path=m["path"] or "spike",
                         salient_fraction=fraction, salient_steps=salient * int(m["T"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=SMOLLM2[0])
    parser.add_argument("--gguf-file", default=SMOLLM2[1])
    parser.add_argument("--settings", nargs="+", default=["fp", "16x1"])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--max-windows", type=int, default=None)
    parser.add_argument("--calib-windows", type=int, default=8, help="WikiText-2 train windows for OBS")
    parser.add_argument("--calib-len", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--saliency", choices=("obs", "random"), default="obs",
                        help="channel ranking for :t2/:t4: OBS saliency, or random (ablation, --seed)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    configs = {s: parse_setting(s) for s in args.settings}
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, tokenizer = load_causal_lm(args.model, args.gguf_file or None, getattr(torch, args.dtype))
    ids = wikitext2_ids(tokenizer, "test")
    calibration = None
    if any(c is not None and c.salient_fraction > 0 for c in configs.values()):
        calibration = random_windows(wikitext2_ids(tokenizer, "train"), args.calib_windows, args.calib_len,
                                     args.seed)
    saliency = None if calibration is None else obs_saliency(model, calibration)
    if saliency is not None and args.saliency == "random":
        g = torch.Generator().manual_seed(args.seed)
        saliency = {name: torch.rand(len(v), generator=g) for name, v in saliency.items()}
    results = []
    for name, config in configs.items():
        start = time.time()
        if config is None:
            row = {"setting": "fp", "average_steps": None, "code_levels": None}
            evaluated = model
        else:
            evaluated = spikify(copy.deepcopy(model), calibration, config, saliency)
            row = {"setting": name, **spiking_summary(evaluated), **{k: v for k, v in vars(config).items()},
                   "code_levels": config.steps * (config.levels - 1) + 1}
        row.update(perplexity(evaluated, ids, args.seq_len, args.max_windows))
        row["eval_s"] = round(time.time() - start, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
        del evaluated
    out = {"model": args.model, "gguf_file": args.gguf_file, "stream_tokens": len(ids),
           "saliency": args.saliency, "dtype": args.dtype,
           "calibration": None if calibration is None else
           {"windows": args.calib_windows, "seq_len": args.calib_len, "seed": args.seed, "split": "train"},
           "results": results}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
