"""``python -m experiments.grid CONFIG.yaml``: the same command as ``sj-grid`` (:mod:`sj_spikelm.grid`)."""
import sys

from sj_spikelm.grid import main

if __name__ == "__main__":
    sys.exit(main())
