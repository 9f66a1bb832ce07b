"""``python -m experiments.report RUNS_DIR``: the same command as ``sj-report`` (:mod:`sj_spikelm.report`)."""
from sj_spikelm.report import main

if __name__ == "__main__":
    main()
