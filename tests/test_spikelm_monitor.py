"""FiringRateMonitor: rates from the neurons' cached counts, summed over a logging window, written
as readable TensorBoard events; the PNG chart."""
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from neuron_zoo import SpikeStatsMixin
from sj_spikelm import SpikeLMModel
from sj_spikelm.monitor import FiringRateMonitor, plot_firing_rates, short_name

QUERY = "encoder.layer.0.attention.self.query.neuron"


def spiking_neurons(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, SpikeStatsMixin)}


def test_rates_sum_the_cached_counts_of_every_forward(tiny_config, batch, tmp_path):
    model = SpikeLMModel(tiny_config(T=3)).calibrate(**batch).eval()
    monitor = FiringRateMonitor(model, tmp_path, every=5)
    nodes = spiking_neurons(model)
    assert monitor.counts.monitored_layers == list(nodes)
    totals = {name: torch.zeros(3, 3) for name in nodes}
    for ids in (batch["input_ids"], torch.randint(1, 40, (3, 4))):
        mask = batch["attention_mask"] if ids is batch["input_ids"] else None
        model(ids, attention_mask=mask)
        for name, node in nodes.items():
            totals[name] += node.spike_counts
    rates = monitor.rates()
    assert list(rates) == list(nodes)
    for name, r in rates.items():
        c = totals[name]
        torch.testing.assert_close(torch.tensor(r["shares"]), c.sum(0) / c.sum())
        assert r["rate"] == pytest.approx(float((c[:, 0] + c[:, 2]).sum() / c.sum()))
        torch.testing.assert_close(torch.tensor(r["per_step"]), 1 - c[:, 1] / c.sum(1))
        torch.testing.assert_close(torch.tensor(r["per_step_shares"]), c / c.sum(1, keepdim=True))
    monitor.close()


def test_single_step_neurons_are_summed_per_time_step(tmp_path):
    """Single-step neurons keep counts until reset(); each call adds exactly its own row."""
    from neuron_zoo import STELIFNode

    net = torch.nn.Sequential(STELIFNode(step_mode="s"))
    monitor = FiringRateMonitor(net, tmp_path, every=1)
    x = torch.tensor([[2.0, 0.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0], [2.0, 2.0, 2.0, 0.0]])
    for sequence in range(2):
        for t in range(3):
            net(x[t])  # step t fires t + 1 of 4 elements (decay carries no extra spike: hard reset)
        net[0].reset()
    rates = monitor.rates()["0"]
    assert rates["per_step"] == pytest.approx([0.25, 0.5, 0.75])
    assert rates["rate"] == pytest.approx(0.5)
    monitor.close()


def test_log_writes_readable_tensorboard_events_every_n_steps(tiny_config, batch, tmp_path):
    model = SpikeLMModel(tiny_config(T=2)).calibrate(**batch).eval()
    monitor = FiringRateMonitor(model, tmp_path, every=2)
    written = {}
    for step in range(1, 5):
        model(**batch)
        if step % 2 == 0:
            written[step] = monitor.rates()
        assert monitor.log(step) == (step % 2 == 0)
        if step % 2 == 0:
            assert monitor.rates() == {}  # a new window starts
    monitor.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0}).Reload()
    tags = events.Tags()
    assert f"firing_rate/{QUERY}" in tags["scalars"]
    assert f"firing_rate_per_step/{QUERY}/t1" in tags["scalars"]
    assert f"spike_share/{QUERY}/neg" in tags["scalars"]
    values = events.Scalars(f"firing_rate/{QUERY}")
    assert [v.step for v in values] == [2, 4]
    assert values[0].value == pytest.approx(written[2][QUERY]["rate"])
    pos_share = events.Scalars(f"spike_share/{QUERY}/pos")[1].value
    assert pos_share == pytest.approx(written[4][QUERY]["shares"][2])
    histogram = events.Histograms("firing_rate_across_layers")
    assert [h.step for h in histogram] == [2, 4]
    assert histogram[0].histogram_value.num == len(written[2])
    assert histogram[0].histogram_value.max == pytest.approx(max(r["rate"] for r in written[2].values()))


def test_monitor_needs_spiking_neurons_and_valid_arguments(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="no spiking zoo neuron"):
        FiringRateMonitor(SpikeLMModel(tiny_config(neuron="ann")), tmp_path)
    model = SpikeLMModel(tiny_config())
    with pytest.raises(ValueError, match="every=0"):
        FiringRateMonitor(model, tmp_path, every=0)
    with pytest.raises(TypeError, match="writer_or_logdir"):
        FiringRateMonitor(model, 3)


def test_plot_writes_a_png(tiny_config, batch, tmp_path):
    model = SpikeLMModel(tiny_config()).calibrate(**batch).eval()
    monitor = FiringRateMonitor(model, tmp_path / "tb")
    model(**batch)
    path = plot_firing_rates(monitor.rates(), tmp_path / "rates" / "chart.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        plot_firing_rates({}, tmp_path / "empty.png")
    assert short_name(f"bert.{QUERY}") == "0.attention.self.query"
    monitor.close()


def test_train_mode_counts_training_forwards_only(tiny_config, batch, tmp_path):
    """mode='train': forwards in training mode with gradients count; the calibration pass (no
    gradients) and evaluation (eval mode) do not."""
    model = SpikeLMModel(tiny_config(T=2)).calibrate(**batch)
    monitor = FiringRateMonitor(model, tmp_path, every=1, mode="train")
    node = dict(model.named_modules())[QUERY]
    model.train()
    with torch.no_grad():
        model(**batch)  # like the calibration pass
    model.eval()
    model(**batch)
    assert monitor.counts.totals == {}
    model.train()
    model(**batch)
    expected = node.spike_counts.clone()
    model(**batch)
    expected += node.spike_counts
    torch.testing.assert_close(monitor.counts.totals[QUERY], expected)
    with pytest.raises(ValueError, match="mode='eval' is not accepted; choose one of 'all', 'train'"):
        FiringRateMonitor(model, tmp_path, mode="eval")
    monitor.close()
