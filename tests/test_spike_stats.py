"""Per-step spike counts kept by every spiking neuron, with and without a valid mask."""
import torch

import neuron_zoo
from neuron_zoo import ElasticBiNode, valid_mask


def test_counts_shares_and_rates_by_hand():
    node = ElasticBiNode()
    node.load_state_dict({"alpha": torch.tensor([1.0, 1.0])})
    node.eval()
    node(torch.tensor([[0.9, -0.9, 0.1, 0.0], [0.6, 0.0, 0.0, 0.0]]).unsqueeze(-1))
    # step 0: one -a, two 0, one +a; step 1 (m1 = 0.25 * v0 + x1 with v0 = [0, -1.8, .1, 0]):
    # m1 = [0.6, -0.45, 0.025, 0] -> one +a
    torch.testing.assert_close(node.spike_counts, torch.tensor([[1.0, 2, 1], [0, 3, 1]]))
    torch.testing.assert_close(node.firing_rate_per_step, torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(node.firing_rate, torch.tensor(3 / 8))
    node.reset()
    assert node.spike_counts is None and node.firing_rate is None


def test_mask_restricts_counts_and_single_step_appends():
    node = ElasticBiNode(step_mode="s")
    node.load_state_dict({"alpha": torch.tensor([1.0, 1.0])})
    x = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])  # [B=1, L=2, D=2]
    with valid_mask(node, torch.tensor([[False, True]])):
        node(x)
        node(x)
    assert node.spike_counts.shape == (2, 3)
    torch.testing.assert_close(node.spike_counts[0], torch.tensor([0.0, 1, 1]))


def test_every_spiking_neuron_reports_rates_and_ann_none():
    for spec in ["elastic_bi", "ste_lif", "ternary_fixed", "lif", "psn(T=3)"]:
        node = neuron_zoo.build_neuron(spec)
        s = node(torch.randn(3, 4, 5))
        expected = (s != 0).float().mean()
        torch.testing.assert_close(node.firing_rate, expected)
    assert neuron_zoo.build_neuron("ann").firing_rate is None


def test_record_stats_off():
    node = ElasticBiNode()
    node.record_stats = False
    node(torch.randn(2, 3))
    assert node.spike_counts is None
