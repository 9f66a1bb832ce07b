"""The W4A4 table of SpikeLLM on SmolLM2-135M (or any LLaMA-layout model): WikiText-2 test
perplexity of FP, RTN W4A4, SmoothQuant-style W4A4 (alpha 0.5, RTN weights), OmniQuant-style
W4A4 (learnable weight clipping, block by block) and SpikeLLM W4A4 t2 / t4 (the same
learnable-clipping W4 weights, OBS steps, the spike path executed; ``@fake`` rows: the
quantizer path of the same model, to check that both give the same perplexity; ``wo:`` rows:
the clipping calibrated weight-only, activations in float while calibrating). The weight path
(``ternary:`` rows, activations in floating point): plain ternary rounding (``rtn``), PB-LLM-style
(``pb``: salient weights floating point) and SpikeLLM ternary GIF weights (``gif``), 10% salient
weights at 2 steps (``-t4``: 5% at 4). ``rtn:t2`` / ``rtn:t2+kv``: RTN W4 with OBS t2
activations, without / with spiking keys and values (4-bit, 10% of each head's channels at 2
steps). All rows use
the same calibration windows (WikiText-2 train, ``random_windows``, ``--seed``) and the same
prefix of test windows.

    nice -n 10 env OMP_NUM_THREADS=1 python -m experiments.spikellm_w4a4 --seq-len 1024 \\
        --max-windows 4 --calib-windows 8 --calib-len 512 --out results/spikellm_w4a4.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch

from sj_spikelm.data.wikitext import random_windows, wikitext2_ids
from sj_spikelm.models.spikellm import SpikifyConfig, configure_activations, spikify, spiking_summary
from sj_spikelm.models.spikellm.cost import spikellm_cost
from sj_spikelm.models.spikellm.ternary import ternary_cost
from sj_spikelm.perplexity import perplexity
from sj_spikelm.pretrained_lm import SMOLLM2, load_causal_lm

A4 = dict(levels=16, steps=1)
OBS = {"t2": dict(salient_fraction=0.10, salient_steps=2), "t4": dict(salient_fraction=0.05, salient_steps=4)}
LWC_ROWS = ("omniquant", "t2", "t2@fake", "t4", "t4@fake")
TERNARY_ROWS = ("ternary:rtn", "ternary:pb", "ternary:gif", "ternary:gif-t4")
KV_ROWS = ("rtn:t2", "rtn:t2+kv")
ROWS = ("fp", "rtn", "smoothquant", *LWC_ROWS, *(f"wo:{r}" for r in LWC_ROWS), *TERNARY_ROWS, *KV_ROWS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=SMOLLM2[0])
    parser.add_argument("--gguf-file", default=SMOLLM2[1])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--max-windows", type=int, default=None)
    parser.add_argument("--calib-windows", type=int, default=8)
    parser.add_argument("--calib-len", type=int, default=512)
    parser.add_argument("--lwc-epochs", type=int, default=2)
    parser.add_argument("--lwc-lr", type=float, default=1e-2)
    parser.add_argument("--alpha", type=float, default=0.5, help="SmoothQuant migration strength")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, tokenizer = load_causal_lm(args.model, args.gguf_file or None)
    ids = wikitext2_ids(tokenizer, "test")
    calibration = random_windows(wikitext2_ids(tokenizer, "train"), args.calib_windows, args.calib_len,
                                 args.seed)
    out = {"model": args.model, "gguf_file": args.gguf_file, "stream_tokens": len(ids),
           "calibration": {"windows": args.calib_windows, "seq_len": args.calib_len, "seed": args.seed},
           "lwc": {"epochs": args.lwc_epochs, "lr": args.lwc_lr},
           "alpha": args.alpha, "results": []}
    lwc_models = {}

    def evaluate(name, evaluated, config, convert_s):
        start = time.time()
        for m in evaluated.modules():
            if hasattr(m, "reset_counts"):
                m.reset_counts()
        row = {"row": name, "convert_s": round(convert_s, 1)}
        if config is not None:
            row.update(spiking_summary(evaluated))
            row["weight_bits"] = config.weight_bits
        row.update(perplexity(evaluated, ids, args.seq_len, args.max_windows))
        if config is not None and config.weight_path != "none":
            row.update(ternary_cost(evaluated))
        elif config is not None:
            row.update(spikellm_cost(evaluated))
        row["eval_s"] = round(time.time() - start, 1)
        out["results"].append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)

    for name in args.rows:
        start = time.time()
        if name == "fp":
            evaluate(name, model, None, 0.0)
            continue
        if name.startswith("ternary:"):
            mode, _, budget = name.removeprefix("ternary:").partition("-")
            fraction, steps = OBS[budget or "t2"].values()
            config = SpikifyConfig(levels=0, weight_path=mode, weight_salient_fraction=fraction,
                                   weight_salient_steps=steps)
            converted = spikify(copy.deepcopy(model), calibration, config)
            evaluate(name, converted, config, time.time() - start)
            del converted
            continue
        if name in KV_ROWS:  # RTN W4, OBS t2; +kv: keys and values 4-bit, 10% of each head at 2 steps
            kv = dict(kv_levels=16, kv_salient_fraction=0.1, kv_salient_steps=2) if "+kv" in name else {}
            config = SpikifyConfig(**A4, weight_bits=4, **OBS["t2"], **kv)
            converted = spikify(copy.deepcopy(model), calibration, config)
            evaluate(name, converted, config, time.time() - start)
            del converted
            continue
        if name in ("rtn", "smoothquant"):
            alpha = args.alpha if name == "smoothquant" else 0.0
            config = SpikifyConfig(**A4, weight_bits=4, smooth_alpha=alpha)
            converted = spikify(copy.deepcopy(model), calibration, config)
            evaluate(name, converted, config, time.time() - start)
            del converted
            continue
        calib_activations = "float" if name.startswith("wo:") else "quantized"
        if calib_activations not in lwc_models:
            config = SpikifyConfig(**A4, weight_bits=4, weight_clipping="lwc", lwc_epochs=args.lwc_epochs,
                                   lwc_lr=args.lwc_lr, calib_activations=calib_activations)
            log = []
            lwc_models[calib_activations] = spikify(copy.deepcopy(model), calibration, config, log=log)
            out[f"lwc_log_{calib_activations}"] = log
            print(json.dumps({"lwc_s": round(time.time() - start, 1), "last_block": log[-1]}), flush=True)
        setting, _, path = name.removeprefix("wo:").partition("@")
        config = SpikifyConfig(**A4, weight_bits=4, path=path or "spike", **OBS.get(setting, {}))
        configure_activations(lwc_models[calib_activations], config)
        evaluate(name, lwc_models[calib_activations], config, time.time() - start)
    return out


if __name__ == "__main__":
    main()
