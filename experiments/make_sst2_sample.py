"""Write the SST-2 sample shipped as package data (``sj_spikelm/data/sst2_sample/SST-2/``):
2,000 training sentences and the whole dev set (872), used by the GLUE loader only when no
other source has SST-2 (no ``$SJ_SPIKELM_DATA``, no ``../shared/data``, no hub).

The 2,000 are the first 2,000 of the full training set shuffled with seed 0 (``datasets``'
``Dataset.shuffle(seed=0)``), written in the order that makes ``shuffle(seed=0)`` of the sample
return them in that same order. So the default grid's subsample (``max_train_samples: 1600``,
``subsample_seed: 0``) is the same 1,600 sentences in the same order from the sample as from
the full SST-2: the offline main command runs the same experiment.

    python -m experiments.make_sst2_sample --glue ../shared/data/glue
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "sj_spikelm" / "data" / "sst2_sample" / "SST-2"
SIZE = 2000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue", required=True, help="a GLUE folder holding SST-2/train.tsv and dev.tsv")
    parser.add_argument("--out", default=str(SAMPLE))
    args = parser.parse_args(argv)
    source = Path(args.glue) / "SST-2"
    lines = (source / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    full = np.random.default_rng(0).permutation(len(rows))[:SIZE]  # Dataset.shuffle(seed=0) of the full set
    order = np.random.default_rng(0).permutation(SIZE)  # ... and of the sample
    sample = [None] * SIZE
    for i, j in enumerate(order):
        sample[j] = rows[full[i]]  # sample.shuffle(0)[i] == full.shuffle(0)[i]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.tsv").write_text("\n".join([header] + sample) + "\n", encoding="utf-8")
    shutil.copyfile(source / "dev.tsv", out / "dev.tsv")
    print(f"wrote {out}: {SIZE} training sentences (of {len(rows)}), the dev set")


if __name__ == "__main__":
    main()
