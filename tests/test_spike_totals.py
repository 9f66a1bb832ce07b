"""Firing rates summed over several forwards, per neuron and per layer."""
import pytest
import torch
from spikingjelly.activation_based import functional
from torch import nn

from neuron_zoo import ANNNode, ElasticBiNode
from sj_spikelm.train.spike_totals import SpikeTotals, layer_of


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([nn.ModuleDict({"act": ElasticBiNode(k=2.0, decay=0.0)})
                                    for _ in range(2)])
        self.head = nn.ModuleDict({"act": ANNNode()})

    def forward(self, x):
        functional.reset_net(self)
        return self.head["act"](self.layer[1]["act"](self.layer[0]["act"](x)))


def test_rates_over_forwards_by_hand():
    model = TwoLayers().train()
    totals = SpikeTotals(model)
    assert set(totals.nodes) == {"layer.0.act", "layer.1.act"}  # the ANN node keeps no counts
    # layer 0: mean|x| = 0.55, alpha = 1.1, fires where |x| >= 0.55: 2 of 4 (one +a, one -a);
    # its output [1.1, -1.1, 0, 0] gives layer 1 alpha = 1.1 and 2 of 4 spikes again
    model(torch.tensor([[1.0, -1.0, 0.1, 0.1]]))
    totals.update()
    # second forward (alphas frozen at 1.1): layer 0 fires 1 of 4, layer 1 then 1 of 4
    model(torch.tensor([[0.0, 0.0, 0.0, 1.0]]))
    totals.update()
    assert totals.rates() == {"layer.0.act": pytest.approx(3 / 8), "layer.1.act": pytest.approx(3 / 8)}
    assert totals.rates_per_layer() == {"0": pytest.approx(3 / 8), "1": pytest.approx(3 / 8)}
    assert totals.overall() == pytest.approx(6 / 16)
    assert totals.totals["layer.0.act"].tolist() == [1.0, 5.0, 2.0]  # -a, 0, +a


def test_no_spiking_neurons_gives_none():
    totals = SpikeTotals(nn.Linear(2, 2))
    totals.update()
    assert totals.overall() is None and totals.rates() == {} and totals.rates_per_layer() == {}


def test_layer_names():
    assert layer_of("spikelm.encoder.layer.11.attention.self.q_neuron") == "11"
    assert layer_of("model.layers.3.mlp.act") == "3"
    assert layer_of("model.encoder.layers.1.fc1.neuron") == "1"  # encoder-decoder: the decoder's own
    assert layer_of("model.decoder.layers.1.encoder_attn.k_proj.neuron") == "decoder.1"
    assert layer_of("bert.embeddings.neuron") == "bert.embeddings"
    assert layer_of("neuron") == "neuron"
