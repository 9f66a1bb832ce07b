"""Runners and configs for the sj_spikelm experiments (run from the repository root)."""
