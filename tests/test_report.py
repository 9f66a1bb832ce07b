"""sj_spikelm.report on fabricated runs: table numbers, average, relative table, CSV, plots,
unreadable run files named."""
import csv
import json

import pytest

from sj_spikelm.report import build_table, load_runs, make_report


def fake_run(root, name, setting, task_col, seed, score, energy=None, rate=None, per_layer=None, axes=None):
    d = root / name
    d.mkdir(parents=True)
    axes = {"task": task_col, "seed": seed, **(axes or {})}
    (d / "grid.json").write_text(json.dumps({"setting": setting, "axes": axes}))
    metrics = {"scores": {task_col: score}, "final_scores": {task_col: score - 1},
               "energy_mj_per_sequence": energy, "firing_rate": rate, "firing_rate_per_layer": per_layer,
               "config": {}}
    (d / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    layers = {"bert.embeddings": 0.3, "0": 0.2, "1": 0.1}
    fake_run(root, "a1", "SpikeLM", "SST-2", 0, 90.0, energy=0.5, rate=0.2, per_layer=layers)
    fake_run(root, "a2", "SpikeLM", "SST-2", 1, 92.0, energy=0.7, rate=0.3, per_layer={"0": 0.4, "1": 0.3})
    fake_run(root, "a3", "SpikeLM", "MRPC", 0, 80.0, energy=0.6, rate=0.1)
    fake_run(root, "a4", "SpikeLM", "MRPC", 1, 84.0, energy=0.6, rate=0.2)
    fake_run(root, "b1", "ANN", "SST-2", 0, 95.0, energy=2.0)
    fake_run(root, "b2", "ANN", "MRPC", 0, 88.0, energy=2.0)
    fake_run(root, "c1", "SpikeLM", "SST-2", 0, 70.0, axes={"k": 3})
    (root / "unfinished").mkdir()  # no metrics.json: ignored
    return root


def test_table_numbers(runs):
    table = build_table(load_runs(runs))
    assert table["columns"] == ["SST-2", "MRPC"]  # the paper's column order
    spike = table["rows"]["SpikeLM"]
    assert spike["SST-2"] == {"mean": 91.0, "std": pytest.approx(2 ** 0.5), "n": 2}
    assert spike["MRPC"] == {"mean": 82.0, "std": pytest.approx(8 ** 0.5), "n": 2}
    assert spike["Avg."] == pytest.approx((91 + 82) / 2)
    assert spike["energy"] == pytest.approx(0.6) and spike["firing_rate"] == pytest.approx(0.2)
    assert spike["firing_rate_per_layer"] == {"bert.embeddings": 0.3, "0": pytest.approx(0.3),
                                              "1": pytest.approx(0.2)}
    assert table["rows"]["ANN"]["SST-2"] == {"mean": 95.0, "std": None, "n": 1}
    assert table["rows"]["SpikeLM, k=3"]["SST-2"]["mean"] == 70.0
    assert "Avg." not in table["rows"]["SpikeLM, k=3"]  # lacks MRPC
    assert build_table(load_runs(runs), final=True)["rows"]["ANN"]["SST-2"]["mean"] == 94.0


def test_markdown_csv_and_plots(runs):
    text = make_report(runs, reference="ANN")
    lines = text.splitlines()
    assert lines[0] == "| Setting | SST-2 | MRPC | Avg. | Energy (mJ/seq) | Firing rate | Seeds |"
    assert "| SpikeLM | 91.00 ± 1.41 | 82.00 ± 2.83 | 86.50 | 0.6 | 0.200 | 2 |" in lines
    assert "| ANN | 95.00 | 88.00 | 91.50 | 2 | – | 1 |" in lines
    assert "| SpikeLM, k=3 | 70.00 | – | – | – | – | 1 |" in lines
    # relative to ANN: 91 / 95, 82 / 88, 86.5 / 91.5
    assert "| SpikeLM | 95.8 | 93.2 | 94.5 |" in lines
    out = runs / "report"
    assert (out / "table.md").read_text().startswith(lines[0])
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert rows[0]["setting"] == "SpikeLM" and float(rows[0]["SST-2 mean"]) == 91.0
    assert float(rows[0]["MRPC std"]) == pytest.approx(8 ** 0.5) and rows[0]["MRPC n"] == "2"
    assert float(rows[0]["Avg."]) == 86.5 and float(rows[0]["energy_mj_per_sequence"]) == pytest.approx(0.6)
    for png in ("accuracy_vs_energy.png", "firing_rate_per_layer.png"):
        assert (out / png).stat().st_size > 1000


def test_empty_folder(tmp_path):
    assert make_report(tmp_path).startswith("no finished runs")


def test_corrupt_run_files_are_not_done_and_named(runs):
    (runs / "b1" / "metrics.json").write_text('{"scores": {"SST-2": 95.0}, "ene')  # cut off mid-write
    (runs / "a4" / "grid.json").write_text("")
    unreadable = []
    names = [r["name"] for r in load_runs(runs, unreadable=unreadable)]
    assert names == ["a1", "a2", "a3", "b2", "c1"]
    assert unreadable[0] == f"{runs / 'a4' / 'grid.json'}: empty file"
    assert unreadable[1].startswith(f"{runs / 'b1' / 'metrics.json'}: not valid JSON (Unterminated string")
    assert len(unreadable) == 2
    text = make_report(runs)
    assert "| ANN | – | 88.00 |" in text and "| SpikeLM | 91.00 ± 1.41 | 80.00 |" in text
    assert f"not done, unreadable: {runs / 'b1' / 'metrics.json'}: not valid JSON" in text
    table_md = (runs / "report" / "table.md").read_text()
    assert f"not done, unreadable: {runs / 'a4' / 'grid.json'}: empty file" in table_md


def test_rows_without_a_setting_are_labelled_by_what_ran(tmp_path):
    """A run outside a grid setting is labelled by metrics.json's "model" (what the job built),
    not by the config's model field."""
    from sj_spikelm.report import row_label

    ran = {"class": "SpikeLMForSequenceClassification", "model_type": "spikelm", "neuron": "ste_lif", "T": 4}
    assert row_label({"metrics": {"model": ran, "config": {"model": "bert"}}}) == "spikelm ste_lif, T=4"
    assert row_label({"metrics": {"model": {"class": "BertForSequenceClassification", "model_type": "bert"},
                                  "config": {}}}) == "bert"
    assert row_label({"grid": {"setting": "ANN", "axes": {"seed": 0}}, "metrics": {"model": ran}}) == "ANN"
