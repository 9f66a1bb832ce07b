"""experiments/clm_results.py: the issue-11 table (% of the teacher, tokens, energy %) from run folders."""
import json

import pytest

from experiments import clm_results


def make_run(root, name, setting, test_ppl, steps=10, energy=None):
    d = root / name
    d.mkdir()
    (d / "grid.json").write_text(json.dumps({"job": "j", "setting": setting, "axes": {"seed": 0}}))
    m = {"scores": {"test PPL": test_ppl, "valid PPL": test_ppl + 1}, "steps": steps, "world_size": 1,
         "config": {"per_device_train_batch_size": 4, "max_seq_length": 8},
         "firing_rate_per_layer": {"0": 0.25, "1": 0.5}}
    if energy is not None:
        m.update(energy_percent_of_ann=energy,
                 energy_percent_of_ann_per_layer={"1": 20.0, "0": 10.0, "lm_head": 100.0})
    (d / "metrics.json").write_text(json.dumps(m))


def test_percent_of_teacher_tokens_and_energy(tmp_path):
    make_run(tmp_path, "a", "ANN", 200.0, steps=20)
    make_run(tmp_path, "b", "SpAD", 250.0, energy=80.0)
    rows = {r["label"]: r for r in clm_results.result_rows(clm_results.load_runs(tmp_path), "ANN")}
    assert rows["SpAD"]["% of teacher"] == pytest.approx(80.0)   # 100 * 200 / 250
    assert rows["SpAD"]["PPL / teacher"] == pytest.approx(1.25)
    assert rows["ANN"]["tokens"] == 20 * 4 * 8 and rows["SpAD"]["tokens"] == 10 * 4 * 8
    table = clm_results.to_markdown(list(rows.values()))
    row = "| SpAD | 250.0 | 251.0 | 80.0 | 1.25 | 320 | 80.0 (10.0 / 20.0 / 100.0) | 0.250 / 0.500 |"
    assert row in table
    assert "| ANN | 200.0 | 201.0 | 100.0 | 1.00 | 640 | - () |" in table


def test_values_of_the_selection_split_when_not_at_the_top(tmp_path):
    make_run(tmp_path, "a", "ANN", 200.0)
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    m.update(metric="valid_loss", firing_rate_per_layer=None,
             best={"valid_runtime": 1.0, "test_runtime": 1.0, "valid_energy_percent_of_ann": 50.0,
                   "test_energy_percent_of_ann": 60.0, "valid_firing_rate_per_layer": {"0": 0.1}})
    (tmp_path / "a" / "metrics.json").write_text(json.dumps(m))
    (row,) = clm_results.result_rows(clm_results.load_runs(tmp_path), None)
    assert row["energy %"] == 50.0 and row["firing rate per layer"] == {"0": 0.1}


def test_unknown_teacher_is_refused(tmp_path):
    make_run(tmp_path, "a", "ANN", 200.0)
    with pytest.raises(ValueError, match="teacher='OPT' is not a finished run"):
        clm_results.result_rows(clm_results.load_runs(tmp_path), "OPT")
