"""The README's neuron demo on a tiny input: one row per neuron and input, a PNG, and the
elastic neuron's step-0 rate close to Lemma 1's closed form."""
import math
import os

from experiments import neuron_demo


def test_demo_writes_table_and_plot(tmp_path):
    rows = neuron_demo.main(["--shape", "64", "256", "--out", str(tmp_path)])
    assert len(rows) == 2 * len(neuron_demo.DEFAULT_SPECS)
    for name in ("table.md", "table.json", "rates.png"):
        assert os.path.getsize(tmp_path / name) > 0
    for row in rows:
        if "lemma1_step0" in row:
            assert abs(row["rate_per_step"][0] - row["lemma1_step0"]) < 0.02, row
        if row["neuron"] == "ann":
            assert row["firing_rate"] is None and row["grad_cosine"] > 0.999


def test_lemma1_closed_forms_against_scipy():
    from scipy import stats

    for k in (2.0, 3.0, 4.0):
        # alpha = k E|m|; Laplace(b=1): E|m| = 1; N(0, 1): E|m| = sqrt(2 / pi)
        laplace = 2 * stats.laplace.sf(0.5 * k)
        gauss = 2 * stats.norm.sf(0.5 * k * (2 / math.pi) ** 0.5)
        assert abs(neuron_demo.lemma1_rate("laplace", k) - laplace) < 1e-12
        assert abs(neuron_demo.lemma1_rate("gaussian", k) - gauss) < 1e-12
        assert abs(neuron_demo.lemma1_rate("gaussian", k, bidirectional=False) - gauss / 2) < 1e-12
