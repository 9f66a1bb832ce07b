"""A user's own neuron with per-step calibrated state, registered with register_neuron, works in a
SpikeLM model with no model code for it: calibration by a training-mode forward (on real tokens
only), needs_calibration, and an exact from_pretrained round trip, calibrated or not."""
import torch
from spikingjelly.activation_based import base
from torch import nn

import neuron_zoo
from neuron_zoo import CalibratedNeuron, StepState, calibration_report, global_sum_count, needs_calibration
from sj_spikelm import SpikeLMForSequenceClassification


class StepNorm(CalibratedNeuron, nn.Module, base.StepModule):
    """``y[t] = x[t] / scale[t]``, ``scale[t] = mean|x[t]|`` over the valid elements of the first
    batch that reaches step ``t``: per-step state calibrated from data, no membrane."""

    memoryless_arguments = {}

    def __init__(self, T=None, step_mode="m"):
        super().__init__()
        self.step_mode = step_mode
        self.init_calibration(T, scale=StepState(positive=True))

    def forward(self, x_seq):
        self.begin_steps(0, x_seq.shape[0], multi_step=True)
        out = []
        for t, x in enumerate(x_seq.unbind(0)):
            if self.needs_calibrating(t):
                total, count = global_sum_count(x.abs(), self.valid_mask)
                self.store_calibration(t, count, scale=total / count.clamp_min(1.0))
            out.append(x / self.scale[t])
        return torch.stack(out)


neuron_zoo.register_neuron("test_step_norm", StepNorm)


def make(tiny_config):
    return SpikeLMForSequenceClassification(tiny_config(neuron="test_step_norm", num_labels=2))


def test_user_neuron_calibrates_in_a_training_forward(tiny_config, batch):
    model = make(tiny_config)
    nodes = [m for m in model.modules() if isinstance(m, StepNorm)]
    assert len(nodes) == 2 * 8 and all(n.T == 2 for n in nodes)  # T from the config, K/V included
    assert needs_calibration(model) and set(calibration_report(model).values()) == {(0, 2)}
    model.train()(**batch)
    assert not needs_calibration(model)
    first = model.bert.encoder.layer[0].attention.self.query.neuron
    embeddings = model.bert.embeddings(batch["input_ids"])
    expected = embeddings.abs().mean(-1)[batch["attention_mask"].bool()].mean()  # real tokens only
    torch.testing.assert_close(first.scale, expected.expand(2), rtol=1e-6, atol=0)


def test_user_neuron_round_trips_through_from_pretrained(tiny_config, batch, tmp_path):
    torch.manual_seed(0)
    uncalibrated = make(tiny_config)
    uncalibrated.save_pretrained(tmp_path / "fresh")
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path / "fresh")
    assert needs_calibration(loaded) and set(calibration_report(loaded).values()) == {(0, 2)}

    model = make(tiny_config)
    model.calibrate(**batch).eval()
    expected = model(**batch).logits
    model.save_pretrained(tmp_path / "calibrated")
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path / "calibrated").eval()
    assert not needs_calibration(loaded)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(loaded(**batch).logits, expected)
